// Threshold calibration at a target false-positive rate, as the BaDExpert authors do it: sort
// the clean calibration scores ascending and take the value at index floor((1 - FPR) * n);
// an input is flagged iff its score is strictly above the threshold.
//
// One exception, because it would fail open: a score rule has a highest possible value (its
// ceiling; 0 for the triangle rules). When so many clean scores sit exactly on it that the
// target-FPR index lands there, `score > threshold` could never fire and the detector would pass
// everything. The threshold then drops to the highest clean score below the ceiling, so every
// input on the ceiling is flagged, and the FPR achieved (above the target) says what that costs.

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
  /**
   * Clean calibration inputs scored exactly at the rule's ceiling, present only when the
   * target-FPR threshold landed on the ceiling and was lowered (see above).
   */
  atCeiling?: number;
}

function at(sorted: Float64Array, q: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.floor(q * sorted.length)));
  return sorted[i] as number;
}

/** `ceiling`: the highest score the rule can give (SCORE_CEILING), where it has one. */
export function calibrateThreshold(cleanScores: ArrayLike<number>, targetFpr: number, ceiling?: number): Calibration {
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
  let threshold = at(sorted, 1 - targetFpr);
  let atCeiling: number | undefined;
  if (ceiling !== undefined && threshold >= ceiling) {
    let below = sorted.length - 1;
    while (below >= 0 && (sorted[below] as number) >= ceiling) below--;
    atCeiling = n - 1 - below;
    if (below < 0) {
      throw new RangeError(`calibrateThreshold: all ${n} clean calibration scores sit at the score rule's ceiling (${ceiling}), so no threshold can separate anything: the backdoor expert is as confident on clean inputs as on backdoored ones (was the unlearning rate too low?)`);
    }
    threshold = sorted[below] as number;
  }
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
    ...(atCeiling !== undefined ? { atCeiling } : {}),
  };
}

/** A warning when the threshold had to be lowered below the rule's ceiling, else null. */
export function ceilingWarning(c: Calibration): string | null {
  if (c.atCeiling === undefined) return null;
  return `${c.atCeiling} of ${c.count} clean calibration scores sit at the score rule's ceiling, so a threshold at the target FPR (${c.targetFpr}) could flag nothing; it was lowered below the ceiling and the FPR achieved is ${(100 * c.achievedFpr).toFixed(2)}%`;
}
