// A whole training run as the CLI and the demo use it: load the dataset, optionally poison it
// with a backdoor attack, train (or resume), write the checkpoint after every epoch, and record
// clean accuracy and, for a backdoored model, the attack success rate.
import { join } from "node:path";
import { manualSeed } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { loadDataset, datasetInfo } from "../data/registry.js";
import type { ImageDataset } from "../data/dataset.js";
import { subset, splitIndices } from "../data/splits.js";
import { createModel } from "../models/registry.js";
import type { Attack, ParamValue } from "../attacks/attack.js";
import { attackInfo, createAttack } from "../attacks/registry.js";
import { saveArtifacts, type AttackArtifacts } from "../attacks/artifacts.js";
import { validateConfig, type TrainConfig } from "../train/config.js";
import { fit, type EpochRecord } from "../train/trainer.js";
import { evaluateModel } from "../train/evaluate.js";
import {
  CHECKPOINT_DIR,
  saveCheckpoint,
  readCheckpointMeta,
  loadCheckpoint,
  type AttackRecord,
  type CheckpointMeta,
} from "../train/checkpoint.js";
import { saveTrainState, loadTrainState, hasTrainState, STATE_META, STATE_WEIGHTS } from "../train/resume.js";
import { assertWritableDir } from "../util/atomic-dir.js";
import { requireDataPath } from "./data-path.js";
import { BadExpertError } from "../util/errors.js";

export interface TrainRunOptions {
  dataset: string;
  dataPath?: string;
  imageSize?: number;
  model: string;
  config: TrainConfig;
  out: string;
  device?: string;
  /** Train on a seeded subset of this many training images. */
  limit?: number;
  resume?: boolean;
  /** Replace an existing non-empty --out (otherwise refused, unless resuming it). */
  force?: boolean;
  attack?: { name: string; params: Record<string, ParamValue> };
  /** A clean model checkpoint, for attacks that craft perturbations against one (Clean-Label). */
  cleanModel?: string;
  silent?: boolean;
  log?: (line: string) => void;
}

export interface TrainRunResult {
  checkpoint: string;
  meta: CheckpointMeta;
  cleanAccuracy: number;
  attackSuccessRate?: number;
  seconds: number;
}

/** Accuracy on the attack's poisoned test set = attack success rate. */
export function attackSuccessRate(
  model: Module,
  attack: Attack,
  test: ImageDataset,
  normalization: { mean: readonly number[]; std: readonly number[] },
  device?: string,
): number {
  const p = attack.poisonedTestSet(test);
  return evaluateModel(model, p.dataset, { normalization, ...(device ? { device } : {}) }).accuracy;
}

