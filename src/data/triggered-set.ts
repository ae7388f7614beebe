// Triggered inputs the user brings (`evaluate-defense --triggered DIR|FILE.npz`): images that
// carry the trigger the user fears, each with its true class and, where known, the class the
// trigger is meant to reach. Two forms (docs/triggered-inputs.md): a folder of images with labels.csv
// (readers/triggered-folder.ts) or an .npz with arrays x, y and optionally target
// (readers/triggered-npz.ts). The images must already have the model's input size: they are
// never resized, since resizing would blur the trigger.
import { stat } from "node:fs/promises";
import { assertConsistent, type ImageDataset } from "./dataset.js";
import { readTriggeredFolder } from "./readers/triggered-folder.js";
import { readTriggeredNpz } from "./readers/triggered-npz.js";
import type { LabelledImages } from "./labelled-images.js";
import { BadExpertError } from "../util/errors.js";

export type { LabelledImages } from "./labelled-images.js";

export interface TriggeredSet {
  /** The triggered images; `labels` are their true classes. */
  dataset: ImageDataset;
  /** The class each image's trigger is meant to reach; null where the set does not say. */
  targets: Int32Array | null;
}

export interface ModelInput {
  height: number;
  width: number;
  channels: 1 | 3;
  classNames: string[];
}

export async function readTriggeredSet(path: string, model: ModelInput): Promise<TriggeredSet> {
  const info = await stat(path).catch((e: unknown) => {
    throw new BadExpertError(
      "E_IO",
      `${path}: cannot open the triggered set (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  });
  let set: LabelledImages;
  if (info.isDirectory()) set = await readTriggeredFolder(path, model.channels);
  else if (info.isFile() && /\.npz$/i.test(path)) set = await readTriggeredNpz(path, model.channels);
  else
    throw new BadExpertError(
      "E_DATA",
      `${path}: a triggered set is a folder of images with labels.csv, or an .npz file with arrays x, y and optionally target`,
    );
  if (set.height !== model.height || set.width !== model.width) {
    throw new BadExpertError(
      "E_DATA",
      `${path}: the triggered images are ${set.width}x${set.height} but the model takes ${model.width}x${model.height} inputs (they are not resized: resizing would blur the trigger; save them at the model's size)`,
    );
  }
  const k = model.classNames.length;
  for (const [name, v] of [
    ["target", set.targets ?? new Int32Array(0)],
    ["label", set.labels],
  ] as const) {
    const i = v.findIndex((c) => c >= k);
    if (i >= 0)
      throw new BadExpertError(
        "E_DATA",
        `${path}: ${name} ${v[i]} of image ${i} is not a class of the model (0..${k - 1})`,
      );
  }
  const dataset: ImageDataset = {
    name: "triggered",
    split: "test",
    images: set.images,
    labels: set.labels,
    count: set.count,
    height: set.height,
    width: set.width,
    channels: set.channels,
    classNames: model.classNames,
    source: path,
  };
  assertConsistent(dataset);
  return { dataset, targets: set.targets };
}
