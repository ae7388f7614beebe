// Calibrating any detector exactly as BaDExpert is calibrated (defense/recalibrate.ts): score the
// clean calibration split, keep the inputs M classifies correctly, and take the threshold at the
// target FPR with defense/threshold.ts.
import type { ImageDataset } from "../data/dataset.js";
import { calibrateThreshold, type Calibration } from "../defense/threshold.js";
import type { InputDetector } from "./detector.js";
import { scoreDataset, type DatasetScores } from "./scoring.js";

export interface DetectorCalibration {
  calibration: Calibration;
  /** The scores of the whole calibration split (kept for reports). */
  scores: DatasetScores;
}

/** Clean scores of the calibration inputs M gets right (the negatives of the authors' protocol). */
export function correctlyClassifiedScores(
  s: { pred: ArrayLike<number>; score: ArrayLike<number> },
  labels: ArrayLike<number>,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) if (s.pred[i] === labels[i]) out.push(s.score[i] as number);
  return out;
}

export function calibrateDetector(
  det: InputDetector,
  calibration: ImageDataset,
  targetFpr: number,
  o: { progressLabel?: string } = {},
): DetectorCalibration {
  const scores = scoreDataset(det, calibration, o);
  const kept = correctlyClassifiedScores(scores, calibration.labels);
  // Fail closed, as for BaDExpert (defense/threshold.ts): a detector that cannot score clean
  // inputs cannot be calibrated, rather than calibrated on the inputs it happens to judge.
  const bad = Array.from(kept).filter((s) => !Number.isFinite(s)).length;
  if (bad > 0) {
    throw new Error(
      `${det.name}: ${bad} of ${kept.length} clean calibration scores are not finite numbers: the detector cannot judge clean inputs, so no threshold can be calibrated`,
    );
  }
  const cal = calibrateThreshold(kept, targetFpr);
  // Fail closed: an infinite threshold would pass every input, including the fail-closed ones.
  if (!Number.isFinite(cal.threshold)) {
    throw new Error(
      `${det.name}: calibration gave a non-finite threshold (${cal.threshold}): ${scores.nonFinite} of ${calibration.count} clean calibration scores were not finite; targetFpr ${targetFpr} needs fewer than that`,
    );
  }
  return { calibration: cal, scores };
}
