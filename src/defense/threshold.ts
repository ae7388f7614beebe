// Threshold calibration at a target false-positive rate, as the BaDExpert authors do it: sort
// the clean calibration scores ascending and take the value at index floor((1 - FPR) * n);
// an input is flagged iff its score is strictly above the threshold.
//
// One exception, because it would fail open: a score rule has a highest possible value (its
// ceiling; 0 for the triangle rules). When so many clean scores sit exactly on it that the
// target-FPR index lands there, `score > threshold` could never fire and the detector would pass
// everything. The threshold then drops to the highest clean score below the ceiling, so every
// input on the ceiling is flagged, and the FPR achieved (above the target) says what that costs.
//
// The calibration record says how the threshold was found (clean scores' range, quantiles, the
// index it was taken at), so a loader can refuse a threshold no calibration could have produced:
// one the score rule never reaches (`threshold: 1e9` would pass every input) or one outside the
// clean scores it was picked from (checkCalibrationRecord).
import type { FieldReader } from "../util/fields.js";

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
   * Lowest and highest clean calibration score. The threshold is one of these scores, so it lies
   * between them. Absent in bundles written before the range was recorded.
   */
  scoreMin?: number;
  scoreMax?: number;
  /**
   * Clean calibration inputs scored exactly at the rule's ceiling, present only when the
   * target-FPR threshold landed on the ceiling and was lowered (see above).
   */
  atCeiling?: number;
}

/** The index of quantile q among n sorted scores: the authors' floor(q * n), kept inside the array. */
function quantileIndex(n: number, q: number): number {
  return Math.min(n - 1, Math.max(0, Math.floor(q * n)));
}

function at(sorted: Float64Array, q: number): number {
  return sorted[quantileIndex(sorted.length, q)] as number;
}

