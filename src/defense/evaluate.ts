// Measuring a detector against an attack on the evaluation split: clean inputs and their
// triggered copies are scored, and the metrics follow the authors' conventions (metrics.ts).
import type { ImageDataset } from "../data/dataset.js";
import type { Attack } from "../attacks/attack.js";
import type { BadExpertDetector, BatchScores } from "./detector.js";
import { defenseMetrics, type DefenseMetrics } from "./metrics.js";
import { detectorParts, type DetectorParts } from "./parts.js";

/** Per-input scores of one evaluation set, as the report draws them. */
export interface ScoredInputs {
  /** M' confidence in M's label */
  a: ArrayLike<number>;
  /** B confidence in M's label */
  b: ArrayLike<number>;
  score: ArrayLike<number>;
  pred: ArrayLike<number>;
  /** true label (clean) or attack target (poisoned) */
  label: ArrayLike<number>;
}

export interface DefenseEvaluation {
  metrics: DefenseMetrics;
  clean: ScoredInputs;
  poisoned: ScoredInputs;
  /** Inputs per second over both sets (three forward passes each). */
  scoringRate: number;
  seconds: number;
  /** With `parts`: M, B and M' each on their own, on the same clean and triggered sets. */
  parts?: DetectorParts;
}

function scored(s: BatchScores, label: Int32Array): ScoredInputs {
  return { a: s.auxiliaryConfidence, b: s.expertConfidence, score: s.score, pred: s.pred, label };
}

export function evaluateDefense(
  det: BadExpertDetector,
  cleanEval: ImageDataset,
  attack: Attack,
  o: { progress?: boolean; parts?: boolean } = {},
): DefenseEvaluation {
  const poisonedSet = attack.poisonedTestSet(cleanEval);
  const t0 = Date.now();
  const c = det.scoreDataset(cleanEval, o.progress ? { progressLabel: "scoring clean inputs" } : {});
  const p = det.scoreDataset(poisonedSet.dataset, o.progress ? { progressLabel: "scoring poisoned inputs" } : {});
  const seconds = (Date.now() - t0) / 1000;
  const clean = scored(c, cleanEval.labels);
  const poisoned = scored(p, poisonedSet.targetLabels);
  return {
    metrics: defenseMetrics(clean, poisoned, det.threshold),
    clean,
    poisoned,
    scoringRate: (cleanEval.count + poisonedSet.dataset.count) / Math.max(seconds, 1e-9),
    seconds,
    ...(o.parts ? { parts: detectorParts(det, cleanEval, poisonedSet.dataset) } : {}),
  };
}
