// Switching a detector to another score rule or FPR: the threshold must be re-calibrated on
// clean calibration inputs (the bundle's calibration split), never on evaluation data.
import type { ImageDataset } from "../data/dataset.js";
import type { BadExpertDetector } from "./detector.js";
import { SCORE_CEILING, scoreAll, type ScoreRule } from "./scores.js";
import { calibrateThreshold, type Calibration } from "./threshold.js";

/** Threshold statistics for `rule` from the clean calibration inputs that M classifies correctly. */
export function calibrationFor(
  det: BadExpertDetector,
  rule: ScoreRule,
  targetFpr: number,
  calibration: ImageDataset,
): Calibration {
  const s = det.scoreDataset(calibration);
  const keep: number[] = [];
  for (let i = 0; i < calibration.count; i++) if (s.pred[i] === calibration.labels[i]) keep.push(i);
  const pick = (v: Float32Array): number[] => keep.map((i) => v[i] as number);
  const scores = scoreAll(rule, pick(s.auxiliaryConfidence), pick(s.expertConfidence), pick(s.expertComplement));
  return calibrateThreshold(scores, targetFpr, SCORE_CEILING[rule]);
}

export function recalibrate(
  det: BadExpertDetector,
  rule: ScoreRule,
  targetFpr: number,
  calibration: ImageDataset,
): BadExpertDetector {
  const cal = calibrationFor(det, rule, targetFpr, calibration);
  return det.withDecision(rule, cal.threshold, cal);
}
