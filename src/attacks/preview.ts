// Preview pictures of a trigger: clean test images above the same images triggered, upscaled
// with nearest-neighbour sampling so that a one-pixel pattern stays visible.
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import sharp from "sharp";
import type { ImageDataset } from "../data/dataset.js";
import { subset } from "../data/splits.js";
import { Rng } from "../util/rng.js";
import type { Attack } from "./attack.js";

export interface RawPicture {
  /** height*width*channels bytes, HWC */
  data: Uint8Array;
  height: number;
  width: number;
  channels: number;
}

export interface GridOptions {
  /** Upscaling factor (nearest neighbour); default 4. */
  scale?: number;
  /** Pixels between images, after scaling; default 2. */
  gap?: number;
  /** Grey value of the gaps; default 128. */
  background?: number;
}

/**
 * Lays out rows of images (each row: `columns` images of h×w×c, NHWC bytes) as one picture,
 * every image upscaled by `scale`.
 */
export function imageGrid(
  rows: readonly Uint8Array[],
  columns: number,
  h: number,
  w: number,
  c: number,
  o: GridOptions = {},
): RawPicture {
  const scale = o.scale ?? 4;
  const gap = o.gap ?? 2;
  if (!Number.isInteger(scale) || scale < 1)
    throw new RangeError(`imageGrid: scale must be a positive integer, got ${scale}`);
  const per = h * w * c;
  const cellW = w * scale;
  const cellH = h * scale;
  const width = columns * cellW + (columns + 1) * gap;
  const height = rows.length * cellH + (rows.length + 1) * gap;
  const data = new Uint8Array(width * height * c).fill(o.background ?? 128);
  rows.forEach((row, r) => {
    if (row.length !== columns * per)
      throw new RangeError(`imageGrid: row ${r} has ${row.length} bytes, expected ${columns} images of ${h}x${w}x${c}`);
    for (let k = 0; k < columns; k++) {
      const top = gap + r * (cellH + gap);
      const left = gap + k * (cellW + gap);
      for (let y = 0; y < cellH; y++) {
        const srcRow = k * per + Math.floor(y / scale) * w * c;
        for (let x = 0; x < cellW; x++) {
          const src = srcRow + Math.floor(x / scale) * c;
          const dst = ((top + y) * width + left + x) * c;
          for (let ch = 0; ch < c; ch++) data[dst + ch] = row[src + ch] as number;
        }
      }
    }
  });
  return { data, height, width, channels: c };
}

export interface PreviewOptions extends GridOptions {
  /** Images per row; default 8. */
  count?: number;
  /** Seeds which test images are shown; default 0. */
  seed?: number;
  /** Add a third row: |triggered − clean| amplified by this factor (0: no row); default 0. */
  diffGain?: number;
}

export interface Preview {
  picture: RawPicture;
  /** Test-set indices of the images shown. */
  indices: Int32Array;
}

/**
 * Clean test images that count for the attack success rate (the attack's own convention: e.g.
 * not of the target class, or only of TaCT's source class), above their triggered versions.
 */
export function attackPreview(attack: Attack, test: ImageDataset, o: PreviewOptions = {}): Preview {
  const count = o.count ?? 8;
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`attackPreview: count must be a positive integer, got ${count}`);
  const order = new Rng(o.seed ?? 0).permutation(test.count);
  // Trigger a growing random sample until enough of it counts (TaCT keeps only one class in ten).
  let take = Math.min(test.count, 4 * count);
  for (;;) {
    const picked = order.slice(0, take);
    const poisoned = attack.poisonedTestSet(subset(test, picked));
    if (poisoned.dataset.count >= count || take === test.count) {
      const n = Math.min(count, poisoned.dataset.count);
      if (n === 0)
        throw new RangeError(`attackPreview: no test image of ${test.name} counts for attack '${attack.name}'`);
      const per = test.height * test.width * test.channels;
      const rowsIdx = poisoned.sourceIndices.subarray(0, n);
      const indices = Int32Array.from(rowsIdx, (r) => picked[r] as number);
      const clean = new Uint8Array(n * per);
      indices.forEach((i, k) => clean.set(test.images.subarray(i * per, (i + 1) * per), k * per));
      const triggered = poisoned.dataset.images.subarray(0, n * per);
      const rows = [clean, triggered];
      const gain = o.diffGain ?? 0;
      if (gain > 0)
        rows.push(Uint8Array.from(clean, (v, p) => Math.min(255, Math.abs((triggered[p] as number) - v) * gain)));
      return { picture: imageGrid(rows, n, test.height, test.width, test.channels, o), indices };
    }
    take = Math.min(test.count, take * 4);
  }
}

/** Writes a raw picture as PNG (creating the folder). */
export async function writePng(path: string, p: RawPicture): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  if (p.channels !== 1 && p.channels !== 3 && p.channels !== 4)
    throw new RangeError(`writePng: ${p.channels} channels cannot be written as PNG`);
  await sharp(p.data, { raw: { width: p.width, height: p.height, channels: p.channels } })
    .png()
    .toFile(path);
}
