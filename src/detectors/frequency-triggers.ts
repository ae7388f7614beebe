// The Frequency detector's defender-side "poisoned" examples: each reserved clean image gets one
// generic random trigger, none of them the attack's (the defender does not know it). The five
// kinds and their constants follow the authors' training code (for 32x32 images; patch sizes and
// margins are scaled to other sizes), each chosen with probability 1/5:
//   0 a white block, 1 a block of uniform noise — sides in [2, 8) pixels, at a random corner,
//     inset by a margin in [0, 6);
//   2 Gaussian noise N(25, σ²) in 0–255 units with σ² uniform in [10, 70] (albumentations'
//     GaussNoise(mean=25, var_limit=(10, 70)));
//   3 a random shadow: 1–2 random five-vertex polygons in the lower half, darkened by half
//     (albumentations' RandomShadow; it halves HLS lightness, here the pixel values);
//   4 a blend x + 0.3 · x', x' another reserved image.
// Every result is clipped to [0, 1] and quantised to 8 bits, as real inputs are, so that the
// detector cannot learn the quantisation instead of the trigger.
import { Rng } from "../util/rng.js";

export const TRIGGER_KINDS = ["white-block", "noise-block", "gaussian-noise", "shadow", "blend"] as const;

function gaussian(rng: Rng): number {
  // Box–Muller; 1 − u keeps the logarithm finite.
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Even–odd rule: is (px, py) inside the polygon? */
function inside(poly: readonly [number, number][], px: number, py: number): boolean {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i] as [number, number];
    const [xj, yj] = poly[j] as [number, number];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

/**
 * Applies trigger `kind` to one image `img` ([C, H, W] floats in [0, 1], changed in place);
 * `other` is the blend partner.
 */
export function applyTrigger(
  kind: number,
  img: Float32Array,
  other: Float32Array,
  c: number,
  h: number,
  w: number,
  rng: Rng,
): void {
  const plane = h * w;
  const scale = Math.min(h, w) / 32;
  if (kind === 0 || kind === 1) {
    const hi = Math.max(3, Math.round(8 * scale));
    const ph = rng.int(2, hi);
    const pw = rng.int(2, hi);
    const margin = rng.int(0, Math.max(1, Math.round(6 * scale)));
    const corner = rng.int(0, 4);
    const top = corner < 2 ? margin : h - margin - ph;
    const left = corner % 2 === 0 ? margin : w - margin - pw;
    for (let ch = 0; ch < c; ch++) {
      for (let r = top; r < top + ph; r++)
        for (let q = left; q < left + pw; q++) img[ch * plane + r * w + q] = kind === 0 ? 1 : rng.next();
    }
  } else if (kind === 2) {
    const sigma = Math.sqrt(rng.uniform(10, 70));
    for (let k = 0; k < img.length; k++) img[k] = (img[k] as number) + (25 + sigma * gaussian(rng)) / 255;
  } else if (kind === 3) {
    const shadows = rng.int(1, 3);
    const polys: [number, number][][] = [];
    for (let s = 0; s < shadows; s++)
      polys.push(Array.from({ length: 5 }, () => [rng.uniform(0, w), rng.uniform(h / 2, h)] as [number, number]));
    for (let r = 0; r < h; r++) {
      for (let q = 0; q < w; q++) {
        if (!polys.some((p) => inside(p, q + 0.5, r + 0.5))) continue;
        for (let ch = 0; ch < c; ch++) img[ch * plane + r * w + q] = (img[ch * plane + r * w + q] as number) * 0.5;
      }
    }
  } else if (kind === 4) {
    for (let k = 0; k < img.length; k++) img[k] = (img[k] as number) + 0.3 * (other[k] as number);
  } else {
    throw new RangeError(`frequency: trigger kind must be an integer in 0..${TRIGGER_KINDS.length - 1}, got ${kind}`);
  }
  for (let k = 0; k < img.length; k++) img[k] = Math.round(255 * Math.min(1, Math.max(0, img[k] as number))) / 255;
}

/** One random trigger for each image of `clean` ([N, C, H, W] floats in [0, 1]); a new array. */
export function synthesiseTriggered(
  clean: Float32Array,
  shape: readonly [number, number, number, number],
  rng: Rng,
): Float32Array {
  const [n, c, h, w] = shape;
  const per = c * h * w;
  if (clean.length !== n * per)
    throw new RangeError(`frequency: ${clean.length} values do not hold ${n} images of ${c}x${h}x${w}`);
  const out = Float32Array.from(clean);
  for (let i = 0; i < n; i++) {
    const kind = rng.int(0, TRIGGER_KINDS.length);
    const j = n > 1 ? (i + rng.int(1, n)) % n : i;
    applyTrigger(kind, out.subarray(i * per, (i + 1) * per), clean.subarray(j * per, (j + 1) * per), c, h, w, rng);
  }
  return out;
}
