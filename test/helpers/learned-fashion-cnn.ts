// A small compact CNN that has learned Fashion-MNIST (two SGD epochs on 1,500 test images outside
// the defender's splits), with its reserved and calibration splits: the real model that the
// rate-choosing procedures' tests measure against. The caller disposes the model.
import { manualSeed } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { createModel } from "../../src/models/registry.js";
import type { Module } from "../../src/nn/index.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { fit } from "../../src/train/trainer.js";
import { DEFAULT_CONFIG } from "../../src/train/config.js";

export const FASHION_CNN_SPEC = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
export const FASHION_PREPROCESSING = {
  imageSize: [28, 28] as [number, number],
  channels: 1,
  mean: [0.286],
  std: [0.353],
};

export async function learnedFashionCnn(o: {
  splitSeed: number;
  reserved: number;
  calibration: number;
  initSeed: number;
}): Promise<{
  model: Module;
  reserved: ImageDataset;
  calibration: ImageDataset;
}> {
  const testSet = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(testSet.count, { seed: o.splitSeed, reserved: o.reserved, calibration: o.calibration });
  manualSeed(o.initSeed);
  const model = createModel("compact-cnn", FASHION_CNN_SPEC);
  try {
    const config = {
      ...DEFAULT_CONFIG,
      epochs: 2,
      batchSize: 64,
      optimizer: "sgd" as const,
      lr: 0.05,
      momentum: 0.9,
      nesterov: true,
      weightDecay: 0,
      schedule: "none" as const,
      augment: {},
      seed: 1,
    };
    await fit(model, subset(testSet, s.evaluation.subarray(0, 1500)), config, {
      normalization: FASHION_PREPROCESSING,
      silent: true,
    });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, reserved: subset(testSet, s.reserved), calibration: subset(testSet, s.calibration) };
}
