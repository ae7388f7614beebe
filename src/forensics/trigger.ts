// What many flagged inputs say together: which class they are pushed to, where B looks on
// average (a patch trigger shows as a hot spot, a blend or warp as a diffuse map), and a
// reconstruction of the trigger: the saliency-weighted mean of the flagged inputs minus the mean
// of clean inputs, kept where B looks. Its bounding boxes are reported when the evidence is
// compact (a patch), and left out when it is spread over the image (nothing box-shaped to show).
import { boxArea, boxOf, components, type Box } from "./regions.js";

export interface TriggerEstimateInput {
  /** Flagged images, float [N, C, H, W] in [0, 1], back to back. */
  images: Float32Array;
  /** Their saliency maps [N, H, W] (any non-negative scale; each is normalised to its maximum). */
  maps: Float32Array;
  /** M's prediction for each flagged image. */
  preds: Int32Array;
  channels: number;
  height: number;
  width: number;
  numClasses: number;
  /** Mean of clean images [C, H, W] in [0, 1]; without it the estimate is the weighted mean itself. */
  cleanMean?: Float32Array | null;
}

export interface TriggerEstimateOptions {
  /**
   * Evidence above this share of its maximum counts as trigger. Default 0.15 with a clean mean, 0.5
   * without (the mean map alone is blurred by the saliency method and needs the higher cut); both
   * chosen on BadNet and Trojan (docs/forensics.md, "How well it localises").
   */
  threshold?: number;
  /** Components with less than this share of the strongest one's evidence are dropped (default 0.25). */
  minComponentShare?: number;
  /** Boxes covering more than this share of the image are not compact: no box is reported (default 0.25). */
  maxBoxShare?: number;
}

export interface TriggerEstimate {
  count: number;
  /** Flagged inputs per predicted class. */
  targetCounts: number[];
  /** The most frequent predicted class (-1 without inputs) and its share. */
  target: number;
  targetShare: number;
  /** Mean of the per-input maps (each normalised to max 1), normalised to max 1: [H, W]. */
  meanMap: Float32Array;
  /** Reconstructed trigger [C, H, W]: (weighted mean of flagged − clean mean) × meanMap; signed. */
  pattern: Float32Array;
  /** Where the trigger is judged to be: meanMap × |pattern| (or meanMap alone without a clean mean), max 1: [H, W]. */
  evidence: Float32Array;
  /** Bounding boxes of the evidence's strong components; empty when not compact. */
  boxes: Box[];
  /** Whether the evidence is compact (boxes cover at most maxBoxShare of the image). */
  compact: boolean;
}

function checkShare(name: string, v: number): number {
  if (!(v > 0 && v <= 1)) throw new RangeError(`triggerEstimate: ${name} must be in (0, 1], got ${v}`);
  return v;
}

function normalisedToMax(a: Float32Array): Float32Array {
  let max = 0;
  for (const v of a) if (v > max) max = v;
  if (max > 0) for (let i = 0; i < a.length; i++) a[i] = (a[i] as number) / max;
  return a;
}

export function triggerEstimate(input: TriggerEstimateInput, o: TriggerEstimateOptions = {}): TriggerEstimate {
  const { channels: c, height: h, width: w, numClasses } = input;
  const n = input.preds.length;
  const plane = h * w;
  if (input.images.length !== n * c * plane)
    throw new RangeError(
      `triggerEstimate: images hold ${input.images.length} values, expected ${n} x ${c} x ${h} x ${w} = ${n * c * plane}`,
    );
  if (input.maps.length !== n * plane)
    throw new RangeError(
      `triggerEstimate: maps hold ${input.maps.length} values, expected ${n} x ${h} x ${w} = ${n * plane}`,
    );
  if (input.cleanMean && input.cleanMean.length !== c * plane)
    throw new RangeError(
      `triggerEstimate: cleanMean holds ${input.cleanMean.length} values, expected ${c} x ${h} x ${w} = ${c * plane}`,
    );
  const threshold = checkShare("threshold", o.threshold ?? (input.cleanMean ? 0.15 : 0.5));
  const minShare = checkShare("minComponentShare", o.minComponentShare ?? 0.25);
  const maxBox = checkShare("maxBoxShare", o.maxBoxShare ?? 0.25);

  const targetCounts = new Array<number>(numClasses).fill(0);
  for (const p of input.preds) if (p >= 0 && p < numClasses) targetCounts[p] = (targetCounts[p] as number) + 1;
  let target = -1;
  for (let k = 0; k < numClasses; k++)
    if (target < 0 || (targetCounts[k] as number) > (targetCounts[target] as number)) target = k;
  if (n === 0) target = -1;

  const meanMap = new Float32Array(plane);
  const weightSum = new Float32Array(plane);
  const weighted = new Float32Array(c * plane);
  for (let i = 0; i < n; i++) {
    let max = 0;
    for (let p = 0; p < plane; p++) max = Math.max(max, input.maps[i * plane + p] as number);
    if (!(max > 0)) continue;
    for (let p = 0; p < plane; p++) {
      const m = (input.maps[i * plane + p] as number) / max;
      meanMap[p] = (meanMap[p] as number) + m / n;
      weightSum[p] = (weightSum[p] as number) + m;
      for (let ch = 0; ch < c; ch++)
        weighted[ch * plane + p] =
          (weighted[ch * plane + p] as number) + m * (input.images[(i * c + ch) * plane + p] as number);
    }
  }
  normalisedToMax(meanMap);
  const pattern = new Float32Array(c * plane);
  const evidence = new Float32Array(plane);
  for (let p = 0; p < plane; p++) {
    const ws = weightSum[p] as number;
    let diff = 0;
    for (let ch = 0; ch < c; ch++) {
      const mean = ws > 0 ? (weighted[ch * plane + p] as number) / ws : 0;
      const d = mean - (input.cleanMean ? (input.cleanMean[ch * plane + p] as number) : 0);
      pattern[ch * plane + p] = d * (meanMap[p] as number);
      diff += Math.abs(d);
    }
    evidence[p] = input.cleanMean ? (meanMap[p] as number) * (diff / c) : (meanMap[p] as number);
  }
  normalisedToMax(evidence);

  const strong = Uint8Array.from(evidence, (v) => (v >= threshold ? 1 : 0));
  const comps = components(strong, h, w).map((px) => ({
    px,
    mass: px.reduce((s, p) => s + (evidence[p] as number), 0),
  }));
  const top = Math.max(0, ...comps.map((k) => k.mass));
  const boxes = comps.filter((k) => k.mass >= minShare * top && k.px.length > 0).map((k) => boxOf(k.px, w));
  const area = boxes.reduce((s, b) => s + boxArea(b), 0);
  const compact = n > 0 && boxes.length > 0 && area <= maxBox * plane;
  return {
    count: n,
    targetCounts,
    target,
    targetShare: n > 0 ? (targetCounts[target] as number) / n : 0,
    meanMap,
    pattern,
    evidence,
    boxes: compact ? boxes : [],
    compact,
  };
}
