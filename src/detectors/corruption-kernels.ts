// Building blocks of the ImageNet-C corruptions (corruptions.ts and the files it gathers): the
// severity table lookup, per-channel convolution, Gaussian and motion-blur kernels, and uniform
// draws from the current random source (random-source.ts: libtorch's generator unless a seeded
// stream is set).
import { F, tensor, tidy, type Tensor } from "../engine/index.js";
import { uniformTensor } from "./random-source.js";

export type Corruption = (x: Tensor, severity: number) => Tensor;

export function level<T>(table: readonly T[], severity: number, name: string): T {
  const v = table[severity - 1];
  if (!Number.isInteger(severity) || v === undefined)
    throw new RangeError(`${name}: severity must be an integer in 1..${table.length}, got ${severity}`);
  return v;
}

/** Same kernel on every channel, reflect-padded like OpenCV's default border. */
export function depthwise(x: Tensor, kernel: Float32Array, size: number): Tensor {
  return tidy(() => {
    const c = x.dim(1);
    const w = tensor(kernel, { shape: [1, 1, size, size] }).repeat([c, 1, 1, 1]);
    const r = (size - 1) / 2;
    const padMode = r < x.dim(2) && r < x.dim(3) ? "reflect" : "replicate";
    return F.conv2d(x.pad([r, r, r, r], padMode), w, null, { groups: c });
  });
}

export function gaussianKernel(sigma: number, size: number): Float32Array {
  const r = (size - 1) / 2;
  const k = new Float32Array(size * size);
  let s = 0;
  for (let i = 0; i < size; i++)
    for (let j = 0; j < size; j++)
      s += k[i * size + j] = Math.exp(-((i - r) ** 2 + (j - r) ** 2) / (2 * sigma * sigma));
  return k.map((v) => v / s);
}

/**
 * ImageMagick's motion blur as the reference uses it (Wand): a one-sided line of Gaussian weights
 * (sigma) `radius` pixels long at `angle` radians, rasterised to the nearest pixel; normalised.
 */
export function motionKernel(radius: number, sigma: number, angle: number): { kernel: Float32Array; size: number } {
  const size = 2 * radius + 1;
  const k = new Float32Array(size * size);
  let sum = 0;
  for (let t = 0; t <= radius; t++) {
    const w = Math.exp(-(t * t) / (2 * sigma * sigma));
    const i = radius + Math.round(t * Math.sin(angle));
    const j = radius + Math.round(t * Math.cos(angle));
    k[i * size + j] = (k[i * size + j] as number) + w;
    sum += w;
  }
  return { kernel: k.map((v) => v / sum), size };
}

/** `count` uniform numbers in [0, 1) from the current random source. */
export function uniforms(count: number): Float32Array {
  return tidy(() => uniformTensor([count]).data() as Float32Array);
}
