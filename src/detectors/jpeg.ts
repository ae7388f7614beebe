// ImageNet-C's jpeg_compression: the image saved as a baseline JPEG at a quality (CIFAR-10-C: 80,
// 65, 58, 50, 40) and read back. The reference goes through PIL; here the lossy part of baseline
// JPEG is computed on tensors — entropy coding is lossless and changes nothing — as libjpeg does
// it: 8-bit samples; for colour, JFIF YCbCr with the chroma planes averaged over 2x2 (PIL's default
// 4:2:0); level shift by 128; 8x8 blocks (edges padded by repeating the last row/column); DCT;
// quantisation by the standard (Annex K) tables scaled to the quality with the IJG formula;
// dequantisation; inverse DCT; chroma upsampled bilinearly (libjpeg's "fancy" upsampling is a
// similar triangle filter); back to RGB, rounded and clipped to 8 bits.
import { F, cat, tensor, tidy, type Tensor } from "../engine/index.js";
import { level, type Corruption } from "./corruption-kernels.js";
import { dctMatrix } from "./dct.js";

const LUMA = [
  16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51,
  87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101,
  72, 92, 95, 98, 112, 100, 103, 99,
];
const CHROMA = [
  17,
  18,
  24,
  47,
  99,
  99,
  99,
  99,
  18,
  21,
  26,
  66,
  99,
  99,
  99,
  99,
  24,
  26,
  56,
  99,
  99,
  99,
  99,
  99,
  47,
  66,
  99,
  99,
  99,
  99,
  99,
  99,
  ...new Array<number>(32).fill(99),
];

/** The IJG quantisation table for `quality` (1..100): base · (q < 50 ? 5000/q : 200 − 2q) / 100, rounded, in [1, 255]. */
export function quantTable(base: readonly number[], quality: number): Float32Array {
  if (!Number.isInteger(quality) || quality < 1 || quality > 100)
    throw new RangeError(`jpeg: quality must be an integer in 1..100, got ${quality}`);
  const scale = quality < 50 ? 5000 / quality : 200 - 2 * quality;
  return Float32Array.from(base, (b) => Math.min(255, Math.max(1, Math.floor((b * scale + 50) / 100))));
}

/** One plane [N, 1, H, W] of 0–255 samples through DCT quantisation with table q (64 values); same shape out. */
function quantisePlane(p: Tensor, q: Float32Array): Tensor {
  return tidy(() => {
    const [n, , h, w] = p.shape as [number, number, number, number];
    const [ph, pw] = [Math.ceil(h / 8) * 8, Math.ceil(w / 8) * 8];
    const padded = ph === h && pw === w ? p : p.pad([0, pw - w, 0, ph - h], "replicate");
    const blocks = padded
      .sub(128)
      .reshape([n, ph / 8, 8, pw / 8, 8])
      .permute([0, 1, 3, 2, 4]);
    const d = tensor(dctMatrix(8), { shape: [8, 8] });
    const qt = tensor(q, { shape: [8, 8] });
    const coef = d.matmul(blocks).matmul(d.transpose(0, 1)).div(qt).round().mul(qt);
    const back = d.transpose(0, 1).matmul(coef).matmul(d).add(128);
    return back.permute([0, 1, 3, 2, 4]).reshape([n, 1, ph, pw]).narrow(2, 0, h).narrow(3, 0, w);
  });
}

/** A baseline-JPEG round trip of [N, C, H, W] images in [0, 1] (C = 1 or 3) at `quality`. */
export function jpegRoundTrip(x: Tensor, quality: number): Tensor {
  const c = x.dim(1);
  if (c !== 1 && c !== 3) throw new RangeError(`jpeg: images must have 1 or 3 channels, got ${c}`);
  const luma = quantTable(LUMA, quality);
  const chroma = quantTable(CHROMA, quality);
  return tidy(() => {
    const v = x.mul(255).round().clamp(0, 255);
    if (c === 1) return quantisePlane(v, luma).round().clamp(0, 255).div(255);
    const [h, w] = [x.dim(2), x.dim(3)];
    const [r, g, b] = [v.narrow(1, 0, 1), v.narrow(1, 1, 1), v.narrow(1, 2, 1)];
    const y = r.mul(0.299).add(g.mul(0.587)).add(b.mul(0.114));
    const cb = r.mul(-0.168736).add(g.mul(-0.331264)).add(b.mul(0.5)).add(128);
    const cr = r.mul(0.5).add(g.mul(-0.418688)).add(b.mul(-0.081312)).add(128);
    const sub = (p: Tensor) => F.avgPool2d(p.pad([0, w % 2, 0, h % 2], "replicate"), 2);
    const up = (p: Tensor) =>
      F.interpolate(p, [h + (h % 2), w + (w % 2)], "bilinear", false)
        .narrow(2, 0, h)
        .narrow(3, 0, w);
    const y2 = quantisePlane(y.round(), luma);
    const cb2 = up(quantisePlane(sub(cb).round(), chroma)).sub(128);
    const cr2 = up(quantisePlane(sub(cr).round(), chroma)).sub(128);
    const rr = y2.add(cr2.mul(1.402));
    const gg = y2.sub(cb2.mul(0.344136)).sub(cr2.mul(0.714136));
    const bb = y2.add(cb2.mul(1.772));
    return cat([rr, gg, bb], 1).round().clamp(0, 255).div(255);
  });
}

export const jpegCompression: Corruption = (x, s) => {
  const quality = level([80, 65, 58, 50, 40], s, "jpeg_compression");
  return jpegRoundTrip(x, quality);
};
