// The evaluation matrix's cells (`npm run bench:matrix`): dataset × model × attack × seed, each cell run
// through the model cache (train or reuse the backdoored model), the defend job (BaDExpert with
// the defaults) and the
// evaluate-defense job (at each requested FPR), and written as one JSON file. A cell whose file
// is complete is skipped, so a killed run continues where it stopped; files are written
// atomically, so a kill never leaves a cell that looks finished.
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { ParamValue } from "../../src/attacks/attack.js";
import type { AuxiliaryRateSelection } from "../../src/defense/records.js";
import { DEFAULT_TARGET_FPR, type UnlearnLabelMapping } from "../../src/defense/defaults.js";
import type { UnlearningTrace } from "../../src/defense/records.js";
import type { DefenseMetrics } from "../../src/defense/metrics.js";
import type { DetectorParts } from "../../src/defense/parts.js";
import { readCheckpointMeta } from "../../src/train/checkpoint.js";
import { recipeFor } from "../../src/train/recipes.js";
import { writeFileAtomically } from "../../src/util/atomic-file.js";
import { removeOwnedDir } from "../../src/util/atomic-dir.js";
import { BUNDLE_DIR } from "../../src/defense/bundle.js";
import { settingsTag } from "./settings-tag.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { cachedModel, cachedModelPath } from "../../src/jobs/model-cache.js";

export const MATRIX_RESULT_VERSION = 1;

export interface MatrixCell {
  dataset: string;
  model: string;
  attack: string;
  attackParams: Record<string, ParamValue>;
  seed: number;
  epochs: number;
  dataPath?: string;
  /** Defense settings other than defend's defaults (absent: the defaults); part of the cell's identity. */
  defense?: MatrixDefense;
}

/** The defend options a matrix cell may override (src/jobs/defend.ts). */
export interface MatrixDefense {
  unlearnLabels?: UnlearnLabelMapping;
  finetuneLr?: number | "auto";
  /** The canary kinds that chose B's rate: in stored results only (defend plants no canaries). */
  canaries?: string[];
  /** B's Adam rate: given, for diagnosing a cell at another rate; or "auto", unlearning until forgotten. */
  unlearnLr?: number | "auto";
}

/** "finetuneLr=0.05,unlearnLr=auto": the overrides, sorted by name; "" for the defaults. */
export function defenseTag(d: MatrixDefense | undefined): string {
  return settingsTag(d, ",");
}

export interface MatrixEvaluation {
  targetFpr: number;
  threshold: number;
  metrics: DefenseMetrics;
}

export interface MatrixCellResult {
  version: number;
  cell: MatrixCell;
  model: { checkpoint: string; cleanAccuracy: number | null; attackSuccessRate: number | null; trainSeconds: number };
  unlearn: {
    lr: number;
    source: string;
    /** The canary records B's rate was chosen from, in stored results whose cell names canaries. */
    canaries?: unknown[];
    /** How B's unlearning went when it ran until forgotten. */
    trace?: UnlearningTrace;
  };
  /**
   * The finetuning rate of M' and how it was set: "default" (the architecture's fixed rate),
   * "given" (a cell override), "auto" (chosen on the calibration split, by override or by default;
   * `selection` is its table, absent in results written before it was kept). The whole record is
   * absent in results written before it was recorded.
   */
  finetune?: { lr: number; source: "default" | "given" | "auto"; selection?: AuxiliaryRateSelection };
  evaluations: MatrixEvaluation[];
  /** M, B and M' each on their own on the evaluation split (absent in results written before it was recorded). */
  parts?: DetectorParts;
  /** Scores of the AUROC sets (positives: poisoned inputs that fool M; negatives: clean inputs M gets right), for the bootstrap. */
  scores: { positives: number[]; negatives: number[] };
  /** `selection`: the canaries' time (0 where none ran), in stored results that carry it. */
  seconds: { expert: number; auxiliary: number; calibration: number; selection?: number; evaluation: number };
  scoringRate: number;
  finishedAt: string;
}

/** The cell's file name: every field that changes its result, readable. */
export function cellId(c: MatrixCell): string {
  const params = Object.keys(c.attackParams)
    .sort()
    .map((k) => `${k}=${String(c.attackParams[k])}`)
    .join(",");
  const defense = defenseTag(c.defense);
  return `${c.dataset}-${c.model}-${c.attack}${params ? `-${params}` : ""}-e${c.epochs}-seed${c.seed}${defense ? `-defense-${defense}` : ""}`;
}

