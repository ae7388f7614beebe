// `badexpert train`: train a zoo model on a dataset and write a checkpoint directory.
import { join } from "node:path";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, emitJson, int, intList, num, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { loadDataset, datasetInfo, datasetNames } from "../../data/registry.js";
import { subset, splitIndices } from "../../data/splits.js";
import { createModel, modelNames } from "../../models/registry.js";
import { recipeFor } from "../../train/recipes.js";
import { validateConfig, type TrainConfig, type OptimizerName, type ScheduleName } from "../../train/config.js";
import { fit, type EpochRecord } from "../../train/trainer.js";
import { evaluateModel } from "../../train/evaluate.js";
import { saveCheckpoint, readCheckpointMeta, loadCheckpoint } from "../../train/checkpoint.js";
import { saveTrainState, loadTrainState, hasTrainState } from "../../train/resume.js";
import { manualSeed } from "../../engine/index.js";
import type { Module } from "../../nn/index.js";

export const train: Command = {
  name: "train",
  summary: "train a model on a dataset and save a checkpoint (safetensors + JSON)",
  details: [
    "Defaults come from the dataset's recipe (see src/train/recipes.ts); every hyperparameter can be overridden.",
    "A checkpoint is written after every epoch; --resume continues an interrupted run from its directory.",
    "",
    "Example: badexpert train --dataset fashion-mnist --epochs 6 --out runs/fmnist-clean",
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
    seed: { type: "string", description: "seed for initialisation, order and augmentation", default: "0" },
    out: { type: "string", short: "o", description: "checkpoint directory (default: runs/<dataset>-<model>-seed<seed>)" },
    resume: { type: "boolean", description: "continue the run saved in --out" },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const datasetName = str(v, "dataset");
    if (!datasetName) throw new UsageError(`--dataset is required (one of ${datasetNames().join(", ")})`);
    const info = datasetInfo(datasetName);
    const recipe = recipeFor(datasetName);
    const modelName = str(v, "model") ?? recipe.model;
    if (!modelNames().includes(modelName)) throw new UsageError(`--model: unknown model '${modelName}'; valid: ${modelNames().join(", ")}`);
    const seed = int(v, "seed") ?? 0;
    const out = str(v, "out") ?? join("runs", `${datasetName}-${modelName}-seed${seed}`);
    const imageSize = int(v, "image-size", { min: 8 });
    const path = str(v, "data-path");
    const loadOpts = { ...(path ? { path } : {}), ...(imageSize ? { imageSize } : {}) };
    const trainFull = await loadDataset(datasetName, { split: "train", ...loadOpts });
    const testSet = await loadDataset(datasetName, { split: "test", ...loadOpts });
    const limit = int(v, "limit", { min: 1 });
    const trainSet = limit && limit < trainFull.count ? subset(trainFull, splitIndices(trainFull.count, { keep: limit }, seed).keep ?? []) : trainFull;

    let config: TrainConfig = {
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
    const mean = info.mean ?? new Array<number>(trainSet.channels).fill(0.5);
    const std = info.std ?? new Array<number>(trainSet.channels).fill(0.5);
    const spec = { name: modelName, numClasses: trainSet.classNames.length, inChannels: trainSet.channels, imageSize: trainSet.height };

    let model: Module;
    let startEpoch = 0;
    let history: EpochRecord[] = [];
    let restore: Parameters<typeof fit>[3]["restore"];
    if (v.resume) {
      if (!(await hasTrainState(out))) throw new UsageError(`--resume: no training state in ${out} (expected train-state.json and train-state.safetensors)`);
      const meta = await readCheckpointMeta(out);
      if (meta.model.name !== modelName) throw new UsageError(`--resume: ${out} holds a ${meta.model.name}, not a ${modelName}`);
      const state = await loadTrainState(out);
      config = state.config;
      startEpoch = state.epochsDone;
      history = state.history;
      model = (await loadCheckpoint(out)).model;
      restore = state.restore;
      console.error(`resuming ${out} after epoch ${startEpoch}/${config.epochs}`);
    } else {
      validateConfig(config);
      manualSeed(seed);
      model = createModel(modelName, spec);
    }
    if (device !== "cpu") model.to(device);
    const t0 = Date.now();
    const trainingRecord = () => ({ ...config, trainCount: trainSet.count, device, history, seconds: (Date.now() - t0) / 1000 });
    const base = {
      model: spec,
      dataset: { name: datasetName, ...(path ? { path } : {}), trainCount: trainSet.count, testCount: testSet.count },
      preprocessing: { imageSize: [trainSet.height, trainSet.width] as [number, number], channels: trainSet.channels, mean, std },
      classNames: trainSet.classNames,
    };
    try {
      await fit(model, trainSet, config, {
        testSet,
        normalization: { mean, std },
        device,
        startEpoch,
        ...(restore ? { restore } : {}),
        onEpoch: async (record, state) => {
          history.push(record);
          await saveCheckpoint(out, model, { ...base, training: trainingRecord(), metrics: { cleanAccuracy: record.testAccuracy ?? Number.NaN } });
          await saveTrainState(out, { epochsDone: record.epoch, config, history, optimizer: state.optimizer, schedule: state.schedule });
        },
      });
      const final = evaluateModel(model, testSet, { normalization: { mean, std }, device });
      const meta = await saveCheckpoint(out, model, { ...base, training: trainingRecord(), metrics: { cleanAccuracy: final.accuracy, testLoss: final.loss } });
      console.error(`test accuracy ${(100 * final.accuracy).toFixed(2)}% — checkpoint in ${out}`);
      emitJson(v, { checkpoint: out, model: modelName, dataset: datasetName, cleanAccuracy: final.accuracy, testLoss: final.loss, epochs: config.epochs, seconds: meta.training.seconds });
      return 0;
    } finally {
      model.dispose();
    }
  },
};
