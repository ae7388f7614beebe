// Applying tensor transforms to chosen images of a uint8 dataset, batch by batch.
import { tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { gatherImages, imagesToTensor, tensorToImages } from "../data/batch.js";
import type { ImageSpec } from "./attack.js";

export const DEFAULT_BATCH_SIZE = 256;

/** A copy with its own image and label arrays (the original stays untouched). */
export function copyDataset(ds: ImageDataset, name = ds.name): ImageDataset {
  return {
    ...ds,
    name,
    images: Uint8Array.from(ds.images),
    labels: Int32Array.from(ds.labels),
    classNames: [...ds.classNames],
  };
}

/**
 * Replaces the images at `rows` (in place) by fn(x, batchRows, offset), where x is float
 * [n, C, H, W] in [0, 1] holding those images and `offset` is the position of the batch's first
 * row within `rows`. The result is rounded back to uint8.
 */
export function transformImages(
  ds: ImageDataset,
  rows: Int32Array,
  fn: (x: Tensor, batchRows: Int32Array, offset: number) => Tensor,
  batchSize = DEFAULT_BATCH_SIZE,
): void {
  const per = ds.height * ds.width * ds.channels;
  for (let at = 0; at < rows.length; at += batchSize) {
    const batch = rows.subarray(at, Math.min(rows.length, at + batchSize));
    const bytes = tidy(() => {
      const x = imagesToTensor(gatherImages(ds, batch), batch.length, ds.height, ds.width, ds.channels);
      return tensorToImages(fn(x, batch, at));
    });
    for (let k = 0; k < batch.length; k++)
      ds.images.set(bytes.subarray(k * per, (k + 1) * per), (batch[k] as number) * per);
  }
}

/** Throws unless `ds` has the image size, channels and class count the attack was built for. */
export function checkDataset(attack: string, ds: ImageDataset, spec: ImageSpec): void {
  const want = `${spec.height}x${spec.width}x${spec.channels}`;
  const got = `${ds.height}x${ds.width}x${ds.channels}`;
  if (want !== got)
    throw new RangeError(
      `attack '${attack}' was built for ${want} images, the dataset ${ds.name}/${ds.split} has ${got}`,
    );
  if (ds.classNames.length !== spec.numClasses) {
    throw new RangeError(
      `attack '${attack}' was built for ${spec.numClasses} classes, the dataset ${ds.name}/${ds.split} has ${ds.classNames.length}`,
    );
  }
}
