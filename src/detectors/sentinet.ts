// SentiNet (Chou, Tramèr and Pellegrino, "SentiNet: Detecting Localized Universal Attacks Against
// Deep Learning Systems", IEEE S&P Workshops 2020). A localized trigger is what makes M decide, so
// its Grad-CAM region, cut out of x and pasted onto clean images, carries M's decision with it:
//   fooled(x)  = share of the n clean images that, with x's region pasted on, M labels M(x);
//   avgconf(x) = M's mean top-1 confidence on the same clean images with uniform noise (an inert
//                pattern) pasted in that region instead.
// On clean inputs fooled stays low for a given avgconf; the boundary is a quadratic fitted to the
// highest fooled rate per avgconf bin (width 0.02) of held-out clean inputs, and the score is the
// signed Euclidean distance of (avgconf, fooled) to that curve — positive above it, higher = more
// suspicious. As in the BaDExpert authors' toolbox: the region is the top 15% of the Grad-CAM map
// of M(x) (on M's class logit), n = 100 clean images, 400 clean inputs fit the boundary; the
// paper's class proposals (several candidate classes, region differences) are not used.
import { inferenceMode, keep, tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { imagesToTensor } from "../data/batch.js";
import { normalize } from "../data/augment.js";
import { gradCam } from "../models/grad-cam.js";
import { numberParam, type ParamTable } from "../attacks/params.js";
import type { ParamValue } from "../attacks/attack.js";
import { Rng } from "../util/rng.js";
import {
  checkBatch,
  checkSeeds,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
  type ScoreOptions,
} from "./detector.js";
import { logitsOf } from "./model-forward.js";

export const SENTINET_PARAMS: ParamTable = {
  n: {
    type: "integer",
    default: 100,
    min: 1,
    description: "clean images the region (and the inert pattern) is pasted onto",
  },
  boundaryImages: {
    type: "integer",
    default: 400,
    min: 3,
    description: "held-out reserved clean images whose (avgconf, fooled) points fit the boundary",
  },
  regionShare: {
    type: "number",
    default: 0.15,
    above: 0,
    max: 1,
    description: "share of the Grad-CAM map's pixels (the highest) that form the salient region",
  },
  binWidth: {
    type: "number",
    default: 0.02,
    above: 0,
    max: 1,
    description: "avgconf bin width for the boundary's points (highest fooled rate per bin)",
  },
  seed: { type: "integer", default: 0, min: 0, description: "seed of the clean images drawn and of the inert noise" },
};

/** Quadratic y = c0 + c1·x + c2·x² (the boundary). */
export type Quadratic = [number, number, number];

export function evalQuadratic(q: Quadratic, x: number): number {
  return q[0] + q[1] * x + q[2] * x * x;
}

/** Least-squares quadratic through the points (a tiny ridge keeps it defined for fewer than 3 distinct x). */
export function fitQuadratic(xs: readonly number[], ys: readonly number[]): Quadratic {
  const a = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ] as number[][];
  const b = [0, 0, 0];
  xs.forEach((x, i) => {
    const f = [1, x, x * x];
    for (let r = 0; r < 3; r++) {
      b[r] = (b[r] as number) + (f[r] as number) * (ys[i] as number);
      for (let c = 0; c < 3; c++)
        (a[r] as number[])[c] = ((a[r] as number[])[c] as number) + (f[r] as number) * (f[c] as number);
    }
  });
  for (let r = 0; r < 3; r++) (a[r] as number[])[r] = ((a[r] as number[])[r] as number) + 1e-9;
  // Gaussian elimination with partial pivoting on the 3x3 normal equations.
  const m = a.map((row, r) => [...row, b[r] as number]);
  for (let col = 0; col < 3; col++) {
    let piv = col;
    for (let r = col + 1; r < 3; r++)
      if (Math.abs((m[r] as number[])[col] as number) > Math.abs((m[piv] as number[])[col] as number)) piv = r;
    [m[col], m[piv]] = [m[piv] as number[], m[col] as number[]];
    const p = m[col] as number[];
    for (let r = 0; r < 3; r++) {
      if (r === col) continue;
      const row = m[r] as number[];
      const f = (row[col] as number) / (p[col] as number);
      for (let c = col; c < 4; c++) row[c] = (row[c] as number) - f * (p[c] as number);
    }
  }
  return [0, 1, 2].map((r) => ((m[r] as number[])[3] as number) / ((m[r] as number[])[r] as number)) as Quadratic;
}

