// The defender's clean data: the dataset's test split at the model's size, cut by the one split
// rule (defense/splits.ts) into reserved, calibration and evaluation parts. `defend`, `compare`
// and `evaluate-defense` all take their images from here, so they agree on which image is where.
import type { ImageDataset } from "../data/dataset.js";
import { loadDataset } from "../data/registry.js";
import { subset } from "../data/splits.js";
import type { CheckpointMeta } from "../train/checkpoint.js";
import { defaultSplitSpec, defenseSplits, type DefenseSplits, type DefenseSplitSpec } from "../defense/splits.js";
import { requireDataPath } from "./data-path.js";
import { BadExpertError } from "../util/errors.js";

export async function testSplit(
  name: string,
  path: string | undefined,
  imageSize: [number, number],
  channels: number,
): Promise<ImageDataset> {
  requireDataPath(name, path);
  return loadDataset(name, { split: "test", ...(path ? { path } : {}), imageSize, channels: channels === 1 ? 1 : 3 });
}

/**
 * The threshold at false-positive rate f is a quantile of the calibration scores: with fewer than
 * 1/f clean images it is just the largest score seen, and the achieved FPR is anyone's guess.
 */
export function minCalibrationCount(targetFpr: number): number {
  return Math.ceil(1 / targetFpr - 1e-9);
}

export interface DefenderDataOptions {
  dataset?: string;
  dataPath?: string;
  reserved?: number;
  calibration?: number;
  splitSeed?: number;
}

export interface DefenderData {
  /** The dataset's name and location (the checkpoint's when not given). */
  name: string;
  path: string | undefined;
  test: ImageDataset;
  spec: DefenseSplitSpec;
  splits: DefenseSplits;
  reserved: ImageDataset;
  calibration: ImageDataset;
}

/** The checkpoint's test set cut by the one split rule (defense/splits.ts), as `defend` cuts it. */
export async function defenderData(meta: CheckpointMeta, o: DefenderDataOptions): Promise<DefenderData> {
  const name = o.dataset ?? meta.dataset.name;
  const path = o.dataPath ?? (name === meta.dataset.name ? meta.dataset.path : undefined);
  const test = await testSplit(name, path, meta.preprocessing.imageSize, meta.preprocessing.channels);
  if (test.classNames.length !== meta.model.numClasses)
    throw new BadExpertError(
      "E_DATA",
      `dataset ${name} has ${test.classNames.length} classes but the model has ${meta.model.numClasses}`,
    );
  const def = defaultSplitSpec(meta.dataset.trainCount, test.count, o.splitSeed ?? 0);
  const spec: DefenseSplitSpec = {
    ...def,
    reserved: o.reserved ?? def.reserved,
    calibration: o.calibration ?? def.calibration,
  };
  const splits = defenseSplits(test.count, spec);
  return {
    name,
    path,
    test,
    spec,
    splits,
    reserved: subset(test, splits.reserved),
    calibration: subset(test, splits.calibration),
  };
}