export function cellPath(resultsDir: string, c: MatrixCell): string {
  return join(resultsDir, `${cellId(c)}.json`);
}

function isCellResult(x: unknown): x is MatrixCellResult {
  const r = x as Partial<MatrixCellResult> | null;
  return (
    typeof r === "object" &&
    r !== null &&
    r.version === MATRIX_RESULT_VERSION &&
    typeof r.cell === "object" &&
    Array.isArray(r.evaluations) &&
    r.evaluations.length > 0 &&
    typeof r.scores === "object" &&
    Array.isArray(r.scores.positives) &&
    Array.isArray(r.scores.negatives)
  );
}

/** The finished result of a cell, or null when its file is missing, torn or of another version. */
export async function readCellResult(path: string): Promise<MatrixCellResult | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return null;
  }
  try {
    const r: unknown = JSON.parse(text);
    return isCellResult(r) ? r : null;
  } catch {
    return null;
  }
}

/**
 * Whether a result stands for defend's defaults: B unlearned until forgotten and M''s rate chosen,
 * unless the cell's own defense options override either (then the override is the point).
 */
export function madeWithCurrentDefaults(r: MatrixCellResult): boolean {
  const o = r.cell.defense ?? {};
  const unlearnCurrent =
    o.unlearnLr !== undefined || o.canaries !== undefined || r.unlearn.source === "until-forgotten";
  const finetuneCurrent = o.finetuneLr !== undefined || r.finetune?.source === "auto";
  return unlearnCurrent && finetuneCurrent;
}

/**
 * The cells still to run, in order: those without a finished result file that covers every
 * requested FPR (default: each cell's defaultFprs()) and was made with the current defaults.
 */
export async function pendingCells(
  resultsDir: string,
  cells: readonly MatrixCell[],
  fprs?: readonly number[],
): Promise<MatrixCell[]> {
  const out: MatrixCell[] = [];
  for (const c of cells) {
    const r = await readCellResult(cellPath(resultsDir, c));
    const want = fprs ?? defaultFprs(c.model, c.dataset);
    const covered =
      r !== null && madeWithCurrentDefaults(r) && want.every((f) => r.evaluations.some((e) => e.targetFpr === f));
    if (!covered) out.push(c);
  }
  return out;
}

/** Every finished result under a results directory (other files are ignored; so are stale ones: madeWithCurrentDefaults). */
export async function readAllResults(resultsDir: string): Promise<MatrixCellResult[]> {
  let names: string[];
  try {
    names = (await readdir(resultsDir)).filter((n) => n.endsWith(".json")).sort();
  } catch {
    return [];
  }
  const out: MatrixCellResult[] = [];
  for (const n of names) {
    const r = await readCellResult(join(resultsDir, n));
    if (r && madeWithCurrentDefaults(r)) out.push(r);
  }
  return out;
}

export async function writeCellResult(resultsDir: string, r: MatrixCellResult): Promise<string> {
  const path = cellPath(resultsDir, r.cell);
  await writeFileAtomically(path, `${JSON.stringify(r)}\n`);
  return path;
}

/** The FPRs a cell is evaluated at by default: defend's 1%, and the paper's 0.1% on GTSRB as well. */
export function defaultFprs(_model: string, dataset: string): number[] {
  return dataset === "gtsrb" ? [0.001, DEFAULT_TARGET_FPR] : [DEFAULT_TARGET_FPR];
}

/** The epochs a cell trains for unless told: the dataset recipe's. */
export function defaultEpochs(dataset: string): number {
  return recipeFor(dataset).config.epochs;
}

export interface RunCellOptions {
  resultsDir: string;
  /** FPRs to evaluate at; default defaultFprs(). */
  fprs?: readonly number[];
  log?: (line: string) => void;
}

