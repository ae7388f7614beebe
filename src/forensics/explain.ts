// Forensics for a BaDExpert detector: saliency of its backdoor expert B in M's predicted label,
// for images as uint8 NHWC bytes (what files, datasets and the service hold), and the summary of
// many flagged inputs (trigger estimate and its pictures) that `explain`, the report and the
// service's dashboard show.
import { tidy, type Tensor } from "../engine/index.js";
import { imagesToTensor } from "../data/batch.js";
import type { BadExpertDetector } from "../defense/detector.js";
import { DEFAULT_SALIENCY_METHOD, saliencyMaps, type SaliencyMethod, type SaliencyOptions } from "./saliency.js";
import { triggerEstimate, type TriggerEstimate, type TriggerEstimateOptions } from "./trigger.js";
import { heatmapPng, overlayPng, signedPatternPng } from "./overlay.js";

/** Images the way the toolkit stores them: `count` uint8 NHWC images of one size. */
export interface ImageBytes {
  pixels: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: number;
}

function checkBytes(what: string, im: ImageBytes): void {
  if (im.pixels.length !== im.count * im.height * im.width * im.channels) {
    throw new RangeError(
      `${what}: ${im.pixels.length} bytes do not hold ${im.count} images of ${im.height}x${im.width}x${im.channels}`,
    );
  }
}

/** B's saliency maps [N, H, W] for images x (float [N, C, H, W] in [0, 1]) in the given labels (M's predictions). */
export function expertSaliency(
  det: BadExpertDetector,
  x: Tensor,
  labels: Int32Array,
  o: SaliencyOptions = {},
): Float32Array {
  const s = x.shape;
  if (s.length === 4) det.checkInput(s[2] as number, s[3] as number, s[1] as number, "expertSaliency");
  const { mean, std } = det.info.preprocessing;
  return saliencyMaps({ model: det.expert, reference: det.auxiliary, suspect: det.model, mean, std }, x, labels, o);
}

/** The same for uint8 NHWC images, in batches of `batchSize` (default 64) so memory stays bounded. */
export function expertSaliencyOfBytes(
  det: BadExpertDetector,
  im: ImageBytes,
  labels: Int32Array,
  o: SaliencyOptions & { batchSize?: number } = {},
): Float32Array {
  checkBytes("expertSaliencyOfBytes", im);
  if (labels.length !== im.count)
    throw new RangeError(`expertSaliencyOfBytes: ${labels.length} labels for ${im.count} images`);
  const per = im.height * im.width * im.channels;
  const plane = im.height * im.width;
  const batch = o.batchSize ?? 64;
  const out = new Float32Array(im.count * plane);
  for (let at = 0; at < im.count; at += batch) {
    const n = Math.min(batch, im.count - at);
    const maps = tidy(() =>
      expertSaliency(
        det,
        imagesToTensor(im.pixels.subarray(at * per, (at + n) * per), n, im.height, im.width, im.channels),
        labels.subarray(at, at + n),
        o,
      ),
    );
    out.set(maps, at * plane);
  }
  return out;
}

/** uint8 NHWC → float NCHW in [0, 1] (plain arrays, no tensors). */
export function planarFloats(im: ImageBytes): Float32Array {
  checkBytes("planarFloats", im);
  const { count: n, height: h, width: w, channels: c } = im;
  const plane = h * w;
  const out = new Float32Array(n * c * plane);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < c; ch++)
        out[(i * c + ch) * plane + p] = (im.pixels[(i * plane + p) * c + ch] as number) / 255;
  return out;
}

/** Mean image [C, H, W] in [0, 1] (null for no images). */
export function meanImage(im: ImageBytes): Float32Array | null {
  checkBytes("meanImage", im);
  if (im.count === 0) return null;
  const { count: n, height: h, width: w, channels: c } = im;
  const plane = h * w;
  const out = new Float32Array(c * plane);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < plane; p++)
      for (let ch = 0; ch < c; ch++)
        out[ch * plane + p] =
          (out[ch * plane + p] as number) + (im.pixels[(i * plane + p) * c + ch] as number) / 255 / n;
  return out;
}

export interface FlaggedSummaryOptions extends SaliencyOptions, TriggerEstimateOptions {
  /** Overlays made for the first this many flagged inputs (default 16). */
  examples?: number;
}

export interface FlaggedSummary {
  method: SaliencyMethod;
  /** Saliency maps of every flagged input [N, H, W]. */
  maps: Float32Array;
  estimate: TriggerEstimate;
  /** PNG overlays of the first `examples` flagged inputs (image size). */
  overlays: Buffer[];
  meanMapPng: Buffer;
  patternPng: Buffer;
  /** Whether a clean reference was given (the trigger estimate subtracts its mean). */
  cleanReference: boolean;
}

/**
 * Explains flagged inputs: B's saliency in M's predictions `preds`, the trigger estimate (with
 * `cleanMean`, the mean clean image [C, H, W] from meanImage(), subtracted when given), overlays
 * of the first few and pictures of the estimate.
 */
export async function summariseFlagged(
  det: BadExpertDetector,
  flagged: ImageBytes,
  preds: Int32Array,
  cleanMean: Float32Array | null,
  o: FlaggedSummaryOptions = {},
): Promise<FlaggedSummary> {
  const method = o.method ?? DEFAULT_SALIENCY_METHOD;
  const maps = expertSaliencyOfBytes(det, flagged, preds, { ...o, method });
  const { height: h, width: w, channels: c } = flagged;
  const estimate = triggerEstimate(
    {
      images: planarFloats(flagged),
      maps,
      preds,
      channels: c,
      height: h,
      width: w,
      numClasses: det.info.classNames.length,
      cleanMean,
    },
    o,
  );
  const per = h * w * c;
  const overlays: Buffer[] = [];
  for (let i = 0; i < Math.min(o.examples ?? 16, flagged.count); i++) {
    overlays.push(
      await overlayPng(
        flagged.pixels.subarray(i * per, (i + 1) * per),
        h,
        w,
        c,
        maps.subarray(i * h * w, (i + 1) * h * w),
      ),
    );
  }
  return {
    method,
    maps,
    estimate,
    overlays,
    meanMapPng: await heatmapPng(estimate.meanMap, h, w),
    patternPng: await signedPatternPng(estimate.pattern, c, h, w),
    cleanReference: cleanMean !== null,
  };
}
