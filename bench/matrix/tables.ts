// The evaluation matrix's detection tables: cell results grouped by dataset, model, attack and
// FPR, aggregated over seeds (mean ± std; bootstrap 95% interval of the mean AUROC) and rendered
// as Markdown (`npm run bench:matrix -- --render-only`; RESULTS.md is built from the same
// aggregation by `npm run results`), never by hand.
import type { DefenseMetrics } from "../../src/defense/metrics.js";
import {
  bootstrapMeanAuroc,
  meanStd,
  RankedScores,
  type BootstrapOptions,
  type Interval,
  type MeanStd,
} from "./stats.js";
import { settingsTag } from "./settings-tag.js";

/** What the tables need from one cell result (cells.ts writes more). */
export interface MatrixRow {
  cell: {
    dataset: string;
    model: string;
    attack: string;
    attackParams: Record<string, unknown>;
    seed: number;
    epochs: number;
    defense?: object;
  };
  unlearn: { lr: number; source: string };
  finetune?: { lr: number; source: string };
  evaluations: readonly { targetFpr: number; metrics: DefenseMetrics }[];
  scores: { positives: readonly number[]; negatives: readonly number[] };
}

type MetricName = "cleanAccuracyBefore" | "cleanAccuracyAfter" | "asrBefore" | "asrAfter" | "auroc" | "tpr" | "fpr";
const METRICS: readonly MetricName[] = [
  "cleanAccuracyBefore",
  "cleanAccuracyAfter",
  "asrBefore",
  "asrAfter",
  "auroc",
  "tpr",
  "fpr",
];

export interface AttackSummary {
  attack: string;
  attackParams: Record<string, unknown>;
  /** Defense overrides of these rows, "k=v, ..." sorted by name ("" for defend's defaults). */
  defense: string;
  seeds: number[];
  unlearnLrs: number[];
  /** Per seed: whether B's rate is the architecture's static fallback because the canaries were inconclusive. */
  unlearnInconclusive: boolean[];
  /** M''s finetuning rate per seed (null where the result did not record it). */
  finetuneLrs: (number | null)[];
  stats: Record<MetricName, MeanStd>;
  aurocInterval: Interval;
  /** Whether the backdoor took (mean ASR before ≥ TOOK_ASR); a detector is not judged on one that did not. */
  took: boolean;
}

/**
 * Below this attack success rate the backdoor is not there to detect: its triggered inputs that
 * "fool" M are mostly M's ordinary mistakes, so such rows are shown, marked, and left out of the
 * averages.
 */
export const TOOK_ASR = 0.5;

export interface MatrixGroup {
  dataset: string;
  model: string;
  epochs: number;
  targetFpr: number;
  attacks: AttackSummary[];
  /**
   * Means over the attacks of the per-attack means; rows with defense overrides are left out when
   * default rows exist, and so are backdoors that did not take (`untaken` counts those). Null
   * when no row is left.
   */
  average: { attacks: number; untaken: number; auroc: number; asrAfter: number; cleanAccuracyDrop: number } | null;
}

const key = (...parts: unknown[]) => JSON.stringify(parts);

/** A cell's defense overrides as "k=v, ..." sorted by name; "" when it ran with the defaults. */
function defenseLabel(d: object | undefined): string {
  return settingsTag(d, ", ");
}

/** Groups rows by (dataset, model, epochs, FPR) and, within a group, by attack and its parameters; order: first appearance. */
export function aggregateMatrix(rows: readonly MatrixRow[], o: BootstrapOptions = {}): MatrixGroup[] {
  const groups = new Map<
    string,
    { head: Omit<MatrixGroup, "attacks" | "average">; byAttack: Map<string, { row: MatrixRow; m: DefenseMetrics }[]> }
  >();
  for (const row of rows) {
    for (const ev of row.evaluations) {
      const gk = key(row.cell.dataset, row.cell.model, row.cell.epochs, ev.targetFpr);
      let g = groups.get(gk);
      if (!g) {
        g = {
          head: { dataset: row.cell.dataset, model: row.cell.model, epochs: row.cell.epochs, targetFpr: ev.targetFpr },
          byAttack: new Map(),
        };
        groups.set(gk, g);
      }
      const ak = key(row.cell.attack, Object.entries(row.cell.attackParams).sort(), defenseLabel(row.cell.defense));
      const list = g.byAttack.get(ak) ?? [];
      if (list.some((x) => x.row.cell.seed === row.cell.seed))
        throw new Error(
          `aggregateMatrix: two results for ${row.cell.dataset}/${row.cell.model}/${row.cell.attack} seed ${row.cell.seed} at FPR ${ev.targetFpr}`,
        );
      list.push({ row, m: ev.metrics });
      g.byAttack.set(ak, list);
    }
  }
  // The AUROC and its interval do not depend on the FPR: a cell evaluated at two FPRs is bootstrapped once.
  const intervals = new Map<string, Interval>();
  return [...groups.values()].map(({ head, byAttack }) => {
    const attacks = [...byAttack.entries()].map(([ak, list]): AttackSummary => {
      const sorted = [...list].sort((a, b) => a.row.cell.seed - b.row.cell.seed);
      const first = (sorted[0] as { row: MatrixRow }).row;
      const stats = Object.fromEntries(METRICS.map((name) => [name, meanStd(sorted.map((x) => x.m[name]))])) as Record<
        MetricName,
        MeanStd
      >;
      const ik = key(
        head.dataset,
        head.model,
        head.epochs,
        ak,
        sorted.map((x) => x.row.cell.seed),
      );
      const interval =
        intervals.get(ik) ??
        bootstrapMeanAuroc(
          sorted.map((x) => new RankedScores(x.row.scores.positives, x.row.scores.negatives)),
          o,
        );
      intervals.set(ik, interval);
      return {
        attack: first.cell.attack,
        attackParams: first.cell.attackParams,
        defense: defenseLabel(first.cell.defense),
        seeds: sorted.map((x) => x.row.cell.seed),
        unlearnLrs: sorted.map((x) => x.row.unlearn.lr),
        unlearnInconclusive: sorted.map((x) => x.row.unlearn.source === "canary-inconclusive"),
        finetuneLrs: sorted.map((x) => x.row.finetune?.lr ?? null),
        stats,
        aurocInterval: interval,
        took: stats.asrBefore.mean >= TOOK_ASR,
      };
    });
    // The average is the defense's (defend's defaults) over the attacks; override rows are comparisons.
    const defaults = attacks.filter((a) => a.defense === "");
    const candidates = defaults.length > 0 ? defaults : attacks;
    const pool = candidates.filter((a) => a.took);
    const avg = (f: (a: AttackSummary) => number) => pool.reduce((s, a) => s + f(a), 0) / pool.length;
    return {
      ...head,
      attacks,
      average:
        pool.length === 0
          ? null
          : {
              attacks: pool.length,
              untaken: candidates.length - pool.length,
              auroc: avg((a) => a.stats.auroc.mean),
              asrAfter: avg((a) => a.stats.asrAfter.mean),
              cleanAccuracyDrop: avg((a) => a.stats.cleanAccuracyBefore.mean - a.stats.cleanAccuracyAfter.mean),
            },
    };
  });
}

