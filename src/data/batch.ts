// From uint8 NHWC images to the float NCHW tensors models take, and back.
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "./dataset.js";

/** Copies the images at `indices` into one uint8 buffer (NHWC). */
export function gatherImages(ds: ImageDataset, indices: ArrayLike<number>): Uint8Array {
  const per = ds.height * ds.width * ds.channels;
  const out = new Uint8Array(indices.length * per);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k] as number;
    out.set(ds.images.subarray(i * per, (i + 1) * per), k * per);
  }
  return out;
}

/** uint8 NHWC bytes → float32 [N, C, H, W] in [0, 1]. */
export function imagesToTensor(bytes: Uint8Array, n: number, height: number, width: number, channels: number): Tensor {
  if (bytes.length !== n * height * width * channels) {
    throw new RangeError(
      `imagesToTensor: ${bytes.length} bytes do not hold ${n} images of ${height}x${width}x${channels}`,
    );
  }
  return tidy(() =>
    tensor(bytes, { shape: [n, height, width, channels] })
      .permute([0, 3, 1, 2])
      .float()
      .div(255),
  );
}

/** float [N, C, H, W] in [0, 1] → uint8 NHWC bytes (rounded, clamped). */
export function tensorToImages(x: Tensor): Uint8Array {
  return tidy(
    () =>
      x.mul(255).round().clamp(0, 255).to({ dtype: "uint8" }).permute([0, 2, 3, 1]).contiguous().data() as Uint8Array,
  );
}

export interface Batch {
  /** float32 [N, C, H, W] in [0, 1] (before normalisation). */
  x: Tensor;
  /** int64 [N] */
  y: Tensor;
  /** dataset indices of the rows */
  indices: Int32Array;
}

/** The samples at `indices` as a batch; labels can be overridden (poisoned or shifted labels). */
export function makeBatch(ds: ImageDataset, indices: Int32Array, labels?: ArrayLike<number>): Batch {
  const n = indices.length;
  const ys = new BigInt64Array(n);
  for (let k = 0; k < n; k++)
    ys[k] = BigInt(labels ? (labels[k] as number) : (ds.labels[indices[k] as number] as number));
  return { x: imagesToTensor(gatherImages(ds, indices), n, ds.height, ds.width, ds.channels), y: tensor(ys), indices };
}
