// Seeded data augmentation applied to whole batches on tensors: random crop with zero padding,
// horizontal flip and small rotations are one affine warp per sample (affineGrid +
// gridSample), so a batch costs two native calls instead of per-pixel JS work. Normalisation
// and resizing are separate, deterministic steps.
import { F, tensor, tidy, type Tensor } from "../engine/index.js";
import { Rng } from "../util/rng.js";

export interface AugmentOptions {
  /** Random crop after zero padding by this many pixels (CIFAR: 4). 0 disables. */
  cropPadding?: number;
  /** Probability of a horizontal flip (CIFAR: 0.5; digits and signs: 0). */
  flipProbability?: number;
  /** Maximum rotation in degrees, uniform in [-d, d] (GTSRB: 15). 0 disables. */
  rotationDegrees?: number;
}

/**
 * Augments x [N, C, H, W]. Pure translations and flips use nearest sampling, so pixels are moved
 * exactly (no blur) and the padding is zeros, as torchvision's RandomCrop(padding) does;
 * rotations use bilinear sampling.
 */
export function augmentBatch(x: Tensor, o: AugmentOptions, rng: Rng): Tensor {
  const [n, , h, w] = x.shape as [number, number, number, number];
  const pad = o.cropPadding ?? 0;
  const flipP = o.flipProbability ?? 0;
  const maxDeg = o.rotationDegrees ?? 0;
  if (pad === 0 && flipP === 0 && maxDeg === 0) return x.alias();
  const theta = new Float32Array(n * 6);
  for (let i = 0; i < n; i++) {
    // Output pixel p samples input pixel p + shift: a crop offset of (dx, dy) in the padded image
    // is a shift of (dx - pad, dy - pad).
    const dx = pad > 0 ? rng.int(0, 2 * pad + 1) - pad : 0;
    const dy = pad > 0 ? rng.int(0, 2 * pad + 1) - pad : 0;
    const flip = flipP > 0 && rng.next() < flipP ? -1 : 1;
    const a = maxDeg > 0 ? (rng.uniform(-maxDeg, maxDeg) * Math.PI) / 180 : 0;
    const c = Math.cos(a);
    const s = Math.sin(a);
    // Normalised coordinates (align_corners=false): one pixel is 2/w horizontally, 2/h vertically.
    theta.set([c * flip, (-s * h) / w, (2 * dx) / w, (s * w * flip) / h, c, (2 * dy) / h], i * 6);
  }
  return tidy(() => {
    const grid = F.affineGrid(tensor(theta, { shape: [n, 2, 3] }), [n, x.dim(1), h, w], false);
    return F.gridSample(x, grid, {
      mode: maxDeg > 0 ? "bilinear" : "nearest",
      paddingMode: "zeros",
      alignCorners: false,
    });
  });
}

/** (x - mean) / std per channel; mean and std in [0, 1] units. */
export function normalize(x: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  const c = x.dim(1);
  if (mean.length !== c || std.length !== c) {
    throw new RangeError(`normalize: input has ${c} channels but mean has ${mean.length} and std ${std.length} values`);
  }
  return tidy(() =>
    x
      .sub(tensor(Float32Array.from(mean), { shape: [1, c, 1, 1] }))
      .div(tensor(Float32Array.from(std), { shape: [1, c, 1, 1] })),
  );
}

/** Resizes [N, C, H, W] to size×size (bilinear), e.g. for models trained at another resolution. */
export function resizeBatch(x: Tensor, height: number, width: number): Tensor {
  if (x.dim(2) === height && x.dim(3) === width) return x.alias();
  return F.interpolate(x, [height, width], "bilinear", false);
}

/** Centre crop to height×width. */
export function centerCrop(x: Tensor, height: number, width: number): Tensor {
  const h = x.dim(2);
  const w = x.dim(3);
  if (height > h || width > w)
    throw new RangeError(`centerCrop: ${height}x${width} is larger than the ${h}x${w} input`);
  const top = Math.floor((h - height) / 2);
  const left = Math.floor((w - width) / 2);
  return tidy(() =>
    x
      .slice(2, top, top + height)
      .slice(3, left, left + width)
      .contiguous(),
  );
}