/** The boundary's points: for each avgconf bin, its centre and the highest fooled rate in it (the authors' selection). */
export function boundaryPoints(
  avgconf: readonly number[],
  fooled: readonly number[],
  binWidth: number,
): { xs: number[]; ys: number[] } {
  const lo = Math.min(...avgconf);
  const hi = Math.max(...avgconf);
  const bins = Math.floor((hi - lo) / binWidth) + 1;
  const best = new Array<number>(bins).fill(Number.NEGATIVE_INFINITY);
  avgconf.forEach((x, i) => {
    const k = Math.min(bins - 1, Math.floor((x - lo) / binWidth));
    best[k] = Math.max(best[k] as number, fooled[i] as number);
  });
  const xs: number[] = [];
  const ys: number[] = [];
  best.forEach((y, k) => {
    if (y === Number.NEGATIVE_INFINITY) return;
    xs.push(lo + k * binWidth + binWidth / 2);
    ys.push(y);
  });
  return { xs, ys };
}

/** Signed Euclidean distance from (x, y) to the curve y = q(x): positive above it. */
export function signedDistance(q: Quadratic, x: number, y: number): number {
  const d2 = (t: number) => (t - x) ** 2 + (evalQuadratic(q, t) - y) ** 2;
  // Coarse grid over a range that holds the nearest point (|t − x| ≤ the vertical distance), then golden-section refinement.
  const reach = Math.abs(evalQuadratic(q, x) - y) + 1e-9;
  let best = x;
  const steps = 200;
  for (let s = 0; s <= steps; s++) {
    const t = x - reach + (2 * reach * s) / steps;
    if (d2(t) < d2(best)) best = t;
  }
  let [a, b] = [best - (2 * reach) / steps, best + (2 * reach) / steps];
  const g = (Math.sqrt(5) - 1) / 2;
  for (let it = 0; it < 60; it++) {
    const c = b - g * (b - a);
    const d = a + g * (b - a);
    if (d2(c) < d2(d)) b = d;
    else a = c;
  }
  const dist = Math.sqrt(Math.min(d2((a + b) / 2), d2(best)));
  return y >= evalQuadratic(q, x) ? dist : -dist;
}

/** Masks [N, 1, H, W] (0/1) of each map's highest `share` of pixels (strictly above the k-th largest, as the authors' code). */
export function topShareMasks(maps: Float32Array, n: number, plane: number, share: number): Float32Array {
  const out = new Float32Array(n * plane);
  const k = Math.max(1, Math.floor(plane * share));
  for (let i = 0; i < n; i++) {
    const row = maps.subarray(i * plane, (i + 1) * plane);
    const kth = Float32Array.from(row).sort().reverse()[k - 1] as number;
    for (let p = 0; p < plane; p++) out[i * plane + p] = (row[p] as number) > kth ? 1 : 0;
  }
  return out;
}

export class SentiNetDetector implements InputDetector {
  readonly name = "sentinet";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly #ctx: DetectorContext;
  /** The n clean images [n, C, H, W] in [0, 1] the regions are pasted onto. */
  readonly #pool: Tensor;
  readonly #boundary: Quadratic;
  #calls = 0;

  /** From the reserved clean set (the pool and the boundary), or from a saved pool and boundary (the detector then owns the pool). */
  constructor(
    ctx: DetectorContext,
    source: ImageDataset | { pool: Tensor; boundary: Quadratic },
    params: Readonly<Record<string, ParamValue>>,
  ) {
    this.#ctx = ctx;
    this.params = params;
    if ("pool" in source) {
      checkBatch("sentinet (saved pool)", source.pool, ctx.preprocessing);
      if (!source.boundary.every(Number.isFinite))
        throw new RangeError(
          `sentinet: saved boundary must be 3 finite numbers, got ${JSON.stringify(source.boundary)}`,
        );
      this.#pool = source.pool;
      this.#boundary = source.boundary;
      this.fitted = { poolSize: source.pool.dim(0), boundary: source.boundary };
      return;
    }
    const n = numberParam(params, "n");
    const m = numberParam(params, "boundaryImages");
    if (source.count < n + 3)
      throw new RangeError(
        `sentinet: the reserved clean set has ${source.count} images; it needs n (${n}) for pasting plus at least 3 to fit the boundary`,
      );
    const order = new Rng(numberParam(params, "seed")).permutation(source.count);
    this.#pool = keep(this.#images(source, order.subarray(0, n)));
    try {
      const held = this.#images(source, order.subarray(n, n + Math.min(m, source.count - n)));
      const points = (() => {
        try {
          // The fit's noise has its own stream, so a restored detector scores exactly as the fitted one.
          return this.#points(held, Rng.derive(numberParam(params, "seed"), 1, 0));
        } finally {
          held.dispose();
        }
      })();
      const { xs, ys } = boundaryPoints(points.avgconf, points.fooled, numberParam(params, "binWidth"));
      this.#boundary = fitQuadratic(xs, ys);
      this.fitted = {
        poolSize: n,
        boundaryImages: points.avgconf.length,
        boundaryPoints: xs.length,
        boundary: this.#boundary,
      };
    } catch (e) {
      this.#pool.dispose();
      throw e;
    }
  }