/** `ceiling`: the highest score the rule can give (SCORE_CEILING), where it has one. */
export function calibrateThreshold(cleanScores: ArrayLike<number>, targetFpr: number, ceiling?: number): Calibration {
  if (!(targetFpr > 0 && targetFpr < 1)) throw new RangeError(`targetFpr must be in (0, 1), got ${targetFpr}`);
  const n = cleanScores.length;
  if (n === 0)
    throw new RangeError(
      "calibrateThreshold: no clean calibration scores (is the calibration split empty, or does M misclassify all of it?)",
    );
  const sorted = Float64Array.from(cleanScores).sort();
  // NaN sorts last and would leave a finite-looking threshold over a broken detector; refuse.
  let invalid = 0;
  for (const s of sorted) if (!Number.isFinite(s)) invalid++;
  if (invalid > 0) {
    throw new RangeError(
      `calibrateThreshold: ${invalid} of ${n} clean calibration scores are not finite numbers (NaN or ±Infinity): the models give invalid outputs, so no threshold can be calibrated`,
    );
  }
  let threshold = at(sorted, 1 - targetFpr);
  let atCeiling: number | undefined;
  if (ceiling !== undefined && threshold >= ceiling) {
    let below = sorted.length - 1;
    while (below >= 0 && (sorted[below] as number) >= ceiling) below--;
    atCeiling = n - 1 - below;
    if (below < 0) {
      throw new RangeError(
        `calibrateThreshold: all ${n} clean calibration scores sit at the score rule's ceiling (${ceiling}), so no threshold can separate anything: the backdoor expert is as confident on clean inputs as on backdoored ones (was the unlearning rate too low?)`,
      );
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
    scoreMin: sorted[0] as number,
    scoreMax: sorted[n - 1] as number,
    ...(atCeiling !== undefined ? { atCeiling } : {}),
  };
}

/** A warning when the threshold had to be lowered below the rule's ceiling, else null. */
export function ceilingWarning(c: Calibration): string | null {
  if (c.atCeiling === undefined) return null;
  return `${c.atCeiling} of ${c.count} clean calibration scores sit at the score rule's ceiling, so a threshold at the target FPR (${c.targetFpr}) could flag nothing; it was lowered below the ceiling and the FPR achieved is ${(100 * c.achievedFpr).toFixed(2)}%`;
}

/** The scores a rule can give, for checking a recorded threshold (SCORE_FLOOR/SCORE_CEILING). */
export interface ScoreRange {
  rule: string;
  floor: number;
  ceiling: number;
}

/** Room for float rounding when comparing recorded numbers (sums, float32 probabilities). */
function slack(...xs: number[]): number {
  return 1e-6 * Math.max(1, ...xs.map(Math.abs));
}

const QUANTILES = [
  ["p50", 0.5],
  ["p90", 0.9],
  ["p99", 0.99],
] as const;

/**
 * Checks a calibration record read from a file against what calibrateThreshold can produce, and
 * throws through `r` (naming the file and the field) when no calibration could have given it:
 * - the threshold must be a score the rule can give, below the rule's ceiling (`range`; nothing
 *   scores above the ceiling, so a threshold there never flags);
 * - it must lie within the recorded clean scores [scoreMin, scoreMax] (it is one of them);
 * - it must sit where its index floor((1 - targetFpr) * count) puts it among the recorded
 *   quantiles, and the FPR achieved must not exceed the target (unless it was lowered below the
 *   ceiling, which only moves it down);
 * - the statistics must agree with each other (quantiles in order, mean within the range, std at
 *   most half the range).
 * Someone who rewrites every statistic consistently is caught only by a signature; these checks
 * refuse the edits that turn a detector into one that never fires.
 * Returns warnings: a record without scoreMin/scoreMax (written before the range was recorded)
 * loads, with the threshold checked against the rule's range and the quantiles only.
 */
export function checkCalibrationRecord(c: Calibration, r: FieldReader, range?: ScoreRange): string[] {
  const warnings: string[] = [];
  const t = c.threshold;
  const q = c.scoreQuantiles;
  if (range) {
    const lo = range.floor - slack(range.floor);
    const hi = range.ceiling + slack(range.ceiling);
    if (!(t >= lo && t < range.ceiling)) {
      r.fail(
        "calibration.threshold",
        `a score the rule '${range.rule}' can give, at least ${range.floor} and below its ceiling ${range.ceiling} (no score is above the ceiling: a threshold there never flags)`,
        t,
      );
    }
    const stats: [string, number | undefined][] = [
      ["calibration.scoreQuantiles.p50", q.p50],
      ["calibration.scoreQuantiles.p90", q.p90],
      ["calibration.scoreQuantiles.p99", q.p99],
      ["calibration.scoreMean", c.scoreMean],
      ["calibration.scoreMin", c.scoreMin],
      ["calibration.scoreMax", c.scoreMax],
    ];
    for (const [path, v] of stats)
      if (v !== undefined && !(v >= lo && v <= hi))
        r.fail(path, `a score the rule '${range.rule}' can give, in [${range.floor}, ${range.ceiling}]`, v);
  }
  if (!(q.p50 <= q.p90)) r.fail("calibration.scoreQuantiles.p90", `at least p50 (${q.p50})`, q.p90);
  if (!(q.p90 <= q.p99)) r.fail("calibration.scoreQuantiles.p99", `at least p90 (${q.p90})`, q.p99);
  // Where the threshold sits among the quantiles follows from the indices they were taken at.
  const n = c.count;
  const kt = quantileIndex(n, 1 - c.targetFpr);
  for (const [name, p] of QUANTILES) {
    const kq = quantileIndex(n, p);
    const v = q[name];
    if (kt < kq && !(t <= v))
      r.fail(
        "calibration.threshold",
        `at most scoreQuantiles.${name} (${v}): at target FPR ${c.targetFpr} over ${n} scores it is taken below that quantile`,
        t,
      );
    if (c.atCeiling === undefined && kt > kq && !(t >= v))
      r.fail(
        "calibration.threshold",
        `at least scoreQuantiles.${name} (${v}): at target FPR ${c.targetFpr} over ${n} scores it is taken above that quantile`,
        t,
      );
    if (c.atCeiling === undefined && kt === kq && t !== v)
      r.fail(
        "calibration.threshold",
        `equal to scoreQuantiles.${name} (${v}): at target FPR ${c.targetFpr} over ${n} scores it is that quantile`,
        t,
      );
  }
  if (c.atCeiling === undefined && c.achievedFpr > c.targetFpr + 1 / n) {
    r.fail(
      "calibration.achievedFpr",
      `at most the target FPR ${c.targetFpr} (a threshold at the target-FPR quantile flags no more than that share of the clean scores)`,
      c.achievedFpr,
    );
  }
  if (c.atCeiling !== undefined && c.atCeiling > n)
    r.fail("calibration.atCeiling", `at most calibration.count (${n})`, c.atCeiling);
  if ((c.scoreMin === undefined) !== (c.scoreMax === undefined))
    r.fail(
      c.scoreMin === undefined ? "calibration.scoreMin" : "calibration.scoreMax",
      "recorded together with the other end of the range",
      undefined,
    );
  if (c.scoreMin === undefined || c.scoreMax === undefined) {
    warnings.push(
      "its calibration records no range of clean scores (calibration.scoreMin/scoreMax): the threshold is checked against the score rule's range and the recorded quantiles only; re-run `badexpert defend` to record it",
    );
    return warnings;
  }
  const { scoreMin: lo, scoreMax: hi } = c;
  if (!(lo <= q.p50)) r.fail("calibration.scoreMin", `at most scoreQuantiles.p50 (${q.p50})`, lo);
  if (!(q.p99 <= hi)) r.fail("calibration.scoreMax", `at least scoreQuantiles.p99 (${q.p99})`, hi);
  if (!(t >= lo && t <= hi))
    r.fail(
      "calibration.threshold",
      `within the clean calibration scores it was picked from, [scoreMin ${lo}, scoreMax ${hi}]`,
      t,
    );
  const e = slack(lo, hi);
  if (!(c.scoreMean >= lo - e && c.scoreMean <= hi + e))
    r.fail("calibration.scoreMean", `within [scoreMin ${lo}, scoreMax ${hi}]`, c.scoreMean);
  if (!(c.scoreStd <= (hi - lo) / 2 + e))
    r.fail("calibration.scoreStd", `at most half the range of the scores (${(hi - lo) / 2})`, c.scoreStd);
  return warnings;
}
