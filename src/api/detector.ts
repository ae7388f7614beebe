// The detector as a library user holds it: load a bundle, score images given as file paths,
// encoded bytes (PNG, JPEG, WebP, PPM, …) or a float tensor, get one plain record per input.
// Async like onnxruntime-node's InferenceSession: decoding is asynchronous, and a later version
// may score off the main thread without changing this surface.
import { tidy, type Tensor } from "../engine/index.js";
import { decodeImageFrames, type FramePolicy, type ImageConversion } from "../data/image-decode.js";
import { ImageDecodeError } from "../data/image-error.js";
import { ImageFileError, readImageFile } from "../data/read-image-file.js";
import { imagesToTensor } from "../data/batch.js";
import { loadBundleWithTrust, type BundleTrust, type LoadBundleOptions } from "../defense/bundle.js";
import type { BadExpertDetector, BatchScores } from "../defense/detector.js";
import type { ScoreRule } from "../defense/scores.js";
import { errorCode, type ErrorCode } from "../util/errors.js";

/** One image: a file path, or the encoded bytes of an image file. */
export type ImageInput = string | Uint8Array;

/**
 * One image decoded at the model's size (`frames` images one after the other in `pixels`: more
 * than one only with frames "all"), or why it could not be: the error's code (src/util/errors.ts),
 * its reason where it has one (a decoding problem: "corrupt", "multi_frame", ...; a file's errno)
 * and its message.
 */
export type DecodeOutcome = { ok: true; pixels: Uint8Array; frames: number; converted?: ImageConversion } | { ok: false; code: ErrorCode; reason?: string; message: string };

export interface FrameOptions {
  /**
   * Images of several frames (animated GIF/WebP/PNG, multi-page TIFF, multi-image PPM): "refuse"
   * (the default: an error naming the image and its frame count) or "all": every frame is scored
   * and the image's record is its worst frame's (see worstFrame).
   */
  frames?: FramePolicy;
  /** Most frames per image with frames "all" (default MAX_FRAMES in image-decode.ts). */
  maxFrames?: number;
}

export interface Detection {
  /** M's predicted class index and name. */
  pred: number;
  predClass: string;
  /** b: B's confidence in M's prediction. */
  expertConfidence: number;
  /** a: M''s confidence in M's prediction. */
  auxiliaryConfidence: number;
  score: number;
  threshold: number;
  /** True when the input is a suspected backdoor input (score above the threshold, or no valid score). */
  flagged: boolean;
  /** With frames "all", for an image of several frames: how many were scored, and the one this record reports. */
  frames?: number;
  frame?: number;
}

/**
 * Which frame decides an image scored frame by frame: one without a finite score (the detector
 * could not judge it: fail closed), else the highest score. The image is flagged when any frame is.
 */
export function worstFrame(frames: readonly { score: number | null; flagged: boolean }[]): { index: number; flagged: boolean } {
  let index = 0;
  for (const [j, f] of frames.entries()) {
    const best = frames[index] as { score: number | null };
    const bestValid = best.score !== null && Number.isFinite(best.score);
    if (bestValid && (f.score === null || !Number.isFinite(f.score) || f.score > (best.score as number))) index = j;
  }
  return { index, flagged: frames.some((f) => f.flagged) };
}

export interface DetectorSummary {
  architecture: string;
  classNames: string[];
  imageSize: [number, number];
  channels: number;
  rule: ScoreRule;
  threshold: number;
  targetFpr: number;
}

/** Images are scored in batches of this many, so memory stays bounded by the batch. */
const BATCH = 256;

export class Detector {
  readonly #det: BadExpertDetector;
  readonly #trust: BundleTrust | null;

  private constructor(det: BadExpertDetector, trust: BundleTrust | null) {
    this.#det = det;
    this.#trust = trust;
  }

  /**
   * Loads a bundle written by `badexpert defend` (or `defend()`). A signed bundle is verified
   * whenever a key is known (`verifyKey`, BADEXPERT_VERIFY_KEY, or the default key location);
   * `requireSignature` refuses an unsigned or unverifiable one. Warnings (unsigned, not verified)
   * go to `onWarning`, or to process.emitWarning (printed on stderr), and stay in `trust`.
   */
  static async load(dir: string, o: LoadBundleOptions = {}): Promise<Detector> {
    const { detector, trust } = await loadBundleWithTrust(dir, o);
    return new Detector(detector, trust);
  }

  /** Wraps a detector made in this process (takes ownership: dispose() frees its models). */
  static fromDetector(det: BadExpertDetector): Detector {
    return new Detector(det, null);
  }

  /** Whether the bundle was signed and verified, and the load's warnings; null for a detector made in this process. */
  get trust(): BundleTrust | null {
    return this.#trust;
  }

  /** The underlying BaDExpert detector (models, manifest), for lower-level use. */
  get detector(): BadExpertDetector {
    return this.#det;
  }

  get summary(): DetectorSummary {
    const i = this.#det.info;
    return {
      architecture: i.spec.name,
      classNames: [...i.classNames],
      imageSize: [i.preprocessing.imageSize[0], i.preprocessing.imageSize[1]],
      channels: i.preprocessing.channels,
      rule: i.rule,
      threshold: i.threshold,
      targetFpr: i.targetFpr,
    };
  }

