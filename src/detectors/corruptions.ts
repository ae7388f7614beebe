// Image corruptions of the ImageNet-C family (Hendrycks & Dietterich, ICLR 2019) at five
// severities, for TeCo. The constants are those of the small-image (CIFAR-10-C) variant, the
// closest to 28x28 and 32x32 inputs. Implemented on [N, C, H, W] tensors in [0, 1]; where the
// reference uses a library we do not have, the substitute is named in the comment. Randomness
// comes from libtorch's generator (manualSeed makes a run reproducible). Noise, blur, brightness,
// contrast and pixelate are here; glass blur and the elastic transform in corruptions-spatial.ts;
// snow, frost and fog in corruptions-weather.ts; JPEG in jpeg.ts.
import { F, tensor, tidy } from "../engine/index.js";
import { normalTensor, uniformTensor } from "./random-source.js";
import { depthwise, gaussianKernel, level, motionKernel, uniforms } from "./corruption-kernels.js";
import { fog, frost, snow } from "./corruptions-weather.js";
import { elasticTransform, glassBlur } from "./corruptions-spatial.js";
import { jpegCompression } from "./jpeg.js";

import type { Corruption } from "./corruption-kernels.js";
export type { Corruption };

const gaussianNoise: Corruption = (x, s) => {
  const c = level([0.04, 0.06, 0.08, 0.09, 0.1], s, "gaussian_noise");
  return tidy(() => x.add(normalTensor(x.shape).mul(c)).clamp(0, 1));
};

// Poisson(λ = x·c)/c; libtorch's Poisson sampler is not exposed, so its normal approximation
// N(x, x/c) is used (λ is at least 50 per unit of intensity here, where it is close).
const shotNoise: Corruption = (x, s) => {
  const c = level([500, 250, 100, 75, 50], s, "shot_noise");
  return tidy(() => x.add(x.div(c).sqrt().mul(normalTensor(x.shape))).clamp(0, 1));
};

// Salt and pepper (skimage's "s&p", salt_vs_pepper 0.5) on `amount` of the values.
const impulseNoise: Corruption = (x, s) => {
  const amount = level([0.01, 0.02, 0.03, 0.05, 0.07], s, "impulse_noise");
  return tidy(() => {
    const hit = uniformTensor(x.shape).lt(amount);
    const salt = uniformTensor(x.shape).lt(0.5);
    return x.maskedFill(hit.logicalAnd(salt), 1).maskedFill(hit.logicalAnd(salt.logicalNot()), 0);
  });
};

// An aliased disk of the given radius, smoothed by a 3x3 Gaussian of sigma alias_blur.
const defocusBlur: Corruption = (x, s) => {
  const [radius, alias] = level<[number, number]>(
    [
      [0.3, 0.4],
      [0.4, 0.5],
      [0.5, 0.6],
      [1, 0.2],
      [1.5, 0.1],
    ],
    s,
    "defocus_blur",
  );
  const r = Math.ceil(radius) + 1;
  const size = 2 * r + 1;
  const disk = new Float32Array(size * size);
  let sum = 0;
  for (let i = 0; i < size; i++)
    for (let j = 0; j < size; j++) if ((i - r) ** 2 + (j - r) ** 2 <= radius * radius) sum += disk[i * size + j] = 1;
  const g = gaussianKernel(alias, 3);
  const k = new Float32Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let v = 0;
      for (let a = -1; a <= 1; a++)
        for (let b = -1; b <= 1; b++)
          v +=
            (disk[(i + a) * size + (j + b)] ?? 0) *
            ((i + a >= 0 && i + a < size && j + b >= 0 && j + b < size ? 1 : 0) * (g[(a + 1) * 3 + (b + 1)] as number));
      k[i * size + j] = v / sum;
    }
  }
  return tidy(() => depthwise(x, k, size).clamp(0, 1));
};

// ImageMagick's motion blur (corruption-kernels.ts) at a random angle in [-45°, 45°].
const motionBlur: Corruption = (x, s) => {
  const [radius, sigma] = level<[number, number]>(
    [
      [10, 1],
      [10, 1.5],
      [10, 2],
      [10, 2.5],
      [12, 3],
    ],
    s,
    "motion_blur",
  );
  const { kernel, size } = motionKernel(radius, sigma, (((uniforms(1)[0] as number) - 0.5) * Math.PI) / 2);
  return tidy(() => depthwise(x, kernel, size).clamp(0, 1));
};

// The mean of the image and its centre zooms by each factor (bilinear).
const zoomBlur: Corruption = (x, s) => {
  const top = level([1.06, 1.11, 1.16, 1.21, 1.26], s, "zoom_blur");
  return tidy(() => {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    let out = x.alias();
    let count = 1;
    for (let z = 1.01; z < top - 1e-9; z += 0.01) {
      const theta = tensor(new Float32Array([1 / z, 0, 0, 0, 1 / z, 0]), { shape: [1, 2, 3] }).repeat([n, 1, 1]);
      out = out.add(
        F.gridSample(x, F.affineGrid(theta, [n, c, h, w], false), {
          mode: "bilinear",
          paddingMode: "border",
          alignCorners: false,
        }),
      );
      count++;
    }
    return out.div(count).clamp(0, 1);
  });
};

// HSV value + c: grey images simply brighten; colour images are scaled so V rises by c.
const brightness: Corruption = (x, s) => {
  const c = level([0.05, 0.1, 0.15, 0.2, 0.3], s, "brightness");
  return tidy(() => {
    if (x.dim(1) === 1) return x.add(c).clamp(0, 1);
    const v = x.max(1, true);
    const ratio = v.add(c).clamp(0, 1).div(v.clamp(1e-6, null));
    return x.mul(ratio).clamp(0, 1);
  });
};

const contrast: Corruption = (x, s) => {
  const c = level([0.75, 0.5, 0.4, 0.3, 0.15], s, "contrast");
  return tidy(() => {
    const m = x.mean([1, 2, 3], true);
    return x.sub(m).mul(c).add(m).clamp(0, 1);
  });
};

// Down to size·c (PIL's BOX filter in the reference; bilinear here) and back up.
const pixelate: Corruption = (x, s) => {
  const c = level([0.95, 0.9, 0.85, 0.75, 0.65], s, "pixelate");
  return tidy(() => {
    const [h, w] = [x.dim(2), x.dim(3)];
    const small = F.interpolate(x, [Math.max(1, Math.floor(h * c)), Math.max(1, Math.floor(w * c))], "bilinear");
    return F.interpolate(small, [h, w], "nearest");
  });
};

/** The fifteen ImageNet-C corruptions by name, in the reference's order (noise, blur, weather, digital). */
export const CORRUPTIONS: Readonly<Record<string, Corruption>> = {
  gaussian_noise: gaussianNoise,
  shot_noise: shotNoise,
  impulse_noise: impulseNoise,
  defocus_blur: defocusBlur,
  glass_blur: glassBlur,
  motion_blur: motionBlur,
  zoom_blur: zoomBlur,
  snow,
  frost,
  fog,
  brightness,
  contrast,
  elastic_transform: elasticTransform,
  pixelate,
  jpeg_compression: jpegCompression,
};
