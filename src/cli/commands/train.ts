// `badexpert train`: train a zoo model on a dataset (optionally backdoored by an attack) and write
// a checkpoint directory.
import { UsageError, type Command, type OptionSpec } from "../command.js";
import {
  COUNT,
  EPOCHS,
  LEARNING_RATE,
  SEED,
  choice,
  emitJson,
  intList,
  num,
  numWithDefault,
  requireStr,
  str,
} from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { datasetNames } from "../../data/registry.js";
import { modelNames } from "../../models/registry.js";
import { recipeFor } from "../../train/recipes.js";
import type { TrainConfig, OptimizerName, ScheduleName } from "../../train/config.js";
import { runTraining, defaultRunDir } from "../../jobs/train.js";

const OPTIMIZERS: readonly OptimizerName[] = ["sgd", "adam", "adamw"];
const SCHEDULES: readonly ScheduleName[] = ["none", "multistep", "cosine", "onecycle"];

const OPTIONS: Record<string, OptionSpec> = {
  dataset: {
    type: "string",
    short: "d",
    description: `dataset name: ${datasetNames().join(", ")}`,
    value: { kind: "choice", values: datasetNames() },
  },
  "data-path": {
    type: "string",
    description: "where the dataset lives (default: the dataset's standard location, if any)",
  },
  model: {
    type: "string",
    short: "m",
    description: "zoo model (default: the dataset's recipe)",
    value: { kind: "choice", values: modelNames() },
  },
  epochs: { type: "string", description: "training epochs", value: EPOCHS },
  "batch-size": { type: "string", description: "batch size", value: { kind: "int", min: 1, max: 65536 } },
  lr: { type: "string", description: "learning rate (peak rate for onecycle), in (0, 10]", value: LEARNING_RATE },
  optimizer: { type: "string", description: OPTIMIZERS.join(", "), value: { kind: "choice", values: OPTIMIZERS } },
  schedule: { type: "string", description: SCHEDULES.join(", "), value: { kind: "choice", values: SCHEDULES } },
  milestones: {
    type: "string",
    description: "multistep epochs, comma-separated",
    value: { kind: "int-list", min: 0, max: 100_000 },
  },
  "weight-decay": { type: "string", description: "weight decay, in [0, 1]", value: { kind: "float", min: 0, max: 1 } },
  "warmup-epochs": {
    type: "string",
    description: "epochs over which the rate rises linearly to its scheduled value (may be fractional; default 0)",
    value: { kind: "float", min: 0, max: 100_000 },
  },
  "image-size": {
    type: "string",
    description: "resize images to this side length",
    value: { kind: "int", min: 8, max: 4096 },
  },
  limit: { type: "string", description: "train on a seeded random subset of this many training images", value: COUNT },
  seed: {
    type: "string",
    description: "seed for initialisation, order, augmentation and poisoning",
    default: "0",
    value: SEED,
  },
  out: {
    type: "string",
    short: "o",
    description: "checkpoint directory (default: runs/<dataset>-<model>[-<attack>]-seed<seed>)",
  },
  resume: { type: "boolean", description: "continue the run saved in --out" },
  force: { type: "boolean", description: "replace an existing non-empty --out (otherwise refused)" },
  ...ATTACK_OPTIONS,
  "clean-model": { type: "string", description: "clean checkpoint for attacks that need one (clean-label)" },
  ...RUNTIME_OPTIONS,
};

export const train: Command = {
  name: "train",
  summary: "train a model (clean, or backdoored with --attack) and save a checkpoint (safetensors + JSON)",
  details: [
    "Defaults come from the dataset's recipe (src/train/recipes.ts); every hyperparameter can be overridden.",
    "A checkpoint is written after every epoch; --resume continues an interrupted run from its directory.",
    "With --attack the training set is poisoned first, and the checkpoint records the attack's configuration,",
    "the clean accuracy and the attack success rate (ASR) measured on the poisoned test set.",
  ].join("\n"),
  examples: [
    "badexpert train --dataset fashion-mnist --out runs/fmnist",
    "badexpert train --dataset fashion-mnist --attack blend --out runs/fmnist-blend",
    "badexpert train --dataset fashion-mnist --attack badnet --attack-param rate=0.01 --epochs 2 --out runs/fmnist-badnet",
  ],
  options: OPTIONS,
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const dataset = requireStr(v, "dataset", `one of ${datasetNames().join(", ")}`);
    const recipe = recipeFor(dataset);
    const model = str(v, "model") ?? recipe.model;
    const seed = numWithDefault(v, "seed", OPTIONS);
    const attackName = str(v, "attack");
    const config: TrainConfig = {
      ...recipe.config,
      seed,
      epochs: num(v, "epochs", OPTIONS) ?? recipe.config.epochs,
      batchSize: num(v, "batch-size", OPTIONS) ?? recipe.config.batchSize,
      lr: num(v, "lr", OPTIONS) ?? recipe.config.lr,
      optimizer: choice<OptimizerName>(v, "optimizer", OPTIMIZERS) ?? recipe.config.optimizer,
      schedule: choice<ScheduleName>(v, "schedule", SCHEDULES) ?? recipe.config.schedule,
      milestones: intList(v, "milestones", OPTIONS) ?? recipe.config.milestones,
      weightDecay: num(v, "weight-decay", OPTIONS) ?? recipe.config.weightDecay,
      ...(v["warmup-epochs"] !== undefined ? { warmupEpochs: num(v, "warmup-epochs", OPTIONS) } : {}),
    };
    if (config.warmupEpochs !== undefined && config.warmupEpochs > config.epochs) {
      throw new UsageError(
        `--warmup-epochs: expected at most the training epochs (${config.epochs}), got ${config.warmupEpochs}`,
      );
    }
    const out = str(v, "out") ?? defaultRunDir(dataset, model, seed, attackName);
    const dataPath = str(v, "data-path");
    const imageSize = num(v, "image-size", OPTIONS);
    const limit = num(v, "limit", OPTIONS);
    const cleanModel = str(v, "clean-model");
    const r = await runTraining({
      dataset,
      model,
      config,
      out,
      device,
      resume: v.resume === true,
      force: v.force === true,
      ...(dataPath ? { dataPath } : {}),
      ...(imageSize ? { imageSize } : {}),
      ...(limit ? { limit } : {}),
      ...(attackName ? { attack: { name: attackName, params: parseAttackParams(v) } } : {}),
      ...(cleanModel ? { cleanModel } : {}),
    });
    const asr =
      r.attackSuccessRate !== undefined ? `, attack success rate ${(100 * r.attackSuccessRate).toFixed(2)}%` : "";
    // The result on stdout (progress went to stderr): `badexpert train ... > result.txt` keeps it.
    console.log(`test accuracy ${(100 * r.cleanAccuracy).toFixed(2)}%${asr} — checkpoint in ${out}`);
    emitJson(v, {
      checkpoint: out,
      model,
      dataset,
      attack: r.meta.training.attack ?? null,
      cleanAccuracy: r.cleanAccuracy,
      attackSuccessRate: r.attackSuccessRate ?? null,
      epochs: r.meta.training.epochs,
      seconds: r.seconds,
    });
    return 0;
  },
};
