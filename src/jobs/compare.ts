// The compare job, shared by `badexpert compare` and bench/compare.ts: every chosen detector on
// the SAME defender splits (defense/splits.ts, the one split rule), fitted on the reserved split,
// calibrated at the target FPR on the calibration split, and measured against the same triggered
// evaluation images with the same metric code — one table, one ROC chart, one JSON.
import type { ParamValue } from "../attacks/attack.js";
import { loadAttack } from "../attacks/load.js";
import { subset } from "../data/splits.js";
import { manualSeed } from "../engine/index.js";
import { Rng } from "../util/rng.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import type { DefenseSplitSpec } from "../defense/splits.js";
import type { DefenseMetrics, RocPoint } from "../defense/metrics.js";
import type { Calibration } from "../defense/threshold.js";
import { fitDetector } from "../detectors/registry.js";
import { calibrateDetector } from "../detectors/calibrate.js";
import { evaluateDetector } from "../detectors/evaluate.js";
import { assertCompareReportDir, writeCompareReport } from "../report/compare.js";
import { defenderData } from "./defender-data.js";
import { BadExpertError } from "../util/errors.js";

export interface CompareOptions {
  checkpoint: string;
  detectors: readonly string[];
  /** Per-detector parameter overrides, e.g. { strip: { n: 50 } }. */
  params?: Readonly<Record<string, Readonly<Record<string, ParamValue>>>>;
  /** Default: the attack recorded in the checkpoint. */
  attack?: string;
  attackParams?: Readonly<Record<string, ParamValue>>;
  dataset?: string;
  dataPath?: string;
  reserved?: number;
  calibration?: number;
  splitSeed?: number;
  /**
   * Use only N images of the calibration / evaluation split, the same for every detector (see
   * `limited`). For the costly baselines (STRIP: 101 passes per input); 0 or undefined: the whole
   * split.
   */
  calibrationLimit?: number;
  evaluationLimit?: number;
  targetFpr?: number;
  seed?: number;
  report?: string;
  progress?: boolean;
  log?: (line: string) => void;
}

export interface CompareRow {
  detector: string;
  params: Record<string, ParamValue>;
  fitted: Record<string, unknown>;
  metrics: DefenseMetrics;
  calibration: Calibration;
  roc: RocPoint[];
  nonFinite: number;
  fitSeconds: number;
  calibrationSeconds: number;
  /** Scoring cost measured on the evaluation images (clean and triggered together). */
  secondsPer1000: number;
}

export interface CompareResult {
  dataset: string;
  model: string;
  attack: { name: string; params: Record<string, ParamValue> };
  splits: DefenseSplitSpec & {
    evaluation: number;
    calibrationUsed: number;
    evaluationUsed: number;
    poisonedUsed: number;
  };
  targetFpr: number;
  rows: CompareRow[];
  reportFiles: { html: string; markdown: string; json: string } | null;
}

/**
 * `limit` indices of a split (all of them for 0 or undefined): a seeded random N of the split,
 * sorted again. Not its first N: a split's indices are sorted, so its first N lie at the start of
 * the test set, which a dataset stored class by class (an image folder: CIFAR-10's copy here)
 * fills with one or two classes (a first-200 evaluation subset of CIFAR-10 held only target-class
 * images, so no triggered copy at all).
 */
export function limited(indices: Int32Array, limit: number | undefined, o: { seed?: number } = {}): Int32Array {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0))
    throw new BadExpertError("E_USAGE", `compare: a split limit must be a non-negative integer, got ${limit}`);
  if (!limit || limit >= indices.length) return indices;
  const pick = new Rng(o.seed ?? 0).permutation(indices.length).subarray(0, limit);
  return Int32Array.from(pick, (i) => indices[i] as number).sort();
}

/** The attack a checkpoint's training record names, if it is well-formed. */
export function recordedAttack(x: unknown): { name: string; params: Record<string, ParamValue> } | null {
  if (typeof x !== "object" || x === null) return null;
  const name: unknown = Reflect.get(x, "name");
  const params: unknown = Reflect.get(x, "params");
  if (typeof name !== "string") return null;
  const out: Record<string, ParamValue> = {};
  if (typeof params === "object" && params !== null) {
    for (const [k, v] of Object.entries(params))
      if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") out[k] = v;
  }
  return { name, params: out };
}