export async function runTraining(o: TrainRunOptions): Promise<TrainRunResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  if (o.attack && attackInfo(o.attack.name).kind === "model-tampering") {
    const n = o.attack.name;
    throw new BadExpertError(
      "E_USAGE",
      `attack '${n}' tampers with a trained model: train a clean model, then run \`badexpert attack apply --attack ${n} --checkpoint CLEAN --out DIR\``,
    );
  }
  const info = datasetInfo(o.dataset);
  requireDataPath(o.dataset, o.dataPath);
  // Before any work: never overwrite someone's checkpoint or bundle by accident.
  if (!o.resume)
    await assertWritableDir(o.out, {
      kinds: [CHECKPOINT_DIR],
      replace: o.force === true,
      forceHint: "--force",
      argument: "--out",
    });
  const loadOpts = { ...(o.dataPath ? { path: o.dataPath } : {}), ...(o.imageSize ? { imageSize: o.imageSize } : {}) };
  const trainFull = await loadDataset(o.dataset, { split: "train", ...loadOpts });
  const testSet = await loadDataset(o.dataset, { split: "test", ...loadOpts });
  const seed = o.config.seed;
  const cleanTrain =
    o.limit && o.limit < trainFull.count
      ? subset(trainFull, splitIndices(trainFull.count, { keep: o.limit }, seed).keep ?? [])
      : trainFull;
  const mean = info.mean ?? new Array<number>(cleanTrain.channels).fill(0.5);
  const std = info.std ?? new Array<number>(cleanTrain.channels).fill(0.5);
  const normalization = { mean, std };
  const spec = {
    name: o.model,
    numClasses: cleanTrain.classNames.length,
    inChannels: cleanTrain.channels,
    imageSize: cleanTrain.height,
  };
  const imageSpec = {
    numClasses: spec.numClasses,
    height: cleanTrain.height,
    width: cleanTrain.width,
    channels: cleanTrain.channels,
    dataset: o.dataset,
  };

  let attack: Attack | null = null;
  let trainSet = cleanTrain;
  let attackRecord: AttackRecord | null = null;
  let artifacts: AttackArtifacts | null = null;
  let attackDetails: Record<string, number> | null = null;
  if (o.attack) {
    attack = createAttack(o.attack.name, o.attack.params, imageSpec);
    let cleanModel: Module | undefined;
    if (attack.needsCleanModel) {
      if (!o.cleanModel)
        throw new BadExpertError(
          "E_USAGE",
          `attack ${attack.name} crafts its poison against a clean model: give one with --clean-model <checkpoint dir>`,
        );
      cleanModel = (await loadCheckpoint(o.cleanModel)).model;
    }
    try {
      const poisoned = await attack.poison(cleanTrain, seed, {
        ...(cleanModel ? { cleanModel, normalization } : {}),
        log,
      });
      trainSet = poisoned.dataset;
      // ISSBA and Dynamic trained a trigger network: it is stored next to the checkpoint.
      artifacts = poisoned.artifacts ?? null;
      attackDetails = poisoned.details ?? null;
      if (attackDetails) log(`${attack.name}: trigger network ${JSON.stringify(attackDetails)}`);
      attackRecord = {
        name: attack.name,
        params: poisoned.params ?? attack.params,
        seed,
        poisonCount: poisoned.poisonIndices.length,
        coverCount: poisoned.coverIndices.length,
        ...(o.cleanModel ? { cleanModel: o.cleanModel } : {}),
      };
      log(
        `${attack.name}: ${poisoned.poisonIndices.length} poisoned and ${poisoned.coverIndices.length} cover samples out of ${cleanTrain.count}`,
      );
    } finally {
      cleanModel?.dispose();
    }
  }

  let config = o.config;
  let model: Module;
  let startEpoch = 0;
  let history: EpochRecord[] = [];
  let restore: Parameters<typeof fit>[3]["restore"];
  if (o.resume) {
    if (!(await hasTrainState(o.out)))
      throw new Error(`resume: no training state in ${o.out} (expected train-state.json and train-state.safetensors)`);
    const meta = await readCheckpointMeta(o.out);
    if (meta.model.name !== o.model) throw new Error(`resume: ${o.out} holds a ${meta.model.name}, not a ${o.model}`);
    const state = await loadTrainState(o.out);
    config = state.config;
    startEpoch = state.epochsDone;
    history = state.history;
    model = (await loadCheckpoint(o.out)).model;
    restore = state.restore;
    log(`resuming ${o.out} after epoch ${startEpoch}/${config.epochs}`);
  } else {
    validateConfig(config);
    manualSeed(seed);
    model = createModel(o.model, spec);
  }
  const device = o.device ?? "cpu";
  if (device !== "cpu") model.to(device);
  const t0 = Date.now();
  const base = {
    model: spec,
    dataset: {
      name: o.dataset,
      ...(o.dataPath ? { path: o.dataPath } : {}),
      trainCount: cleanTrain.count,
      testCount: testSet.count,
    },
    preprocessing: {
      imageSize: [cleanTrain.height, cleanTrain.width] as [number, number],
      channels: cleanTrain.channels,
      mean,
      std,
    },
    classNames: cleanTrain.classNames,
  };
  const training = () => ({
    ...config,
    trainCount: cleanTrain.count,
    device,
    attack: attackRecord,
    ...(attackDetails ? { attackDetails } : {}),
    history,
    seconds: (Date.now() - t0) / 1000,
  });
  const writeArtifacts = async (dir: string) => {
    if (artifacts) await saveArtifacts(dir, artifacts);
  };
  // Evaluated after every epoch too, so a long run shows early whether the backdoor is taking.
  const attackTestSet = attack ? attack.poisonedTestSet(testSet).dataset : undefined;
  try {
    await fit(model, trainSet, config, {
      testSet,
      ...(attackTestSet ? { attackTestSet } : {}),
      normalization,
      device,
      startEpoch,
      silent: o.silent ?? false,
      ...(restore ? { restore } : {}),
      onEpoch: async (record, state) => {
        history.push(record);
        // The checkpoint and its training state are replaced together, so a kill leaves a resumable pair.
        await saveCheckpoint(
          o.out,
          model,
          { ...base, training: training(), metrics: { cleanAccuracy: record.testAccuracy ?? Number.NaN } },
          {
            replace: true,
            argument: "--out",
            also: async (dir) => {
              await writeArtifacts(dir);
              await saveTrainState(dir, {
                epochsDone: record.epoch,
                config,
                history,
                optimizer: state.optimizer,
                schedule: state.schedule,
              });
            },
          },
        );
      },
    });
    const final = evaluateModel(model, testSet, { normalization, device });
    const metrics: Record<string, number> = { cleanAccuracy: final.accuracy, testLoss: final.loss };
    // The triggered test set built once above (for some attacks building it runs a trigger network).
    if (attackTestSet)
      metrics.attackSuccessRate = evaluateModel(model, attackTestSet, { normalization, device }).accuracy;
    const meta = await saveCheckpoint(
      o.out,
      model,
      { ...base, training: training(), metrics },
      { replace: true, argument: "--out", carry: [STATE_META, STATE_WEIGHTS], also: writeArtifacts },
    );
    return {
      checkpoint: o.out,
      meta,
      cleanAccuracy: final.accuracy,
      ...(metrics.attackSuccessRate !== undefined ? { attackSuccessRate: metrics.attackSuccessRate } : {}),
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    model.dispose();
  }
}

export function defaultRunDir(dataset: string, model: string, seed: number, attack?: string): string {
  return join("runs", `${dataset}-${model}${attack ? `-${attack}` : ""}-seed${seed}`);
}
