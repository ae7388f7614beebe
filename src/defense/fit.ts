// Building a detector from a suspicious model and a reserved clean set (Steps 1, 2 and 4 of
// BaDExpert): B = M finetuned for one epoch on deliberately wrong labels y' = (y + 1) mod C
// (Adam, no weight decay); M' = M finetuned on the correct labels (SGD Nesterov, MultiStep);
// the threshold is calibrated on a separate clean split at the target FPR.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import { cloneModel as cloneOf } from "../models/model-source.js";
import { fit, type FitOptions } from "../train/trainer.js";
import { DEFAULT_CONFIG, type TrainConfig } from "../train/config.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { BadExpertDetector } from "./detector.js";
import { calibrationFor } from "./recalibrate.js";
import { assertScoreRule, type ScoreRule } from "./scores.js";
import { Rng } from "../util/rng.js";
import {
  UNLEARN_LABEL_MAPPINGS,
  type FinetuneOptions,
  type UnlearnLabelMapping,
  type UnlearnOptions,
} from "./defaults.js";

export interface FitDefenseOptions {
  unlearn: UnlearnOptions;
  finetune: FinetuneOptions;
  augment: AugmentOptions;
  rule: ScoreRule;
  targetFpr: number;
  seed: number;
  silent?: boolean;
  /** Where B and M' are finetuned ("cpu", "cuda", "cuda:N"); the detector's models end on the CPU, where it scores. */
  device?: string;
}

/** A fresh model of the same architecture carrying M's weights. */
export function cloneModel(model: Module, spec: ModelSpec): Module {
  return cloneOf(model, spec);
}

/** (y + 1) mod C for every sample: the "deliberately wrong" labels B is trained on. */
export function shiftedLabels(ds: Pick<ImageDataset, "labels" | "classNames">): Int32Array {
  const c = ds.classNames.length;
  return Int32Array.from(ds.labels, (y) => (y + 1) % c);
}

/**
 * The wrong labels B unlearns on (every one differs from the true label):
 * - "shift" (the paper's): (y + 1) mod C;
 * - "permutation": π(y) for one seeded random derangement π of the classes;
 * - "random": for each sample, one of the C − 1 wrong classes drawn uniformly (seeded), so B
 *   learns "any class but the true one" instead of one fixed wrong class per class.
 */
export function unlearningLabels(
  ds: Pick<ImageDataset, "labels" | "classNames">,
  mapping: UnlearnLabelMapping,
  seed: number,
): Int32Array {
  const c = ds.classNames.length;
  if (c < 2)
    throw new RangeError(`unlearning labels: the dataset must have at least 2 classes to relabel wrongly, got ${c}`);
  if (mapping === "shift") return shiftedLabels(ds);
  if (mapping === "permutation") {
    const rng = Rng.derive(seed, 8123);
    for (;;) {
      const p = rng.permutation(c);
      if (p.every((to, from) => to !== from)) return Int32Array.from(ds.labels, (y) => p[y] as number);
    }
  }
  if (mapping === "random") {
    const rng = Rng.derive(seed, 8111);
    return Int32Array.from(ds.labels, (y) => (y + 1 + rng.int(0, c - 1)) % c);
  }
  throw new RangeError(
    `unlearning labels: mapping must be one of ${UNLEARN_LABEL_MAPPINGS.join(", ")}, got ${JSON.stringify(mapping)}`,
  );
}

/** A copy of M trained with `config`; the copy is freed if training fails. */
async function trainedCopy(
  model: Module,
  spec: ModelSpec,
  data: ImageDataset,
  config: TrainConfig,
  fitOptions: FitOptions,
  judge?: (copy: Module, epoch: number) => boolean,
): Promise<Module> {
  const copy = cloneModel(model, spec);
  const device = fitOptions.device ?? "cpu";
  try {
    if (device !== "cpu") copy.to(device);
    await fit(
      copy,
      data,
      config,
      judge ? { ...fitOptions, onEpoch: async (record) => judge(copy, record.epoch) } : fitOptions,
    );
    if (device !== "cpu") copy.to("cpu");
  } catch (e) {
    copy.dispose();
    throw e;
  }
  return copy.eval();
}

