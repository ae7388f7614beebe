// Statistics for the evaluation matrix (bench:matrix): mean and sample standard deviation over
// seeds, and a seeded bootstrap percentile interval for the mean AUROC over seeds. The bootstrap
// is two-level: each replicate draws the seeds with replacement, then each drawn seed's positive
// and negative scores with replacement, and averages the drawn seeds' AUROCs; so the interval
// carries both the spread between trained models and the finite evaluation sets.
import { Rng } from "../../src/util/rng.js";

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single value. */
  std: number;
  n: number;
}

export function meanStd(xs: readonly number[]): MeanStd {
  const n = xs.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, n: 0 };
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  const ss = xs.reduce((s, x) => s + (x - mean) ** 2, 0);
  return { mean, std: n > 1 ? Math.sqrt(ss / (n - 1)) : 0, n };
}

/** The q-quantile (0 ≤ q ≤ 1) of ascending-sorted values, interpolating linearly between ranks. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantileSorted: q must be in [0, 1], got ${q}`);
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const a = sorted[lo] as number;
  return a + (pos - lo) * ((sorted[hi] as number) - a);
}

/** One seed's scores, pooled and sorted once so that each bootstrap replicate is linear time. */
export class RankedScores {
  readonly positives: number;
  readonly negatives: number;
  /** Pooled scores, ascending. */
  readonly #values: Float64Array;
  /** For each pooled score: index into the positives (≥ 0) or −1 − index into the negatives. */
  readonly #owner: Int32Array;

  constructor(positives: ArrayLike<number>, negatives: ArrayLike<number>) {
    this.positives = positives.length;
    this.negatives = negatives.length;
    const n = this.positives + this.negatives;
    const owner = Int32Array.from({ length: n }, (_, i) => (i < this.positives ? i : -1 - (i - this.positives)));
    const value = (o: number) => (o >= 0 ? (positives[o] as number) : (negatives[-1 - o] as number));
    for (const o of owner) {
      if (Number.isNaN(value(o)))
        throw new RangeError(
          `RankedScores: ${o >= 0 ? `positive ${o}` : `negative ${-1 - o}`} is NaN (expected a number; ±Infinity is allowed)`,
        );
    }
    const sorted = Array.from(owner).sort((x, y) => (value(x) < value(y) ? -1 : value(x) > value(y) ? 1 : 0));
    this.#owner = Int32Array.from(sorted);
    this.#values = Float64Array.from(sorted, value);
  }

  /**
   * AUROC with each score counted `weight` times: P(pos > neg) + ½ P(pos = neg). Unit weights give
   * the plain AUROC (as src/defense/metrics.ts computes it); bootstrap counts give a replicate.
   */
  weightedAuroc(posWeight: ArrayLike<number>, negWeight: ArrayLike<number>): number {
    let negBelow = 0;
    let acc = 0;
    let posTotal = 0;
    const n = this.#values.length;
    let i = 0;
    while (i < n) {
      let pw = 0;
      let nw = 0;
      const v = this.#values[i] as number;
      for (; i < n && this.#values[i] === v; i++) {
        const o = this.#owner[i] as number;
        if (o >= 0) pw += posWeight[o] as number;
        else nw += negWeight[-1 - o] as number;
      }
      acc += pw * (negBelow + 0.5 * nw);
      negBelow += nw;
      posTotal += pw;
    }
    return posTotal > 0 && negBelow > 0 ? acc / (posTotal * negBelow) : Number.NaN;
  }

  auroc(): number {
    return this.weightedAuroc(new Float64Array(this.positives).fill(1), new Float64Array(this.negatives).fill(1));
  }
}

export interface BootstrapOptions {
  /** Replicates (default 1000). */
  reps?: number;
  /** Interval level (default 0.95). */
  level?: number;
  seed?: number;
}

export interface Interval {
  low: number;
  high: number;
  level: number;
  reps: number;
}

/** Percentile bootstrap interval of the mean AUROC over seeds (see the file comment). */
export function bootstrapMeanAuroc(seeds: readonly RankedScores[], o: BootstrapOptions = {}): Interval {
  const reps = o.reps ?? 1000;
  const level = o.level ?? 0.95;
  if (!Number.isInteger(reps) || reps < 1)
    throw new RangeError(`bootstrapMeanAuroc: reps must be a positive integer, got ${reps}`);
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrapMeanAuroc: level must be in (0, 1), got ${level}`);
  if (seeds.length === 0) return { low: Number.NaN, high: Number.NaN, level, reps };
  const rng = new Rng(o.seed ?? 0);
  const draws = new Float64Array(reps);
  for (let r = 0; r < reps; r++) {
    let sum = 0;
    for (let k = 0; k < seeds.length; k++) {
      const s = seeds[rng.int(0, seeds.length)] as RankedScores;
      sum += s.weightedAuroc(drawCounts(s.positives, rng), drawCounts(s.negatives, rng));
    }
    draws[r] = sum / seeds.length;
  }
  draws.sort();
  const tail = (1 - level) / 2;
  return { low: quantileSorted(draws, tail), high: quantileSorted(draws, 1 - tail), level, reps };
}

/** How often each of n items is drawn in n uniform draws with replacement. */
export function drawCounts(n: number, rng: Rng): Uint32Array {
  const counts = new Uint32Array(n);
  for (let k = 0; k < n; k++) {
    const j = rng.int(0, n);
    counts[j] = (counts[j] as number) + 1;
  }
  return counts;
}
