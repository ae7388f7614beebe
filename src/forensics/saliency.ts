// Saliency from the backdoor expert B: for each input, a map of where B's confidence b in a given
// label (M's prediction) comes from, measured on its log-odds (see logOdds). B has unlearned
// the clean task and kept the backdoor, so what B looks at in a flagged input is the trigger.
// Methods are a table (name → description, function); every method returns non-negative maps [N, H, W] (one value per pixel, channels
// summed), larger = more responsible for B's confidence. Scale is per method: compare maps of
// one method, or rank pixels within a map (the localisation measure does).
import { enableGrad, gradients, inferenceMode, tensor, tidy, zerosLike, type Tensor } from "../engine/index.js";
import { normalize } from "../data/augment.js";
import type { Module } from "../nn/index.js";
import { gradCam, hasGradCamLayer } from "../models/grad-cam.js";
import { inputSeeds } from "../detectors/input-seeds.js";
import { Rng } from "../util/rng.js";

/** The model whose confidence is explained (B) and the input normalisation it was trained with. */
export interface SaliencyModel {
  model: Module;
  mean: readonly number[];
  std: readonly number[];
  /**
   * The auxiliary model M' (finetuned on the clean task, so it looks at the object): the contrast
   * methods explain a log-odds minus M''s, which cancels the evidence both models share.
   */
  reference?: Module;
  /** The suspicious model M itself (model-contrast explains M's log-odds minus M''s). */
  suspect?: Module;
}

export interface SaliencyOptions {
  method?: SaliencyMethod;
  /** Occlusion: side of the square occluder in pixels (default: 3 per 32 pixels of the shorter side). */
  window?: number;
  /** Occlusion: step between occluder positions (default: 1 per 32 pixels of the shorter side). */
  stride?: number;
  /** Occlusion: occluded copies per forward pass (default 512). */
  batchSize?: number;
  /** smoothgrad: noisy copies per input (default 16). */
  samples?: number;
  /** smoothgrad: standard deviation of the Gaussian pixel noise, in [0, 1] pixel units (default 0.2: SmoothGrad's 10–20% of the range, upper end). */
  noise?: number;
}

export const SALIENCY_METHODS = [
  "gradient-x-input",
  "smoothgrad",
  "gradient",
  "occlusion",
  "grad-cam",
  "expert-contrast",
  "model-contrast",
] as const;
export type SaliencyMethod = (typeof SALIENCY_METHODS)[number];

/**
 * The default, chosen by measurement (docs/forensics.md, "How well it localises"): the only method that meets the
 * localisation targets (median top-2% share in the mask ≥ 60%, box IoU ≥ 0.5) on BadNet, Trojan
 * and Adaptive-Patch alike; gradient × input misses Adaptive-Patch (6–13%), whose two patches
 * B holds only weakly.
 */
export const DEFAULT_SALIENCY_METHOD: SaliencyMethod = "smoothgrad";

type MapFn = (m: SaliencyModel, x: Tensor, labels: Int32Array, o: SaliencyOptions) => Float32Array;

export const SALIENCY_METHOD_INFO: Record<SaliencyMethod, { description: string; run: MapFn }> = {
  "gradient-x-input": {
    description: "|∂ℓ/∂x · x| (ℓ = log-odds of b) on the normalised input, summed over channels (one backward pass)",
    run: (m, x, l) => gradientMaps(m, x, l, true),
  },
  smoothgrad: {
    description:
      "|mean_k ∂ℓ/∂x (x + ε_k) · x| (SmoothGrad × input): the gradient of B's log-odds averaged over `samples` copies with Gaussian pixel noise of std `noise`, clipped to [0, 1], times the normalised input; the noise of each image is drawn from its own pixels, so a map does not depend on the batch",
    run: smoothGradMaps,
  },
  gradient: {
    description: "|∂ℓ/∂x| (ℓ = log-odds of b) on the normalised input, summed over channels (one backward pass)",
    run: (m, x, l) => gradientMaps(m, x, l, false),
  },
  occlusion: {
    description:
      "drop of the log-odds of b when a square around the pixel is set to the dataset mean, averaged over the squares covering it (one forward pass per position)",
    run: occlusionMaps,
  },
  "grad-cam": {
    description: "Grad-CAM on B's last convolution block (compact CNN only), upsampled bilinearly to the image",
    run: gradCamMaps,
  },
  "expert-contrast": {
    description:
      "|∂(ℓ_B − ℓ_M')/∂x · x|: gradient × input of B's log-odds minus the auxiliary model M''s; evidence for the label that both use (the object) cancels, what only B uses (the trigger) remains",
    run: (m, x, l) => gradientMaps(m, x, l, true, contrastReference(m)),
  },
  "model-contrast": {
    description:
      "|∂(ℓ_M − ℓ_M')/∂x · x|: gradient × input of M's log-odds minus M''s; what clean finetuning took out of M (the backdoor, when M' forgot it) remains",
    run: (m, x, l) => gradientMaps({ ...m, model: contrastSuspect(m) }, x, l, true, contrastReference(m)),
  },
};

