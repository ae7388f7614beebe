// Seeded, disjoint index splits. The BaDExpert protocol takes the defender's reserved clean set
// from the test set and needs separate calibration and evaluation splits; all are disjoint.
import { Rng } from "../util/rng.js";
import type { ImageDataset } from "./dataset.js";

export interface SplitSpec {
  [name: string]: number;
}

/**
 * Shuffles 0..count-1 with `seed` and cuts consecutive pieces of the given sizes (a size in
 * (0, 1) is a fraction of count; -1 takes the rest, at most once). Returns sorted index arrays.
 */
export function splitIndices(count: number, sizes: SplitSpec, seed: number): Record<string, Int32Array> {
  const entries = Object.entries(sizes);
  const resolved = entries.map(([name, s]) => {
    if (s === -1) return [name, -1] as const;
    if (!(s >= 0)) throw new RangeError(`split '${name}': size must be a count, a fraction in (0, 1) or -1, got ${s}`);
    return [name, s > 0 && s < 1 ? Math.round(s * count) : s] as const;
  });
  const rests = resolved.filter(([, s]) => s === -1).length;
  if (rests > 1) throw new RangeError("splitIndices: at most one split may take the rest (-1)");
  const fixed = resolved.reduce((a, [, s]) => a + (s === -1 ? 0 : s), 0);
  if (resolved.some(([, s]) => s !== -1 && !Number.isInteger(s)))
    throw new RangeError("splitIndices: counts must be integers");
  if (fixed > count) throw new RangeError(`splitIndices: the splits need ${fixed} samples, the dataset has ${count}`);
  const perm = new Rng(seed).permutation(count);
  const out: Record<string, Int32Array> = {};
  let at = 0;
  for (const [name, s] of resolved) {
    const n = s === -1 ? count - fixed : s;
    out[name] = perm.slice(at, at + n).sort();
    at += n;
  }
  return out;
}

/** A dataset restricted to `indices` (copies the selected images). */
export function subset(ds: ImageDataset, indices: ArrayLike<number>, name?: string): ImageDataset {
  const per = ds.height * ds.width * ds.channels;
  const images = new Uint8Array(indices.length * per);
  const labels = new Int32Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k] as number;
    if (!Number.isInteger(i) || i < 0 || i >= ds.count)
      throw new RangeError(`subset: index ${i} out of range for ${ds.count} samples`);
    images.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
    labels[k] = ds.labels[i] as number;
  }
  return { ...ds, name: name ?? ds.name, images, labels, count: indices.length };
}

/** Indices whose label is (or is not) in `classes`. */
export function indicesWhere(ds: ImageDataset, keep: (label: number) => boolean): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < ds.count; i++) if (keep(ds.labels[i] as number)) out.push(i);
  return Int32Array.from(out);
}
