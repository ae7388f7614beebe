// Generated datasets and helpers for the attack tests.
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import type { ImageSpec } from "../../src/attacks/index.js";

/** `count` images with pseudo-random pixels (not only 0/255, so blends are visible) and labels i mod classes. */
export function generated(
  count: number,
  h = 32,
  w = 32,
  c = 3,
  classes = 10,
  split: "train" | "test" = "train",
): ImageDataset {
  const images = new Uint8Array(count * h * w * c);
  let s = 12345;
  for (let i = 0; i < images.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    images[i] = 20 + ((s >>> 16) % 216); // 20..235: away from 0 and 255, so additive triggers are not clamped
  }
  const labels = Int32Array.from({ length: count }, (_, i) => i % classes);
  const classNames = Array.from({ length: classes }, (_, i) => `c${i}`);
  return {
    name: "generated",
    split,
    images,
    labels,
    count,
    height: h,
    width: w,
    channels: c,
    classNames,
    source: "generated",
  };
}

export function specOf(ds: ImageDataset): ImageSpec {
  return { numClasses: ds.classNames.length, height: ds.height, width: ds.width, channels: ds.channels };
}

/** Like noLeaks, for async functions. */
export async function noLeaksAsync<T>(fn: () => Promise<T>): Promise<T> {
  const before = memory().numTensors;
  const r = await fn();
  assert.equal(memory().numTensors, before, `tensor leak: ${memory().numTensors - before} tensor(s) not disposed`);
  return r;
}

/** Indices of the images that differ between two datasets of the same shape. */
export function changedImages(a: ImageDataset, b: ImageDataset): number[] {
  const per = a.height * a.width * a.channels;
  const out: number[] = [];
  for (let i = 0; i < a.count; i++) {
    for (let p = i * per; p < (i + 1) * per; p++) {
      if (a.images[p] !== b.images[p]) {
        out.push(i);
        break;
      }
    }
  }
  return out;
}

export const SIZES: readonly [number, number, number][] = [
  [28, 28, 1],
  [32, 32, 3],
  [64, 64, 3],
];
