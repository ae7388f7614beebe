// Threshold calibration at a target false-positive rate, as the BaDExpert authors do it: sort
// the clean calibration scores ascending and take the value at index floor((1 - FPR) * n);
// an input is flagged iff its score is strictly above the threshold.

export interface Calibration {
  threshold: number;
  targetFpr: number;
  /** Clean calibration inputs used (those M classifies correctly). */
  count: number;
  /** Fraction of those calibration inputs above the threshold (the FPR achieved on them). */
  achievedFpr: number;
  scoreMean: number;
  scoreStd: number;
  scoreQuantiles: { p50: number; p90: number; p99: number };
}

function at(sorted: Float64Array, q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.floor(q * sorted.length)));
  return sorted[i] as number;
}

export function calibrateThreshold(cleanScores: ArrayLike<number>, targetFpr: number): Calibration {
  if (!(targetFpr > 0 && targetFpr < 1)) throw new RangeError(`targetFpr must be in (0, 1), got ${targetFpr}`);
  const n = cleanScores.length;
  if (n === 0) throw new RangeError("calibrateThreshold: no clean calibration scores (is the calibration split empty, or does M misclassify all of it?)");
  const sorted = Float64Array.from(cleanScores).sort();
  // NaN sorts last and would leave a finite-looking threshold over a broken detector; refuse.
  let invalid = 0;
  for (const s of sorted) if (!Number.isFinite(s)) invalid++;
  if (invalid > 0) {
    throw new RangeError(`calibrateThreshold: ${invalid} of ${n} clean calibration scores are not finite numbers (NaN or ±Infinity): the models give invalid outputs, so no threshold can be calibrated`);
  }
  const threshold = at(sorted, 1 - targetFpr);
  let above = 0;
  let sum = 0;
  for (const s of sorted) {
    if (s > threshold) above++;
    sum += s;
  }
  const mean = sum / n;
  let v = 0;
  for (const s of sorted) v += (s - mean) ** 2;
  return {
    threshold,
    targetFpr,
    count: n,
    achievedFpr: above / n,
    scoreMean: mean,
    scoreStd: Math.sqrt(v / n),
    scoreQuantiles: { p50: at(sorted, 0.5), p90: at(sorted, 0.9), p99: at(sorted, 0.99) },
  };
}
