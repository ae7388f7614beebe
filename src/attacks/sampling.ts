// Seeded choice of which training samples an attack poisons or covers.
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";

/**
 * Number of samples a rate asks for. Rounded rather than truncated: 0.003 * 50000 is
 * 150.00000000000003 in floating point and 0.07 * 100 is 7.000000000000001.
 */
export function countFromRate(rate: number, total: number): number {
  return Math.round(rate * total);
}

/** Indices i with keep(label_i, i). */
export function candidates(ds: ImageDataset, keep: (label: number, index: number) => boolean): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < ds.count; i++) if (keep(ds.labels[i] as number, i)) out.push(i);
  return Int32Array.from(out);
}

/**
 * `count` distinct entries of `pool`, chosen with `rng` (partial Fisher–Yates), sorted. Throws
 * `shortage()`'s message when the pool is too small, so the caller can say which rate and class.
 */
export function choose(pool: Int32Array, count: number, rng: Rng, shortage: () => string): Int32Array {
  if (count > pool.length) throw new RangeError(shortage());
  const p = Int32Array.from(pool);
  for (let i = 0; i < count; i++) {
    const j = rng.int(i, p.length);
    const t = p[i] as number;
    p[i] = p[j] as number;
    p[j] = t;
  }
  return p.slice(0, count).sort();
}

/** Entries of `pool` not in `taken`. */
export function without(pool: Int32Array, taken: Int32Array): Int32Array {
  const s = new Set(taken);
  return pool.filter((i) => !s.has(i));
}
