// Training hyperparameters, their defaults and validation. One object describes a run so it
// can be written next to the checkpoint and read back to resume.
import type { AugmentOptions } from "../data/augment.js";

export type OptimizerName = "sgd" | "adam" | "adamw";
export type ScheduleName = "none" | "multistep" | "cosine" | "onecycle";

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerName;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  schedule: ScheduleName;
  /** Epochs at which MultiStep multiplies the rate by gamma. */
  milestones: number[];
  gamma: number;
  /**
   * Epochs over which the rate rises linearly from 1/steps of its scheduled value to all of it
   * (Goyal et al. 2017): a large rate's first steps can blow up a network without BatchNorm,
   * which the warmup avoids. 0 or omitted: none. May be fractional.
   */
  warmupEpochs?: number;
  seed: number;
  augment: AugmentOptions;
  labelSmoothing: number;
}

export const DEFAULT_CONFIG: TrainConfig = {
  epochs: 10,
  batchSize: 128,
  lr: 0.1,
  optimizer: "sgd",
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  schedule: "cosine",
  milestones: [],
  gamma: 0.1,
  seed: 0,
  augment: {},
  labelSmoothing: 0,
};

export function validateConfig(c: TrainConfig): TrainConfig {
  const posInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`training: ${name} must be a positive integer, got ${v}`);
  };
  posInt("epochs", c.epochs);
  posInt("batchSize", c.batchSize);
  if (!(c.lr > 0)) throw new RangeError(`training: lr must be positive, got ${c.lr}`);
  if (!["sgd", "adam", "adamw"].includes(c.optimizer))
    throw new RangeError(`training: optimizer must be sgd, adam or adamw, got '${c.optimizer}'`);
  if (!["none", "multistep", "cosine", "onecycle"].includes(c.schedule)) {
    throw new RangeError(`training: schedule must be none, multistep, cosine or onecycle, got '${c.schedule}'`);
  }
  if (!Number.isInteger(c.seed) || c.seed < 0)
    throw new RangeError(`training: seed must be a non-negative integer, got ${c.seed}`);
  if (c.warmupEpochs !== undefined && !(c.warmupEpochs >= 0 && c.warmupEpochs <= c.epochs)) {
    throw new RangeError(`training: warmupEpochs must be in [0, epochs = ${c.epochs}], got ${c.warmupEpochs}`);
  }
  if (!(c.weightDecay >= 0)) throw new RangeError(`training: weightDecay must be >= 0, got ${c.weightDecay}`);
  return c;
}
