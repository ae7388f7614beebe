// Hand-made models and images for the detector tests: a model whose logits are fixed whatever the
// input, a model that thresholds the mean pixel value, and small synthetic datasets.
import { tensor, tidy, type Tensor } from "../../src/engine/index.js";
import { Module } from "../../src/nn/index.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import type { DetectorContext } from "../../src/detectors/detector.js";
import { createModel } from "../../src/models/registry.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";

/** Returns the same logits for every input (a prediction no perturbation can change). */
export class ConstantLogits extends Module<[Tensor], Tensor> {
  readonly logits: number[];
  constructor(logits: number[]) {
    super();
    this.logits = logits;
  }
  forward(x: Tensor): Tensor {
    return tidy(() => tensor(Float32Array.from(this.logits), { shape: [1, this.logits.length] }).repeat([x.dim(0), 1]));
  }
}

/** Class 0 iff the mean pixel value exceeds 0.5 (logits [mean - 0.5, 0]). */
export class MeanThreshold extends Module<[Tensor], Tensor> {
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const m = x.mean([1, 2, 3]).sub(0.5).unsqueeze(1);
      return m.mul(100).pad([0, 1], "constant", 0);
    });
  }
}

export const GREY8 = { imageSize: [8, 8] as [number, number], channels: 1, mean: [0], std: [1] };

export function context(model: Module, numClasses: number): DetectorContext {
  return {
    model,
    spec: { name: "compact-cnn", numClasses, inChannels: 1, imageSize: 8 },
    preprocessing: GREY8,
    classNames: Array.from({ length: numClasses }, (_, i) => `c${i}`),
    dataset: "synthetic",
  };
}

/** `count` 8x8 grey images filled by `pixel(i, k)` (0..255), labels i mod numClasses. */
export function syntheticSet(count: number, numClasses: number, pixel: (i: number, k: number) => number): ImageDataset {
  const images = new Uint8Array(count * 64);
  for (let i = 0; i < count; i++) for (let k = 0; k < 64; k++) images[i * 64 + k] = pixel(i, k);
  return {
    name: "synthetic",
    split: "test",
    images,
    labels: Int32Array.from({ length: count }, (_, i) => i % numClasses),
    count,
    height: 8,
    width: 8,
    channels: 1,
    classNames: Array.from({ length: numClasses }, (_, i) => `c${i}`),
    source: "memory",
  };
}

/** An untrained compact CNN saved as a Fashion-MNIST checkpoint at `dir` (its training record names `attack`, if given). */
export async function untrainedFashionCheckpoint(dir: string, attack?: string): Promise<void> {
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
  const model = createModel("compact-cnn", spec);
  try {
    await saveCheckpoint(dir, model, {
      model: spec,
      dataset: { name: "fashion-mnist", trainCount: 60000, testCount: 10000 },
      preprocessing: { imageSize: [28, 28], channels: 1, mean: [0.286], std: [0.353] },
      classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
      training: attack ? { attack: { name: attack, params: {} } } : {},
      metrics: {},
    });
  } finally {
    model.dispose();
  }
}
