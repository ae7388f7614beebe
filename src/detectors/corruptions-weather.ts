// ImageNet-C's weather corruptions (snow, frost, fog) with the CIFAR-10-C constants, on
// [N, C, H, W] tensors in [0, 1]. Each image gets its own random layer from the current random source (random-source.ts).
import { F, cat, tensor, tidy, type Tensor } from "../engine/index.js";
import { normalTensor } from "./random-source.js";
import { depthwise, level, motionKernel, uniforms, type Corruption } from "./corruption-kernels.js";

/**
 * The reference's plasma fractal (diamond-square, `wibble` starting at 100 and divided by
 * `decay` at each halving), normalised to [0, 1]: a [size, size] map, size a power of two.
 */
export function plasmaFractal(size: number, decay: number): Float32Array {
  if (!Number.isInteger(Math.log2(size)) || size < 2)
    throw new RangeError(`plasmaFractal: size must be a power of two >= 2, got ${size}`);
  const map = new Float64Array(size * size);
  const at = (r: number, c: number) => (((r % size) + size) % size) * size + (((c % size) + size) % size);
  let step = size;
  let wibble = 100;
  const wibbled = (sum: number, u: number) => sum / 4 + wibble * (2 * u - 1) * wibble;
  while (step >= 2) {
    const half = step / 2;
    const cells = (size / step) ** 2;
    // Squares: each centre from its four corners.
    let u = uniforms(cells);
    let k = 0;
    for (let r = 0; r < size; r += step) {
      for (let c = 0; c < size; c += step) {
        const sum =
          (map[at(r, c)] as number) +
          (map[at(r + step, c)] as number) +
          (map[at(r, c + step)] as number) +
          (map[at(r + step, c + step)] as number);
        map[at(r + half, c + half)] = wibbled(sum, u[k++] as number);
      }
    }
    // Diamonds: the edge midpoints from their two corners and the two neighbouring centres.
    u = uniforms(2 * cells);
    k = 0;
    for (let r = 0; r < size; r += step) {
      for (let c = 0; c < size; c += step) {
        const top =
          (map[at(r, c)] as number) +
          (map[at(r, c + step)] as number) +
          (map[at(r + half, c + half)] as number) +
          (map[at(r - half, c + half)] as number);
        map[at(r, c + half)] = wibbled(top, u[k++] as number);
        const left =
          (map[at(r, c)] as number) +
          (map[at(r + step, c)] as number) +
          (map[at(r + half, c + half)] as number) +
          (map[at(r + half, c - half)] as number);
        map[at(r + half, c)] = wibbled(left, u[k++] as number);
      }
    }
    step = half;
    wibble /= decay;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  return Float32Array.from(map, (v) => (hi > lo ? (v - lo) / (hi - lo) : 0));
}

/** One plasma map per image, cropped to [N, 1, H, W]. */
function plasmaLayers(n: number, h: number, w: number, decay: number): Tensor {
  const size = 2 ** Math.ceil(Math.log2(Math.max(h, w, 2)));
  const out = new Float32Array(n * h * w);
  for (let i = 0; i < n; i++) {
    const p = plasmaFractal(size, decay);
    for (let r = 0; r < h; r++) out.set(p.subarray(r * size, r * size + w), i * h * w + r * w);
  }
  return tensor(out, { shape: [n, 1, h, w] });
}

// x + c·plasma, rescaled by max/(max + c) with each image's maximum.
export const fog: Corruption = (x, s) => {
  const [c, decay] = level<[number, number]>(
    [
      [0.2, 3],
      [0.5, 3],
      [0.75, 2.5],
      [1, 2],
      [1.5, 1.75],
    ],
    s,
    "fog",
  );
  const [n, , h, w] = x.shape as [number, number, number, number];
  return tidy(() => {
    const max = x.max([1, 2, 3], true);
    return x
      .add(plasmaLayers(n, h, w, decay).mul(c))
      .mul(max.div(max.add(c)))
      .clamp(0, 1);
  });
};

// c0·x + c1·frost. The reference crops one of six frost photographs, which are not here: the frost
// layer is a substitute, a rough plasma fractal (decay 1.3, fine detail kept) raised to the power
// 2 so that bright, thin "ice" structures dominate, at the reference's blending weights.
export const frost: Corruption = (x, s) => {
  const [a, b] = level<[number, number]>(
    [
      [1, 0.2],
      [1, 0.3],
      [0.9, 0.4],
      [0.85, 0.4],
      [0.75, 0.45],
    ],
    s,
    "frost",
  );
  const [n, , h, w] = x.shape as [number, number, number, number];
  return tidy(() =>
    x
      .mul(a)
      .add(plasmaLayers(n, h, w, 1.3).square().mul(b))
      .clamp(0, 1),
  );
};

// A snow layer: N(loc, scale) per pixel, zoomed into its centre by `zoom`, zeroed below
// `threshold`, quantised to 8 bits, motion-blurred (radius, sigma) at an angle in [-135°, -45°];
// the image is whitened towards max(x, 1.5·grey + 0.5) by 1 − blend, then the layer and its
// 180° rotation are added.
export const snow: Corruption = (x, s) => {
  const [loc, scale, zoom, threshold, radius, sigma, blend] = level<
    [number, number, number, number, number, number, number]
  >(
    [
      [0.1, 0.2, 1, 0.6, 8, 3, 0.95],
      [0.1, 0.2, 1, 0.5, 10, 4, 0.9],
      [0.15, 0.3, 1.75, 0.55, 10, 4, 0.9],
      [0.25, 0.3, 2.25, 0.6, 12, 6, 0.85],
      [0.3, 0.3, 1.25, 0.65, 14, 12, 0.8],
    ],
    s,
    "snow",
  );
  const [n, c, h, w] = x.shape as [number, number, number, number];
  return tidy(() => {
    let layer = normalTensor([n, 1, h, w]).mul(scale).add(loc);
    if (zoom !== 1) {
      const theta = tensor(new Float32Array([1 / zoom, 0, 0, 0, 1 / zoom, 0]), { shape: [1, 2, 3] }).repeat([n, 1, 1]);
      layer = F.gridSample(layer, F.affineGrid(theta, [n, 1, h, w], false), {
        mode: "bilinear",
        paddingMode: "border",
        alignCorners: false,
      });
    }
    layer = layer
      .mul(layer.ge(threshold).to({ dtype: "float32" }))
      .clamp(0, 1)
      .mul(255)
      .floor()
      .div(255);
    const angles = uniforms(n);
    const blurred = Array.from({ length: n }, (_, i) => {
      const { kernel, size } = motionKernel(radius, sigma, (((angles[i] as number) * 90 - 135) * Math.PI) / 180);
      return depthwise(layer.narrow(0, i, 1), kernel, size);
    });
    const flakes = cat(blurred, 0);
    const grey =
      c === 3 ? x.mul(tensor(new Float32Array([0.299, 0.587, 0.114]), { shape: [1, 3, 1, 1] })).sum(1, true) : x;
    const whitened = x.mul(blend).add(x.maximum(grey.mul(1.5).add(0.5)).mul(1 - blend));
    return whitened
      .add(flakes)
      .add(flakes.flip([2, 3]))
      .clamp(0, 1);
  });
};
