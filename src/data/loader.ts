// Batches over an ImageDataset: seeded shuffling (a new order each epoch, reproducible), optional
// label override, augmentation and normalisation. Iterating yields batches the caller owns
// (dispose them, or consume each inside tidy).
import { tidy } from "../engine/index.js";
import { Rng } from "../util/rng.js";
import type { ImageDataset } from "./dataset.js";
import { makeBatch, type Batch } from "./batch.js";
import { augmentBatch, normalize, type AugmentOptions } from "./augment.js";

export interface LoaderOptions {
  batchSize: number;
  shuffle?: boolean;
  /** Seed for order and augmentation; epoch e uses Rng.derive(seed, e). */
  seed?: number;
  dropLast?: boolean;
  augment?: AugmentOptions;
  /** Per-channel mean/std in [0, 1] units; omitted: no normalisation. */
  normalization?: { mean: readonly number[]; std: readonly number[] };
  /** Labels to train on instead of the dataset's (same length as the dataset). */
  labels?: Int32Array;
}

export class DataLoader {
  readonly dataset: ImageDataset;
  readonly options: LoaderOptions;
  #epoch = 0;

  constructor(dataset: ImageDataset, options: LoaderOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${options.batchSize}`);
    }
    if (options.labels && options.labels.length !== dataset.count) {
      throw new RangeError(
        `DataLoader: labels has ${options.labels.length} entries, the dataset has ${dataset.count} samples`,
      );
    }
    this.dataset = dataset;
    this.options = options;
  }

  get numBatches(): number {
    const n = this.dataset.count / this.options.batchSize;
    return this.options.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** Sets the epoch whose order the next iteration uses (epochs advance automatically too). */
  setEpoch(epoch: number): void {
    this.#epoch = epoch;
  }

  *[Symbol.iterator](): Generator<Batch> {
    const o = this.options;
    const rng = Rng.derive(o.seed ?? 0, this.#epoch);
    this.#epoch++;
    const n = this.dataset.count;
    const order = o.shuffle ? rng.permutation(n) : Int32Array.from({ length: n }, (_, i) => i);
    for (let b = 0; b < this.numBatches; b++) {
      const idx = order.subarray(b * o.batchSize, Math.min(n, (b + 1) * o.batchSize));
      const labels = o.labels ? Array.from(idx, (i) => o.labels?.[i] as number) : undefined;
      const raw = makeBatch(this.dataset, idx, labels);
      const x = tidy(() => {
        let t = o.augment ? augmentBatch(raw.x, o.augment, rng) : raw.x.alias();
        if (o.normalization) t = normalize(t, o.normalization.mean, o.normalization.std);
        return t;
      });
      raw.x.dispose();
      yield { x, y: raw.y, indices: Int32Array.from(idx) };
    }
  }
}
