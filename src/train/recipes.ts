// Default training recipes per dataset: which zoo model and which hyperparameters a plain
// `badexpert train --dataset X` uses. Every value can be overridden on the command line.
// Figures reached with these defaults: docs/performance.md ("Training") and RESULTS.md.
import { DEFAULT_CONFIG, type TrainConfig } from "./config.js";

export interface Recipe {
  model: string;
  config: TrainConfig;
}

const greyscale: Recipe = {
  model: "compact-cnn",
  config: {
    ...DEFAULT_CONFIG,
    epochs: 6,
    batchSize: 128,
    optimizer: "adam",
    lr: 2e-3,
    weightDecay: 0,
    nesterov: false,
    schedule: "onecycle",
    // Small shifts only: digits and clothes are not mirror-symmetric in general.
    augment: { cropPadding: 2 },
  },
};

const cifar: Recipe = {
  model: "resnet18",
  config: {
    ...DEFAULT_CONFIG,
    epochs: 30,
    batchSize: 128,
    optimizer: "sgd",
    lr: 0.1,
    momentum: 0.9,
    nesterov: true,
    weightDecay: 5e-4,
    schedule: "onecycle",
    augment: { cropPadding: 4, flipProbability: 0.5 },
  },
};

const gtsrb: Recipe = {
  model: "resnet18",
  config: { ...cifar.config, epochs: 20, augment: { rotationDegrees: 15, cropPadding: 2 } },
};

const RECIPES: Record<string, Recipe> = {
  mnist: greyscale,
  "fashion-mnist": greyscale,
  cifar10: cifar,
  "cifar10-folder": cifar,
  gtsrb,
  "image-folder": { model: "resnet18", config: { ...cifar.config, epochs: 20 } },
};

export function recipeFor(dataset: string): Recipe {
  const r = RECIPES[dataset];
  if (!r)
    throw new RangeError(`no training recipe for dataset '${dataset}'; known: ${Object.keys(RECIPES).join(", ")}`);
  return {
    model: r.model,
    config: { ...r.config, augment: { ...r.config.augment }, milestones: [...r.config.milestones] },
  };
}
