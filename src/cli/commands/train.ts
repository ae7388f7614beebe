// `badexpert train`: train a zoo model on a dataset (optionally backdoored by an attack) and write
// a checkpoint directory.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, emitJson, int, intList, num, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { datasetNames } from "../../data/registry.js";
import { modelNames } from "../../models/registry.js";
import { recipeFor } from "../../train/recipes.js";
import type { TrainConfig, OptimizerName, ScheduleName } from "../../train/config.js";
import { runTraining, defaultRunDir } from "../../jobs/train.js";

export const train: Command = {
  name: "train",
  summary: "train a model (clean, or backdoored with --attack) and save a checkpoint (safetensors + JSON)",
  details: [
    "Defaults come from the dataset's recipe (src/train/recipes.ts); every hyperparameter can be overridden.",
    "A checkpoint is written after every epoch; --resume continues an interrupted run from its directory.",
    "With --attack the training set is poisoned first, and the checkpoint records the attack's configuration,",
    "the clean accuracy and the attack success rate (ASR) measured on the poisoned test set.",
    "",
    "Examples:",
    "  badexpert train --dataset fashion-mnist --out runs/fmnist-clean",
    "  badexpert train --dataset fashion-mnist --attack badnet --attack-param rate=0.01 --out runs/fmnist-badnet",
  ].join("\n"),
  options: {
    dataset: { type: "string", short: "d", description: `dataset name: ${datasetNames().join(", ")}` },
    "data-path": { type: "string", description: "where the dataset lives (default: the dataset's standard location, if any)" },
    model: { type: "string", short: "m", description: "zoo model (default: the dataset's recipe)" },
    epochs: { type: "string", description: "training epochs" },
    "batch-size": { type: "string", description: "batch size" },
    lr: { type: "string", description: "learning rate (peak rate for onecycle)" },
    optimizer: { type: "string", description: "sgd, adam or adamw" },
    schedule: { type: "string", description: "none, multistep, cosine or onecycle" },
    milestones: { type: "string", description: "multistep epochs, comma-separated" },
    "weight-decay": { type: "string", description: "weight decay" },
    "image-size": { type: "string", description: "resize images to this side length" },
    limit: { type: "string", description: "train on a seeded random subset of this many training images" },
    seed: { type: "string", description: "seed for initialisation, order, augmentation and poisoning", default: "0" },
    out: { type: "string", short: "o", description: "checkpoint directory (default: runs/<dataset>-<model>[-<attack>]-seed<seed>)" },
    resume: { type: "boolean", description: "continue the run saved in --out" },
    force: { type: "boolean", description: "replace an existing non-empty --out (otherwise refused)" },
    ...ATTACK_OPTIONS,
    "clean-model": { type: "string", description: "clean checkpoint for attacks that need one (clean-label)" },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const dataset = str(v, "dataset");
    if (!dataset) throw new UsageError(`--dataset is required (one of ${datasetNames().join(", ")})`);
    const recipe = recipeFor(dataset);
    const model = str(v, "model") ?? recipe.model;
    if (!modelNames().includes(model)) throw new UsageError(`--model: unknown model '${model}'; valid: ${modelNames().join(", ")}`);
    const seed = int(v, "seed") ?? 0;
    const attackName = str(v, "attack");
    const config: TrainConfig = {
      ...recipe.config,
      seed,
      epochs: int(v, "epochs", { min: 1 }) ?? recipe.config.epochs,
      batchSize: int(v, "batch-size", { min: 1 }) ?? recipe.config.batchSize,
      lr: num(v, "lr", { positive: true }) ?? recipe.config.lr,
      optimizer: choice<OptimizerName>(v, "optimizer", ["sgd", "adam", "adamw"]) ?? recipe.config.optimizer,
      schedule: choice<ScheduleName>(v, "schedule", ["none", "multistep", "cosine", "onecycle"]) ?? recipe.config.schedule,
      milestones: intList(v, "milestones") ?? recipe.config.milestones,
      weightDecay: num(v, "weight-decay") ?? recipe.config.weightDecay,
    };
    const out = str(v, "out") ?? defaultRunDir(dataset, model, seed, attackName);
    const dataPath = str(v, "data-path");
    const imageSize = int(v, "image-size", { min: 8 });
    const limit = int(v, "limit", { min: 1 });
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
    const asr = r.attackSuccessRate !== undefined ? `, attack success rate ${(100 * r.attackSuccessRate).toFixed(2)}%` : "";
    console.error(`test accuracy ${(100 * r.cleanAccuracy).toFixed(2)}%${asr} — checkpoint in ${out}`);
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
