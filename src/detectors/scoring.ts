// Scoring a whole dataset with any detector, batch by batch, and the fail-closed rule: a score
// that is not a finite number (NaN from a degenerate input, ±Infinity) becomes +Infinity, so it
// sorts above every threshold and the input is flagged rather than silently passed.
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { Progress } from "../util/progress.js";
import type { InputDetector, RawScores } from "./detector.js";

export interface DatasetScores extends RawScores {
  /* expertConfidence and auxiliaryConfidence: filled where the detector gives them (BaDExpert). */
  /** Inputs whose raw score was not finite (set to +Infinity). */
  nonFinite: number;
  seconds: number;
}

/** Replaces every non-finite score with +Infinity in place; returns how many there were. */
export function failClosed(score: Float64Array): number {
  let n = 0;
  for (let i = 0; i < score.length; i++) {
    if (!Number.isFinite(score[i] as number)) {
      score[i] = Number.POSITIVE_INFINITY;
      n++;
    }
  }
  return n;
}

/**
 * An input is flagged iff its score is strictly above the threshold. Fails closed: non-finite
 * scores always are, and so is every input when the threshold itself is not a finite number.
 */
export function flagged(score: ArrayLike<number>, threshold: number): Uint8Array {
  const out = new Uint8Array(score.length);
  const judged = Number.isFinite(threshold);
  for (let i = 0; i < score.length; i++) {
    const s = score[i] as number;
    out[i] = !judged || !Number.isFinite(s) || s > threshold ? 1 : 0;
  }
  return out;
}

export function scoreDataset(
  det: InputDetector,
  ds: ImageDataset,
  o: { batchSize?: number; progressLabel?: string } = {},
): DatasetScores {
  const n = ds.count;
  const pred = new Int32Array(n);
  const score = new Float64Array(n);
  let b: Float32Array | undefined;
  let a: Float32Array | undefined;
  const bar = o.progressLabel ? new Progress(o.progressLabel, n) : null;
  const t0 = process.hrtime.bigint();
  let at = 0;
  for (const batch of new DataLoader(ds, { batchSize: o.batchSize ?? 256 })) {
    let r: RawScores;
    try {
      r = det.scoreBatch(batch.x);
    } finally {
      batch.x.dispose();
      batch.y.dispose();
    }
    if (r.pred.length !== r.score.length || r.pred.length + at > n) {
      throw new Error(
        `${det.name}.scoreBatch returned ${r.pred.length} predictions and ${r.score.length} scores for a batch at ${at} of ${n}`,
      );
    }
    pred.set(r.pred, at);
    score.set(r.score, at);
    if (r.expertConfidence && r.auxiliaryConfidence) {
      (b ??= new Float32Array(n)).set(r.expertConfidence, at);
      (a ??= new Float32Array(n)).set(r.auxiliaryConfidence, at);
    }
    at += r.pred.length;
    bar?.tick(r.pred.length);
  }
  const nonFinite = failClosed(score);
  return {
    pred,
    score,
    ...(b && a ? { expertConfidence: b, auxiliaryConfidence: a } : {}),
    nonFinite,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}