/** "91.26 ± 0.12%" (percent with two decimals; the ± part only with more than one seed). */
export function pctStat(s: MeanStd): string {
  const pm = s.n > 1 ? ` ± ${(100 * s.std).toFixed(2)}` : "";
  return `${(100 * s.mean).toFixed(2)}${pm}%`;
}

export function aurocStat(s: MeanStd): string {
  return s.n > 1 ? `${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}` : s.mean.toFixed(4);
}

function fprLabel(f: number): string {
  return `${Number((100 * f).toPrecision(6))}%`;
}

const INCONCLUSIVE_MARK = "†";
const INCONCLUSIVE_NOTE = `${INCONCLUSIVE_MARK} the canaries were inconclusive for this seed: B's rate is the architecture's static fallback.`;

/** B's rates over the seeds, each once; a rate the canaries could not choose (inconclusive: the static fallback) carries INCONCLUSIVE_MARK. */
function unlearnLrLabel(a: AttackSummary): string {
  const labels = a.unlearnLrs.map(
    (lr, i) => `${lr.toExponential()}${a.unlearnInconclusive[i] ? INCONCLUSIVE_MARK : ""}`,
  );
  return [...new Set(labels)].join(", ");
}

function attackLabel(a: AttackSummary): string {
  const params = Object.entries(a.attackParams)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(", ");
  const untaken = a.took ? "" : " · **did not take**";
  return `${params ? `${a.attack} (${params})` : a.attack}${a.defense ? ` · defense ${a.defense}` : ""}${untaken}`;
}

/** One Markdown table per group, with a heading line and the average row. */
export function renderMatrixTables(groups: readonly MatrixGroup[]): string {
  const out: string[] = [];
  for (const g of groups) {
    out.push(`#### ${g.dataset} · ${g.model} · ${g.epochs} epochs · FPR ${fprLabel(g.targetFpr)}`, "");
    out.push(
      "| attack | seeds | B / M' lr | CA before → after | ASR before → after | AUROC (mean ± std) | AUROC 95% CI (bootstrap) | TPR | FPR |",
    );
    out.push("|---|---|---|---|---|---|---|---|---|");
    for (const a of g.attacks) {
      const ftLrs = [...new Set(a.finetuneLrs.filter((lr): lr is number => lr !== null))].join(", ");
      const lrs = `${unlearnLrLabel(a)} / ${ftLrs || "–"}`;
      const ci = `[${a.aurocInterval.low.toFixed(4)}, ${a.aurocInterval.high.toFixed(4)}]`;
      out.push(
        `| ${attackLabel(a)} | ${a.seeds.join(",")} | ${lrs} | ${pctStat(a.stats.cleanAccuracyBefore)} → ${pctStat(a.stats.cleanAccuracyAfter)} | ` +
          `${pctStat(a.stats.asrBefore)} → ${pctStat(a.stats.asrAfter)} | ${aurocStat(a.stats.auroc)} | ${ci} | ${pctStat(a.stats.tpr)} | ${pctStat(a.stats.fpr)} |`,
      );
    }
    const av = g.average;
    if (av) {
      const n = av.attacks;
      // "defaults" only where override rows sit beside default rows (the average is then the defaults').
      const mixed = g.attacks.some((a) => a.defense === "") && g.attacks.some((a) => a.defense !== "");
      const which = [mixed ? "defaults" : "", av.untaken > 0 ? `${av.untaken} that did not take left out` : ""]
        .filter(Boolean)
        .join("; ");
      out.push(
        `| **average over ${n} attack${n === 1 ? "" : "s"}${which ? ` (${which})` : ""}** | | | CA drop ${(100 * av.cleanAccuracyDrop).toFixed(2)} pts | ` +
          `ASR after ${(100 * av.asrAfter).toFixed(2)}% | ${av.auroc.toFixed(4)} | | | |`,
      );
    } else {
      out.push("| **no average: no backdoor in this table took** | | | | | | | | |");
    }
    if (g.attacks.some((a) => a.unlearnInconclusive.includes(true))) out.push("", INCONCLUSIVE_NOTE);
    out.push("");
  }
  return out.join("\n");
}