  #images(ds: ImageDataset, idx: Int32Array): Tensor {
    const size = ds.height * ds.width * ds.channels;
    const bytes = new Uint8Array(idx.length * size);
    idx.forEach((i, k) => bytes.set(ds.images.subarray(i * size, (i + 1) * size), k * size));
    return imagesToTensor(bytes, idx.length, ds.height, ds.width, ds.channels);
  }

  /** M's prediction and the (avgconf, fooled) point of each input of x. */
  #points(x: Tensor, rng: Rng | ((i: number) => Rng)): { pred: Int32Array; avgconf: number[]; fooled: number[] } {
    const { model, preprocessing: p } = this.#ctx;
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const pred = inferenceMode(() =>
      tidy(() => logitsOf(model, p, x).argmax(1).to({ dtype: "int32" }).data() as Int32Array),
    );
    // Grad-CAM of M's own class logit.
    const xn = tidy(() => normalize(x, p.mean, p.std));
    let maps: Float32Array;
    try {
      maps = gradCam(
        model,
        xn,
        (z) =>
          z
            .gather(
              1,
              tensor(
                BigInt64Array.from(pred, (v) => BigInt(v)),
                { shape: [b, 1] },
              ),
            )
            .squeeze(1),
        "sentinet",
      );
    } finally {
      xn.dispose();
    }
    const masks = topShareMasks(maps, b, h * w, numberParam(this.params, "regionShare"));
    const n = this.#pool.dim(0);
    const avgconf: number[] = [];
    const fooled: number[] = [];
    inferenceMode(() => {
      for (let i = 0; i < b; i++) {
        const r = typeof rng === "function" ? rng(i) : rng;
        const noise = Float32Array.from({ length: n * c * h * w }, () => r.next());
        const [f, a] = tidy(() => {
          const m = tensor(masks.subarray(i * h * w, (i + 1) * h * w), { shape: [1, 1, h, w] });
          const keepPool = this.#pool.mul(m.rsub(1));
          const pasted = keepPool.add(x.narrow(0, i, 1).mul(m));
          const inert = keepPool.add(tensor(noise, { shape: [n, c, h, w] }).mul(m));
          const hits = logitsOf(model, p, pasted)
            .argmax(1)
            .eq(pred[i] as number)
            .to({ dtype: "float32" })
            .mean()
            .item();
          const conf = logitsOf(model, p, inert).softmax(1).max(1).mean().item();
          return [hits, conf];
        });
        fooled.push(f);
        avgconf.push(a);
      }
    });
    return { pred, avgconf, fooled };
  }

  scoreBatch(x: Tensor, o?: ScoreOptions): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const seeds = checkSeeds(this.name, o, x.dim(0));
    const seed = numberParam(this.params, "seed");
    // Per-input seeds: input i's inert noise comes from its own stream (batch-independent).
    const rng = seeds ? (i: number) => Rng.derive(seed, 2, seeds[i] as number) : Rng.derive(seed, 0, this.#calls++);
    const { pred, avgconf, fooled } = this.#points(x, rng);
    return {
      pred,
      score: Float64Array.from(avgconf, (a, i) => signedDistance(this.#boundary, a, fooled[i] as number)),
    };
  }

  state(): DetectorState {
    return { json: { boundary: this.#boundary }, tensors: new Map([["pool", this.#pool]]) };
  }

  dispose(): void {
    this.#pool.dispose();
  }
}