/** Runs one cell (training its model if the cache lacks it) and writes its result file. */
export async function runCell(c: MatrixCell, o: RunCellOptions): Promise<MatrixCellResult> {
  const log = o.log ?? (() => {});
  const fprs = o.fprs ?? defaultFprs(c.model, c.dataset);
  const spec = {
    dataset: c.dataset,
    model: c.model,
    attack: c.attack,
    attackParams: c.attackParams as Record<string, string | number | boolean>,
    epochs: c.epochs,
    seed: c.seed,
    ...(c.dataPath ? { dataPath: c.dataPath } : {}),
  };
  log(`${cellId(c)}: model ${cachedModelPath(spec)}`);
  const trained = await cachedModel(spec, { log: () => {} });
  const meta = await readCheckpointMeta(trained.dir);
  const bundle = join(o.resultsDir, "bundles", cellId(c));
  log(`${cellId(c)}: defending`);
  const g = c.defense ?? {};
  const r = await defendCheckpoint({
    checkpoint: trained.dir,
    out: bundle,
    force: true,
    seed: c.seed,
    splits: { seed: c.seed },
    calibration: { ...(fprs[0] !== undefined ? { targetFpr: fprs[0] } : {}) },
    unlearn: {
      ...(g.unlearnLr !== undefined ? { lr: g.unlearnLr } : {}),
      ...(g.unlearnLabels !== undefined ? { labels: g.unlearnLabels } : {}),
    },
    finetune: { ...(g.finetuneLr !== undefined ? { lr: g.finetuneLr } : {}) },
    silent: true,
    log: (l) => log(`${cellId(c)}: ${l}`),
  });
  const d = r.badexpert as NonNullable<typeof r.badexpert>;
  const evaluations: MatrixEvaluation[] = [];
  let scores: MatrixCellResult["scores"] | null = null;
  let parts: DetectorParts | undefined;
  let evaluation = 0;
  let scoringRate = 0;
  for (const f of fprs) {
    // M, B and M' on their own once (they do not depend on the FPR): what a failed cell is diagnosed with.
    const e = await evaluateBundle({ bundle, targetFpr: f, parts: parts === undefined });
    parts ??= e.parts;
    evaluations.push({ targetFpr: f, threshold: e.threshold, metrics: e.metrics });
    evaluation += e.seconds;
    scoringRate = e.scoringRate;
    scores ??= aurocSets(e.clean, e.poisoned);
  }
  // Removed by the names a bundle's writer uses: the results folder is the user's.
  await removeOwnedDir(bundle, [BUNDLE_DIR]);
  const result: MatrixCellResult = {
    version: MATRIX_RESULT_VERSION,
    cell: c,
    model: {
      checkpoint: trained.dir,
      cleanAccuracy: meta.metrics.cleanAccuracy ?? null,
      attackSuccessRate: meta.metrics.attackSuccessRate ?? null,
      trainSeconds: trained.seconds,
    },
    unlearn: {
      lr: d.options.unlearn.lr,
      source: d.unlearnLrSource,
      ...(d.unlearning ? { trace: d.unlearning } : {}),
    },
    finetune: {
      lr: d.options.finetune.lr,
      source: d.finetuneSelection ? "auto" : c.defense?.finetuneLr === undefined ? "default" : "given",
      ...(d.finetuneSelection ? { selection: d.finetuneSelection } : {}),
    },
    evaluations,
    ...(parts ? { parts } : {}),
    scores: scores ?? { positives: [], negatives: [] },
    seconds: { ...d.seconds, evaluation },
    scoringRate,
    finishedAt: new Date().toISOString(),
  };
  await writeCellResult(o.resultsDir, result);
  return result;
}

interface Scored {
  pred: ArrayLike<number>;
  label: ArrayLike<number>;
  score: ArrayLike<number>;
}

/** The AUROC's two sets, as src/defense/metrics.ts defines them. */
export function aurocSets(clean: Scored, poisoned: Scored): { positives: number[]; negatives: number[] } {
  const pick = (s: Scored) => Array.from(s.score).filter((_, i) => s.pred[i] === s.label[i]);
  return { positives: pick(poisoned), negatives: pick(clean) };
}

export interface RunMatrixOptions extends RunCellOptions {
  onCell?: (r: MatrixCellResult, done: number, total: number) => void;
}

/** Runs the pending cells one after the other; returns how many were skipped as finished and how many ran. */
export async function runMatrix(
  cells: readonly MatrixCell[],
  o: RunMatrixOptions,
): Promise<{ skipped: number; ran: number }> {
  const todo = await pendingCells(o.resultsDir, cells, o.fprs);
  let ran = 0;
  for (const c of todo) {
    const r = await runCell(c, o);
    ran++;
    o.onCell?.(r, ran, todo.length);
  }
  return { skipped: cells.length - todo.length, ran };
}