function contrastReference(m: SaliencyModel): Module {
  if (!m.reference)
    throw new RangeError(
      "saliency: the contrast methods need the auxiliary model M' as `reference`; use gradient-x-input without it",
    );
  return m.reference;
}

function contrastSuspect(m: SaliencyModel): Module {
  if (!m.suspect)
    throw new RangeError(
      "saliency: model-contrast needs the suspicious model M as `suspect`; use expert-contrast or gradient-x-input without it",
    );
  return m.suspect;
}

/** Checks a method name; an unknown one lists the valid ones. */
export function saliencyMethod(name: string): SaliencyMethod {
  const m = SALIENCY_METHODS.find((s) => s === name);
  if (m === undefined)
    throw new RangeError(`saliency method '${name}' is unknown; valid methods: ${SALIENCY_METHODS.join(", ")}`);
  return m;
}

function checkInputs(x: Tensor, labels: Int32Array, m: SaliencyModel): void {
  const s = x.shape;
  if (s.length !== 4)
    throw new RangeError(`saliency: expected images [N, C, H, W] in [0, 1], got shape [${s.join(", ")}]`);
  if (labels.length !== s[0]) throw new RangeError(`saliency: ${labels.length} labels for ${s[0]} images`);
  if (m.mean.length !== s[1] || m.std.length !== s[1])
    throw new RangeError(
      `saliency: images have ${s[1]} channels but the normalisation has ${m.mean.length} means and ${m.std.length} stds`,
    );
}

/** Non-negative saliency maps [N * H * W] of `m.model`'s softmax confidence in `labels` for images x (float [N, C, H, W] in [0, 1]). */
export function saliencyMaps(m: SaliencyModel, x: Tensor, labels: Int32Array, o: SaliencyOptions = {}): Float32Array {
  checkInputs(x, labels, m);
  const method = o.method ?? DEFAULT_SALIENCY_METHOD;
  if (!SALIENCY_METHODS.includes(method)) saliencyMethod(String(method));
  if (x.dim(0) === 0) return new Float32Array(0);
  return SALIENCY_METHOD_INFO[method].run(m, x, labels, o);
}

/**
 * The log-odds of the model's confidence in `labels` per row, z_y − logsumexp_{k≠y} z_k = log(b / (1 − b)):
 * monotone in b, and unlike b (or log b) it does not saturate when B is sure (b ≈ 1 on backdoor
 * inputs), where the gradient and the occlusion drop of b itself vanish in float32.
 */
function logOdds(z: Tensor, labels: Int32Array): Tensor {
  return tidy(() => {
    const idx = tensor(Int32Array.from(labels), { shape: [labels.length, 1] }).to({ dtype: "int64" });
    const own = z.gather(1, idx).squeeze(1);
    const isOwn = zerosLike(z).scatter(1, idx, 1).gt(0.5);
    return own.sub(z.maskedFill(isOwn, Number.NEGATIVE_INFINITY).logsumexp(1));
  });
}

function gradientMaps(
  m: SaliencyModel,
  x: Tensor,
  labels: Int32Array,
  timesInput: boolean,
  reference?: Module,
): Float32Array {
  return tidy(() => {
    const xn = normalize(x, m.mean, m.std);
    const g = signedGradients(m, xn, labels, reference);
    return (timesInput ? g.mul(xn) : g).abs().sum(1).contiguous().data() as Float32Array;
  });
}

/** Signed gradients [N, C, H, W] of the explained log-odds (B's, minus M''s for a contrast) with respect to the normalised input. */
function signedGradients(m: SaliencyModel, xn: Tensor, labels: Int32Array, reference?: Module): Tensor {
  return enableGrad(() => {
    const leaf = xn.detach().requiresGrad_();
    // Rows are independent (the models are in eval mode), so the gradient of the sum is each row's own.
    const own = logOdds(m.model.forward(leaf), labels);
    const total = (reference ? own.sub(logOdds(reference.forward(leaf), labels)) : own).sum();
    const [g] = gradients([total], [leaf]);
    return g ? g.detach() : zerosLike(xn);
  });
}

/**
 * SmoothGrad (Smilkov et al., 2017) × input. Single gradients of a small CNN are noisy at the
 * pixel level; averaging over noisy copies keeps what holds in a neighbourhood of the image. The
 * noise is drawn per image from a seed hashed from its pixels (the service's batches vary).
 */