/** Step 1: the backdoor expert. */
export function extractBackdoorExpert(
  model: Module,
  spec: ModelSpec,
  reserved: ImageDataset,
  o: {
    unlearn: UnlearnOptions;
    augment: AugmentOptions;
    normalization: Preprocessing;
    seed: number;
    silent?: boolean;
    device?: string;
  },
): Promise<Module> {
  const u = o.unlearn;
  const config: TrainConfig = {
    ...DEFAULT_CONFIG,
    epochs: u.epochs,
    batchSize: u.batchSize,
    optimizer: "adam",
    lr: u.lr,
    weightDecay: 0,
    schedule: "none",
    augment: o.augment,
    seed: o.seed,
  };
  return trainedCopy(model, spec, reserved, config, {
    normalization: o.normalization,
    labels: unlearningLabels(reserved, u.labels ?? "shift", o.seed),
    silent: o.silent ?? false,
    ...(o.device ? { device: o.device } : {}),
  });
}

/** Step 2: the auxiliary model. */
export function finetuneAuxiliary(
  model: Module,
  spec: ModelSpec,
  reserved: ImageDataset,
  o: {
    finetune: FinetuneOptions;
    augment: AugmentOptions;
    normalization: Preprocessing;
    seed: number;
    silent?: boolean;
    device?: string;
    /** Called after each epoch with the model being finetuned; `true` ends its finetuning there. */
    judge?: (copy: Module, epoch: number) => boolean;
  },
): Promise<Module> {
  const f = o.finetune;
  const config: TrainConfig = {
    ...DEFAULT_CONFIG,
    epochs: f.epochs,
    batchSize: f.batchSize,
    optimizer: "sgd",
    lr: f.lr,
    momentum: f.momentum,
    nesterov: true,
    weightDecay: f.weightDecay,
    schedule: "multistep",
    milestones: f.milestones,
    gamma: f.gamma,
    warmupEpochs: f.warmupEpochs ?? 0,
    augment: o.augment,
    seed: o.seed + 1,
  };
  const fitOptions: FitOptions = {
    normalization: o.normalization,
    silent: o.silent ?? false,
    ...(o.device ? { device: o.device } : {}),
  };
  return trainedCopy(model, spec, reserved, config, fitOptions, o.judge);
}

/** Steps 1, 2 and 4: returns a calibrated detector that owns copies of the three models. */
export async function fitBadExpert(
  model: Module,
  meta: { spec: ModelSpec; preprocessing: Preprocessing; classNames: string[] },
  reserved: ImageDataset,
  calibration: ImageDataset,
  o: FitDefenseOptions,
  /** B and M' already made with o.unlearn and o.finetune (the procedures that choose their rates); the detector takes ownership. */
  prefit: { expert?: Module; auxiliary?: Module } = {},
): Promise<BadExpertDetector> {
  const t0 = Date.now();
  let expert: Module;
  try {
    assertScoreRule(o.rule);
    for (const [name, ds] of [
      ["reserved clean set", reserved],
      ["calibration set", calibration],
    ] as const) {
      const [h, w] = meta.preprocessing.imageSize;
      if (ds.height !== h || ds.width !== w || ds.channels !== meta.preprocessing.channels) {
        throw new RangeError(
          `${name}: images are ${ds.height}x${ds.width}x${ds.channels} but the model takes ${h}x${w}x${meta.preprocessing.channels}`,
        );
      }
      if (ds.classNames.length !== meta.spec.numClasses) {
        throw new RangeError(`${name}: ${ds.classNames.length} classes but the model has ${meta.spec.numClasses}`);
      }
    }
    expert =
      prefit.expert ??
      (await extractBackdoorExpert(model, meta.spec, reserved, { ...o, normalization: meta.preprocessing }));
  } catch (e) {
    prefit.expert?.dispose();
    prefit.auxiliary?.dispose();
    throw e;
  }
  const t1 = Date.now();
  const auxiliary =
    prefit.auxiliary ??
    (await finetuneAuxiliary(model, meta.spec, reserved, { ...o, normalization: meta.preprocessing }));
  const t2 = Date.now();
  const m = cloneModel(model, meta.spec);
  const provisional = BadExpertDetector.uncalibrated(
    { model: m, expert, auxiliary },
    {
      spec: meta.spec,
      preprocessing: meta.preprocessing,
      classNames: meta.classNames,
      rule: o.rule,
      targetFpr: o.targetFpr,
    },
  );
  const cal = calibrationFor(provisional, o.rule, o.targetFpr, calibration);
  const t3 = Date.now();
  return new BadExpertDetector(
    { model: m, expert, auxiliary },
    {
      ...provisional.info,
      threshold: cal.threshold,
      calibration: cal,
      creation: {
        unlearn: o.unlearn,
        finetune: o.finetune,
        augment: o.augment,
        seed: o.seed,
        reservedCount: reserved.count,
        calibrationCount: calibration.count,
        seconds: { expert: (t1 - t0) / 1000, auxiliary: (t2 - t1) / 1000, calibration: (t3 - t2) / 1000 },
        createdAt: new Date().toISOString(),
      },
    },
  );
}