  /**
   * Scores images. A tensor must be float [N, C, H, W] in [0, 1] at the model's size; files and
   * bytes are decoded, converted to the model's channel count and resized to its input size. An
   * image of several frames is refused (an error naming it) unless `o.frames` is "all".
   */
  async score(images: ImageInput | readonly ImageInput[] | Tensor, o: FrameOptions = {}): Promise<Detection[]> {
    if (typeof images === "string" || images instanceof Uint8Array) return this.score([images], o);
    if (!Array.isArray(images)) return this.#records(this.#det.scoreBatch(images as Tensor));
    const out: Detection[] = [];
    const list = images as readonly ImageInput[];
    const [h, w] = this.#det.info.preprocessing.imageSize;
    const per = this.#bytesPerImage();
    for (let at = 0; at < list.length; at += BATCH) {
      const part = list.slice(at, at + BATCH);
      const decoded: Uint8Array[][] = [];
      for (const [k, img] of part.entries()) decoded.push(await this.#decodeOne(img, at + k, o));
      const frames = decoded.flat();
      // Frames are scored BATCH at a time too, so a part of animations stays bounded.
      const scored: Detection[] = [];
      for (let f = 0; f < frames.length; f += BATCH) {
        const chunk = frames.slice(f, f + BATCH);
        const bytes = new Uint8Array(chunk.length * per);
        chunk.forEach((p, i) => bytes.set(p, i * per));
        scored.push(...this.#records(tidy(() => this.#det.scoreBatch(imagesToTensor(bytes, chunk.length, h, w, this.#det.info.preprocessing.channels)))));
      }
      let f = 0;
      for (const d of decoded) {
        const mine = scored.slice(f, f + d.length);
        f += d.length;
        const worst = worstFrame(mine);
        const r = mine[worst.index] as Detection;
        out.push(d.length > 1 ? { ...r, flagged: worst.flagged, frames: d.length, frame: worst.index } : r);
      }
    }
    return out;
  }

  /** Decodes images into one uint8 NHWC buffer at the model's size and channel count (multi-frame images are refused). */
  async decode(images: readonly ImageInput[], firstIndex = 0): Promise<Uint8Array> {
    const per = this.#bytesPerImage();
    const out = new Uint8Array(images.length * per);
    for (const [k, img] of images.entries()) out.set((await this.#decodeOne(img, firstIndex + k, {}))[0] as Uint8Array, k * per);
    return out;
  }

  /**
   * Decodes each image on its own: one unreadable or undecodable image is its own error (with the
   * path or index in the message) and the others are still decoded. An image that had to be
   * resized or converted to the model's channels says so in `converted`.
   */
  async decodeEach(images: readonly ImageInput[], firstIndex = 0, o: FrameOptions = {}): Promise<DecodeOutcome[]> {
    const out: DecodeOutcome[] = [];
    for (const [k, img] of images.entries()) out.push(await decodeReporting((onConversion) => this.#decodeOne(img, firstIndex + k, { ...o, onConversion })));
    return out;
  }

  #bytesPerImage(): number {
    const [height, width] = this.#det.info.preprocessing.imageSize;
    return height * width * (this.#det.info.preprocessing.channels === 1 ? 1 : 3);
  }

  async #decodeOne(img: ImageInput, index: number, o: FrameOptions & { onConversion?: (c: ImageConversion) => void }): Promise<Uint8Array[]> {
    const [height, width] = this.#det.info.preprocessing.imageSize;
    const channels = this.#det.info.preprocessing.channels === 1 ? 1 : 3;
    const name = typeof img === "string" ? img : `images[${index}]`;
    const data = typeof img === "string" ? await readImageFile(img) : img;
    return (await decodeImageFrames(data, name, { size: { height, width }, channels, ...o })).map((f) => f.pixels);
  }

  #records(r: BatchScores): Detection[] {
    return detectionsOf(r, this.#det.info.classNames, this.#det.threshold);
  }

  dispose(): void {
    this.#det.dispose();
  }
}

/** Per-input records from a batch's scores (one place builds them: the library and `scan`). */
export function detectionsOf(r: BatchScores, classNames: readonly string[], threshold: number): Detection[] {
  return Array.from(r.pred, (p, i) => ({
    pred: p,
    predClass: classNames[p] ?? String(p),
    expertConfidence: r.expertConfidence[i] as number,
    auxiliaryConfidence: r.auxiliaryConfidence[i] as number,
    score: r.score[i] as number,
    threshold,
    flagged: r.flagged[i] === 1,
  }));
}

/** decodeOutcome, with the image's conversion to the model's input (if any) recorded as `converted`. */
export async function decodeReporting(decode: (onConversion: (c: ImageConversion) => void) => Promise<Uint8Array[]>): Promise<DecodeOutcome> {
  let converted: ImageConversion | undefined;
  const d = await decodeOutcome(() => decode((c) => (converted = c)));
  return d.ok && converted ? { ...d, converted } : d;
}

/** Runs one image's decoding and turns its frames or its error into a DecodeOutcome (shared with scan's baseline path). */
export async function decodeOutcome(decode: () => Promise<Uint8Array[]>): Promise<DecodeOutcome> {
  try {
    const frames = await decode();
    if (frames.length === 1) return { ok: true, pixels: frames[0] as Uint8Array, frames: 1 };
    const per = (frames[0] as Uint8Array).length;
    const pixels = new Uint8Array(per * frames.length);
    frames.forEach((f, i) => pixels.set(f, i * per));
    return { ok: true, pixels, frames: frames.length };
  } catch (e) {
    const reason = e instanceof ImageDecodeError ? e.reason : e instanceof ImageFileError ? e.reason : undefined;
    return { ok: false, code: errorCode(e), ...(reason !== undefined ? { reason } : {}), message: e instanceof Error ? e.message : String(e) };
  }
}