function smoothGradMaps(m: SaliencyModel, x: Tensor, labels: Int32Array, o: SaliencyOptions): Float32Array {
  const samples = positiveInt("samples", o.samples ?? 16);
  const sigma = o.noise ?? 0.2;
  if (!(sigma >= 0 && sigma <= 1))
    throw new RangeError(`saliency: noise must be in [0, 1] (pixel units), got ${sigma}`);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const per = c * h * w;
  const rngs = Array.from(inputSeeds(x), (seed) => new Rng(seed));
  return tidy(() => {
    let sum = zerosLike(x);
    for (let k = 0; k < samples; k++) {
      // The running sum is replaced each copy; the previous one is freed at once, so memory stays at one copy.
      const next = tidy(() => {
        const eps = new Float32Array(n * per);
        for (let i = 0; i < n; i++) {
          const rng = rngs[i] as Rng;
          for (let j = 0; j < per; j++) eps[i * per + j] = sigma * rng.normal();
        }
        const noisy = x.add(tensor(eps, { shape: [n, c, h, w] })).clamp(0, 1);
        return sum.add(signedGradients(m, normalize(noisy, m.mean, m.std), labels));
      });
      sum.dispose();
      sum = next;
    }
    return sum
      .div(samples)
      .mul(normalize(x, m.mean, m.std))
      .abs()
      .sum(1)
      .contiguous()
      .data() as Float32Array;
  });
}

/** Default occluder side and stride for an image: 3 and 1 pixels per 32 pixels of its shorter side. */
export function occlusionDefaults(height: number, width: number): { window: number; stride: number } {
  const s = Math.max(1, Math.round(Math.min(height, width) / 32));
  return { window: 3 * s, stride: s };
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`saliency: ${name} must be a positive integer, got ${v}`);
  return v;
}

function occlusionMaps(m: SaliencyModel, x: Tensor, labels: Int32Array, o: SaliencyOptions): Float32Array {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const d = occlusionDefaults(h, w);
  const k = positiveInt("window", o.window ?? d.window);
  const stride = positiveInt("stride", o.stride ?? d.stride);
  const chunk = positiveInt("batchSize", o.batchSize ?? 512);
  if (k > Math.min(h, w)) throw new RangeError(`saliency: occlusion window ${k} is larger than the ${h}x${w} image`);
  // Occluder positions: squares centred every `stride` pixels, clipped at the borders, so every pixel is covered.
  const half = Math.floor(k / 2);
  const squares: [number, number, number, number][] = [];
  for (let r = 0; r < h; r += stride) {
    for (let q = 0; q < w; q += stride)
      squares.push([
        Math.max(0, r - half),
        Math.min(h, r - half + k),
        Math.max(0, q - half),
        Math.min(w, q - half + k),
      ]);
  }
  const plane = h * w;
  const out = new Float32Array(n * plane);
  const covered = new Float32Array(plane);
  for (const [r0, r1, q0, q1] of squares)
    for (let r = r0; r < r1; r++) for (let q = q0; q < q1; q++) covered[r * w + q] = (covered[r * w + q] as number) + 1;
  inferenceMode(() => {
    for (let i = 0; i < n; i++) {
      const label = labels[i] as number;
      tidy(() => {
        // Normalised space: the dataset mean is 0, so occluding is multiplying by a 0/1 mask.
        const xn = normalize(x.narrow(0, i, 1), m.mean, m.std);
        const base = (logOdds(m.model.forward(xn), Int32Array.of(label)).data() as Float32Array)[0] as number;
        for (let at = 0; at < squares.length; at += chunk) {
          const part = squares.slice(at, at + chunk);
          const keepMask = new Float32Array(part.length * plane).fill(1);
          for (const [j, [r0, r1, q0, q1]] of part.entries())
            for (let r = r0; r < r1; r++) keepMask.fill(0, j * plane + r * w + q0, j * plane + r * w + q1);
          const occluded = xn.expand([part.length, c, h, w]).mul(tensor(keepMask, { shape: [part.length, 1, h, w] }));
          const conf = logOdds(
            m.model.forward(occluded),
            new Int32Array(part.length).fill(label),
          ).data() as Float32Array;
          for (const [j, [r0, r1, q0, q1]] of part.entries()) {
            const drop = Math.max(0, base - (conf[j] as number));
            if (drop === 0) continue;
            for (let r = r0; r < r1; r++)
              for (let q = q0; q < q1; q++) out[i * plane + r * w + q] = (out[i * plane + r * w + q] as number) + drop;
          }
        }
      });
    }
  });
  for (let i = 0; i < n; i++)
    for (let p = 0; p < plane; p++) out[i * plane + p] = (out[i * plane + p] as number) / (covered[p] as number);
  return out;
}

function gradCamMaps(m: SaliencyModel, x: Tensor, labels: Int32Array): Float32Array {
  if (!hasGradCamLayer(m.model)) {
    throw new RangeError(
      `saliency: grad-cam needs B's convolution blocks, which this build exposes for the compact CNN only (B is a ${m.model.constructor.name}); use gradient-x-input or occlusion`,
    );
  }
  return tidy(() => gradCam(m.model, normalize(x, m.mean, m.std), (z) => logOdds(z, labels)));
}
