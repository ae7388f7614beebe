// Measuring a calibrated detector on the evaluation split: clean images and their triggered
// copies are scored, and defense/metrics.ts computes AUROC, TPR/FPR at the threshold and CA/ASR
// before and after — the same code, and so the same conventions, as BaDExpert's own evaluation.
import type { ImageDataset } from "../data/dataset.js";
import type { PoisonedTestSet } from "../attacks/attack.js";
import { defenseMetrics, rocCurve, type DefenseMetrics, type RocPoint } from "../defense/metrics.js";
import type { InputDetector } from "./detector.js";
import { scoreDataset, type DatasetScores } from "./scoring.js";

export interface DetectorEvaluation {
  metrics: DefenseMetrics;
  clean: DatasetScores;
  poisoned: DatasetScores;
  /** ROC over the authors' sets (clean inputs M gets right vs poisoned inputs that fool M). */
  roc: RocPoint[];
  /** Inputs whose score was not finite, flagged by the fail-closed rule. */
  nonFinite: number;
  /** Wall-clock seconds per 1,000 scored inputs (clean and poisoned together). */
  secondsPer1000: number;
}

/** Splits scores into the ROC's positives and negatives with the metric code's own rule. */
function sets(
  clean: DatasetScores,
  cleanLabels: ArrayLike<number>,
  poisoned: DatasetScores,
  targets: ArrayLike<number>,
): { pos: number[]; neg: number[] } {
  const neg: number[] = [];
  const pos: number[] = [];
  for (let i = 0; i < clean.pred.length; i++) if (clean.pred[i] === cleanLabels[i]) neg.push(clean.score[i] as number);
  for (let i = 0; i < poisoned.pred.length; i++)
    if (poisoned.pred[i] === targets[i]) pos.push(poisoned.score[i] as number);
  return { pos, neg };
}

/**
 * Scores the clean evaluation images and their triggered copies and measures. `poisoned.targetLabels`
 * are the labels that count as attack success; `successLabels`, when given, computes them from M's
 * predictions instead (triggered inputs with no known target: any misclassification).
 */
export function evaluateDetector(
  det: InputDetector,
  threshold: number,
  cleanEval: ImageDataset,
  poisoned: Pick<PoisonedTestSet, "dataset"> & Partial<Pick<PoisonedTestSet, "targetLabels">>,
  o: { progress?: boolean; successLabels?: (pred: Int32Array) => ArrayLike<number> } = {},
): DetectorEvaluation & { targetLabels: ArrayLike<number> } {
  const clean = scoreDataset(det, cleanEval, o.progress ? { progressLabel: `${det.name}: clean inputs` } : {});
  const bad = scoreDataset(det, poisoned.dataset, o.progress ? { progressLabel: `${det.name}: poisoned inputs` } : {});
  const targets = o.successLabels ? o.successLabels(bad.pred) : poisoned.targetLabels;
  if (targets === undefined)
    throw new RangeError("evaluateDetector: give the poisoned set's targetLabels or successLabels");
  const metrics = defenseMetrics(
    { pred: clean.pred, score: clean.score, label: cleanEval.labels },
    { pred: bad.pred, score: bad.score, label: targets },
    threshold,
  );
  const { pos, neg } = sets(clean, cleanEval.labels, bad, targets);
  const count = cleanEval.count + poisoned.dataset.count;
  return {
    metrics,
    clean,
    poisoned: bad,
    targetLabels: targets,
    roc: rocCurve(pos, neg),
    nonFinite: clean.nonFinite + bad.nonFinite,
    secondsPer1000: count ? (1000 * (clean.seconds + bad.seconds)) / count : Number.NaN,
  };
}