export async function compareDetectors(o: CompareOptions): Promise<CompareResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  if (o.detectors.length === 0)
    throw new BadExpertError("E_USAGE", "compare: detectors must name at least one detector");
  // Refused before the detectors are fitted, not after.
  if (o.report) await assertCompareReportDir(o.report);
  const { model, meta } = await loadCheckpoint(o.checkpoint);
  try {
    const { name, spec, splits, reserved, test } = await defenderData(meta, o);
    const limit = { seed: spec.seed };
    const calibration = subset(test, limited(splits.calibration, o.calibrationLimit, limit));
    const evaluation = subset(test, limited(splits.evaluation, o.evaluationLimit, limit));
    const recorded = recordedAttack(meta.training.attack);
    const attackName = o.attack ?? recorded?.name;
    if (!attackName)
      throw new BadExpertError(
        "E_USAGE",
        "compare: an attack is needed and the checkpoint records none (give --attack)",
      );
    const attackParams =
      o.attack && o.attack !== recorded?.name
        ? (o.attackParams ?? {})
        : { ...(recorded?.params ?? {}), ...(o.attackParams ?? {}) };
    const attack = await loadAttack(
      attackName,
      attackParams,
      {
        numClasses: test.classNames.length,
        height: test.height,
        width: test.width,
        channels: test.channels,
        dataset: name,
      },
      o.checkpoint,
    );
    const poisoned = attack.poisonedTestSet(evaluation);
    const targetFpr = o.targetFpr ?? 0.01;
    log(
      `reserved ${reserved.count}, calibration ${calibration.count}, evaluation ${evaluation.count} clean + ${poisoned.dataset.count} triggered images of ${name}/test; ${attack.name} trigger`,
    );
    const ctx = {
      model: model.eval(),
      spec: meta.model,
      preprocessing: meta.preprocessing,
      classNames: meta.classNames,
      dataset: name,
    };
    const rows: CompareRow[] = [];
    for (const detector of o.detectors) {
      manualSeed(o.seed ?? 0);
      const t0 = process.hrtime.bigint();
      const det = await fitDetector(detector, ctx, { reserved, calibration }, o.params?.[detector] ?? {}, log);
      try {
        const fitSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
        const cal = calibrateDetector(
          det,
          calibration,
          targetFpr,
          o.progress ? { progressLabel: `${detector}: calibration` } : {},
        );
        const e = evaluateDetector(det, cal.calibration.threshold, evaluation, poisoned, {
          progress: o.progress ?? false,
        });
        rows.push({
          detector,
          params: { ...det.params },
          fitted: { ...det.fitted },
          metrics: e.metrics,
          calibration: cal.calibration,
          roc: e.roc,
          nonFinite: e.nonFinite + cal.scores.nonFinite,
          fitSeconds,
          calibrationSeconds: cal.scores.seconds,
          secondsPer1000: e.secondsPer1000,
        });
        const m = e.metrics;
        log(
          `${detector}: AUROC ${m.auroc.toFixed(4)}, TPR ${(100 * m.tpr).toFixed(2)}%, FPR ${(100 * m.fpr).toFixed(2)}%, ASR after ${(100 * m.asrAfter).toFixed(2)}%, ${e.secondsPer1000.toFixed(2)} s per 1,000 inputs (fit ${fitSeconds.toFixed(1)} s)`,
        );
      } finally {
        det.dispose();
      }
    }
    const result: CompareResult = {
      dataset: name,
      model: meta.model.name,
      attack: { name: attack.name, params: { ...attack.params } },
      splits: {
        ...spec,
        evaluation: splits.evaluation.length,
        calibrationUsed: calibration.count,
        evaluationUsed: evaluation.count,
        poisonedUsed: poisoned.dataset.count,
      },
      targetFpr,
      rows,
      reportFiles: null,
    };
    if (o.report) {
      result.reportFiles = await writeCompareReport(o.report, {
        title: `Detectors vs ${attack.name} — ${name}, ${meta.model.name}`,
        dataset: name,
        model: meta.model.name,
        attack: result.attack,
        targetFpr,
        rows: rows.map((r) => ({
          detector: r.detector,
          params: r.params,
          metrics: r.metrics,
          roc: r.roc,
          secondsPer1000: r.secondsPer1000,
          fitSeconds: r.fitSeconds,
          nonFinite: r.nonFinite,
        })),
        details: {
          checkpoint: o.checkpoint,
          "reserved / calibration / evaluation images": `${reserved.count} / ${calibration.count} of ${spec.calibration} / ${evaluation.count} of ${splits.evaluation.length} (split seed ${spec.seed})`,
          "triggered evaluation images": poisoned.dataset.count,
          seed: o.seed ?? 0,
          "libtorch threads": process.env.BADEXPERT_THREADS ?? "all cores",
          fitted: JSON.stringify(Object.fromEntries(rows.map((r) => [r.detector, r.fitted]))),
        },
      });
    }
    return result;
  } finally {
    model.dispose();
  }
}
