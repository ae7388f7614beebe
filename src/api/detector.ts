// The detector as a library user holds it, whatever its kind (BaDExpert or a baseline): open a
// bundle, score images given as file paths, encoded bytes (PNG, JPEG, WebP, PPM, …), decoded
// pixels or a float tensor, get one plain record per input. The forward passes run on a scoring
// worker thread by default (workers/, the service's own pool), so the caller's event loop stays
// free while thousands of images are scored; { thread: "caller" } runs them on the calling thread
// instead, one batch at a time, yielding to the event loop between batches. Images are decoded
// and scored BATCH at a time: this file holds the one scoring loop that the library, `scan` and
// `explain` share.
import { getNumThreads, tidy, type Tensor } from "../engine/index.js";
import { decodeImageFrames, type FramePolicy, type ImageConversion } from "../data/image-decode.js";
import { ImageDecodeError } from "../data/image-error.js";
import { ImageFileError, readImageFile } from "../data/read-image-file.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { BundleTrust, LoadBundleOptions } from "../defense/bundle.js";
import type { ScoreRule } from "../defense/scores.js";
import type { CalibratedDetector } from "../detectors/calibrated.js";
import { badexpertDetector, checkOpenOptions } from "../detectors/open.js";
import { buildEngine, libtorchEngine, type Batch, type Engine, type Scores } from "../workers/engine.js";
import { startScoringPool, type EngineChoice } from "../workers/engine-choice.js";
import type { WorkerPool } from "../workers/pool.js";
import type { WorkerInit } from "../workers/protocol.js";
import { bundleSource, sourceFromDetector, type BundleLoad, type DetectorSource } from "../workers/source.js";
import type { ServedInfo } from "../workers/served-info.js";
import { BadExpertError, errorCode, type ErrorCode } from "../util/errors.js";

/** One image: a file path, or the encoded bytes of an image file. */
export type ImageInput = string | Uint8Array;

/** An image already decoded at the model's size and channel count (uint8, height × width × channels), e.g. a dataset's. */
export interface DecodedImage {
  pixels: Uint8Array;
  /** How the image is named in outcomes (default "images[i]"). */
  name?: string;
}

/**
 * One image decoded at the model's size (`frames` images one after the other in `pixels`: more
 * than one only with frames "all"; `converted` where it had to be resized or converted to the
 * model's channels), or why it could not be: the error's code (src/util/errors.ts), its reason
 * where it has one (a decoding problem: "corrupt", "multi_frame", ...; a file's errno) and its message.
 */
export type DecodeOutcome =
  { ok: true; pixels: Uint8Array; frames: number; converted?: ImageConversion } | DecodeFailure;

/** Why an input could not be read or decoded. */
export type DecodeFailure = { ok: false; code: ErrorCode; reason?: string; message: string };

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

export interface LoadOptions extends LoadBundleOptions {
  /**
   * Where the forward passes run: "worker" (the default), a scoring worker thread, so the
   * caller's event loop stays free; or "caller", this thread, one batch at a time with a yield to
   * the event loop after each (and the detector's models at hand: `detector`).
   */
  thread?: "worker" | "caller";
  /**
   * What runs them: "libtorch" (the default; every kind), "onnxruntime" (BaDExpert's exported
   * graph; needs onnxruntime-node), or "auto": onnxruntime where it can, else libtorch.
   */
  engine?: EngineChoice;
  /**
   * libtorch (or onnxruntime) threads of the scoring thread. Default: libtorch's count
   * (BADEXPERT_THREADS, or all cores), less one on a worker, so the caller's thread keeps a core.
   */
  threads?: number;
}

export interface Detection {
  /** M's predicted class index and name. */
  pred: number;
  predClass: string;
  /** b and a: B's and M''s confidence in M's prediction (absent for a detector without B and M'). */
  expertConfidence?: number;
  auxiliaryConfidence?: number;
  score: number;
  threshold: number;
  /** True when the input is a suspected backdoor input (score above the threshold, or no valid score). */
  flagged: boolean;
  /** With frames "all", for an image of several frames: how many were scored, and the one this record reports. */
  frames?: number;
  frame?: number;
}

/** One input of scoreEach: its record, or why it could not be read or decoded (never a clean verdict). */
export type Outcome =
  | {
      input: string;
      index: number;
      ok: true;
      detection: Detection;
      /** The decoded pixels (with keepPixels). */
      pixels?: Uint8Array;
      /** Where the image was resized or converted to the model's channels: what it was and what the model read. */
      converted?: ImageConversion;
    }
  | ({ input: string; index: number } & DecodeFailure);

/**
 * Which frame decides an image scored frame by frame: one without a finite score (the detector
 * could not judge it: fail closed), else the highest score. The image is flagged when any frame is.
 */
export function worstFrame(frames: readonly { score: number | null; flagged: boolean }[]): {
  index: number;
  flagged: boolean;
} {
  let index = 0;
  for (const [j, f] of frames.entries()) {
    const best = frames[index] as { score: number | null };
    const bestValid = best.score !== null && Number.isFinite(best.score);
    if (bestValid && (f.score === null || !Number.isFinite(f.score) || f.score > (best.score as number))) index = j;
  }
  return { index, flagged: frames.some((f) => f.flagged) };
}

export interface DetectorSummary {
  /** The detector's kind: "badexpert", or a baseline's name (strip, frequency, ...). */
  detector: string;
  architecture: string;
  classNames: string[];
  imageSize: [number, number];
  channels: number;
  /** BaDExpert's score rule; null for a detector without one. */
  rule: ScoreRule | null;
  threshold: number;
  targetFpr: number;
}

/** Images are decoded and scored in batches of this many, so memory stays bounded by the batch. */
export const BATCH = 256;
/** Longest run of decoding on the caller's thread before the event loop gets a turn. */
const YIELD_AFTER_MS = 4;

/** Where a Detector's batches go: a scoring worker, or an engine on this thread. */
interface Backend {
  info: ServedInfo;
  run(batch: Batch): Promise<Scores>;
  close(): Promise<void>;
  /** The detector itself, when it lives on this thread. */
  local: CalibratedDetector | null;
}

function workerBackend(pool: WorkerPool): Backend {
  return {
    info: pool.info,
    run: (b) => pool.run(b.count, b.pixels),
    close: async () => void (await pool.close()),
    local: null,
  };
}

function callerBackend(engine: Engine, local: CalibratedDetector | null): Backend {
  return {
    info: engine.info,
    run: async (b) => {
      const r = await engine.score(b);
      // One batch, then the event loop: timers and I/O run between forward passes.
      await new Promise<void>((resolve) => setImmediate(resolve));
      return r;
    },
    close: () => engine.dispose(),
    local,
  };
}

function report(o: LoadOptions, trust: BundleTrust): void {
  const warn = o.onWarning ?? ((w: string) => process.emitWarning(w, { code: "BADEXPERT_BUNDLE_TRUST" }));
  for (const w of trust.warnings) warn(w);
}

export class Detector {
  readonly #info: ServedInfo;
  #backend: Backend;
  /** Batches are sent one after another: a worker takes one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #disposed = false;

  private constructor(source: DetectorSource, bundleLoad: BundleLoad, backend: Backend) {
    this.#info = backend.info;
    this.#backend = backend;
    SOURCES.set(this, { source, bundleLoad });
  }

  /**
   * Opens a bundle written by `badexpert defend` (or `defend()`), of any detector kind. A signed
   * bundle is verified whenever a key is known (`verifyKey`, BADEXPERT_VERIFY_KEY, or the default
   * key location); `requireSignature` refuses an unsigned or unverifiable one (and so every
   * baseline bundle: they are never signed). Warnings (unsigned, not verified) go to `onWarning`,
   * or to process.emitWarning (printed on stderr), and stay in `trust`.
   */
  static async load(dir: string, o: LoadOptions = {}): Promise<Detector> {
    const source = await bundleSource(dir);
    const bundleLoad: BundleLoad = {
      ...(o.verifyKey !== undefined ? { verifyKey: o.verifyKey } : {}),
      ...(o.requireSignature !== undefined ? { requireSignature: o.requireSignature } : {}),
      ...(o.env !== undefined ? { env: o.env } : {}),
    };
    // A kind that is never signed is refused here under a key or a required signature, before a thread starts.
    checkOpenOptions(dir, source.detector, bundleLoad);
    const backend = await Detector.#start(source, bundleLoad, o);
    report(o, backend.info.trust);
    return new Detector(source, bundleLoad, backend);
  }

  /**
   * Wraps a BaDExpert detector made in this process; takes ownership (dispose() frees its models).
   * By default its weights are copied to a scoring worker.
   */
  static async fromDetector(
    det: BadExpertDetector,
    o: Pick<LoadOptions, "thread" | "engine" | "threads"> = {},
  ): Promise<Detector> {
    const source = sourceFromDetector(det);
    if (o.thread === "caller" && (o.engine ?? "libtorch") === "libtorch") {
      const local = badexpertDetector(det);
      return new Detector(source, {}, callerBackend(libtorchEngine(local), local));
    }
    // The weights were copied into the source: the thread that scores builds its own models from them.
    try {
      return new Detector(source, {}, await Detector.#start(source, {}, o));
    } finally {
      det.dispose();
    }
  }

  static async #start(
    source: DetectorSource,
    bundleLoad: BundleLoad,
    o: Pick<LoadOptions, "thread" | "engine" | "threads">,
  ): Promise<Backend> {
    const worker = (o.thread ?? "worker") === "worker";
    // A worker leaves the caller's thread a core of its own (measured: bench/event-loop-lag.ts).
    const threads = o.threads ?? (worker ? Math.max(1, getNumThreads() - 1) : getNumThreads());
    const init: Omit<WorkerInit, "engine"> = { source, threads, bundleLoad };
    if (worker) return workerBackend((await startScoringPool(init, 1, o.engine ?? "libtorch")).pool);
    const engine = await buildEngine({ ...init, engine: o.engine === "onnxruntime" ? "onnxruntime" : "libtorch" });
    return callerBackend(engine, engine.detector);
  }

  /** Whether the bundle was signed and verified, and the load's warnings. */
  get trust(): BundleTrust {
    return this.#info.trust;
  }

  /** The detector's kind ("badexpert", "strip", ...). */
  get kind(): string {
    return this.#info.detector;
  }

  get summary(): DetectorSummary {
    const i = this.#info;
    return {
      detector: i.detector,
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
   * The detector itself (its models, calibration and origin), for lower-level use: only when it
   * runs on this thread (thread "caller"); a worker's detector lives on the worker.
   */
  get detector(): CalibratedDetector {
    const local = this.#backend.local;
    if (local === null)
      throw new Error(
        `Detector.detector: this ${this.kind} detector scores on a worker thread; open it with { thread: "caller" } to hold its models on this thread`,
      );
    return local;
  }

  /**
   * Scores images. A tensor must be float [N, C, H, W] in [0, 1] at the model's size; files and
   * bytes are decoded, converted to the model's channel count and resized to its input size. An
   * image that cannot be read or decoded is an error naming it (ImageDecodeError with a `code`
   * for a decoding problem); one of several frames is refused unless `o.frames` is "all".
   */
  async score(
    images: ImageInput | DecodedImage | readonly (ImageInput | DecodedImage)[] | Tensor,
    o: FrameOptions = {},
  ): Promise<Detection[]> {
    if (typeof images === "string" || images instanceof Uint8Array || isDecoded(images)) return this.score([images], o);
    if (!Array.isArray(images)) return this.#scoreTensor(images as Tensor);
    const out: Detection[] = [];
    for await (const part of this.#each(images as readonly (ImageInput | DecodedImage)[], o, true, false)) {
      for (const r of part) if (r.ok) out.push(r.detection);
    }
    return out;
  }

  /**
   * Scores images as they come (an array or any iterable, also async), yielding each batch's
   * outcomes in order: memory stays bounded by the batch, however many inputs there are. An input
   * that cannot be read or decoded is an outcome of its own with the reason, and the others go on.
   * `keepPixels` adds each scored input's decoded pixels (for explaining it afterwards).
   */
  scoreEach(
    inputs: Iterable<ImageInput | DecodedImage> | AsyncIterable<ImageInput | DecodedImage>,
    o: FrameOptions & { keepPixels?: boolean } = {},
  ): AsyncGenerator<Outcome[]> {
    return this.#each(inputs, o, false, o.keepPixels === true);
  }

  async *#each(
    inputs: Iterable<ImageInput | DecodedImage> | AsyncIterable<ImageInput | DecodedImage>,
    o: FrameOptions,
    throwOnError: boolean,
    keepPixels: boolean,
  ): AsyncGenerator<Outcome[]> {
    // With frames "all" an image may add up to maxFrames frames: a batch is closed once BATCH frames
    // or BATCH inputs wait, so memory stays bounded by frames, not files.
    let pending: { input: string; index: number; d: DecodeOutcome }[] = [];
    let frames = 0;
    let index = 0;
    let turn = performance.now();
    for await (const item of inputs) {
      // Decoding a small PNG runs on this thread (pngjs): a batch of them in a row would hold the
      // event loop for a batch's worth, so timers and I/O get a turn every few milliseconds.
      if (performance.now() - turn > YIELD_AFTER_MS) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        turn = performance.now();
      }
      const input =
        typeof item === "string" ? item : isDecoded(item) && item.name !== undefined ? item.name : `images[${index}]`;
      const d = isDecoded(item)
        ? this.#checkDecoded(item, input)
        : throwOnError
          ? await this.#decodeOne(item, input, o).then(joinFrames)
          : await decodeReporting((onConversion) => this.#decodeOne(item, input, { ...o, onConversion }));
      if (!d.ok && throwOnError) throw new BadExpertError(d.code, d.message);
      pending.push({ input, index, d });
      if (d.ok) frames += d.frames;
      index++;
      if (frames >= BATCH || pending.length >= BATCH) {
        yield await this.#flush(pending, frames, keepPixels);
        pending = [];
        frames = 0;
      }
    }
    if (pending.length > 0) yield await this.#flush(pending, frames, keepPixels);
  }

  /** Scores what is pending (frames BATCH at a time) and turns it into outcomes in input order. */
  async #flush(
    pending: readonly { input: string; index: number; d: DecodeOutcome }[],
    frames: number,
    keepPixels: boolean,
  ): Promise<Outcome[]> {
    const per = this.#bytesPerImage();
    const pixels = new Uint8Array(frames * per);
    let k = 0;
    for (const { d } of pending) {
      if (!d.ok) continue;
      pixels.set(d.pixels, k * per);
      k += d.frames;
    }
    const scored: Detection[] = [];
    for (let at = 0; at < frames; at += BATCH) {
      const n = Math.min(BATCH, frames - at);
      // A copy: the worker takes the buffer over (transferred, not copied again).
      scored.push(...this.#records(await this.#run({ count: n, pixels: pixels.slice(at * per, (at + n) * per) })));
    }
    const out: Outcome[] = [];
    k = 0;
    for (const { input, index, d } of pending) {
      if (!d.ok) {
        out.push({ input, index, ...d });
        continue;
      }
      const mine = scored.slice(k, k + d.frames);
      k += d.frames;
      const worst = worstFrame(mine);
      const r = mine[worst.index] as Detection;
      const detection = d.frames > 1 ? { ...r, flagged: worst.flagged, frames: d.frames, frame: worst.index } : r;
      out.push({
        input,
        index,
        ok: true,
        detection,
        ...(keepPixels ? { pixels: d.pixels } : {}),
        ...(d.converted ? { converted: d.converted } : {}),
      });
    }
    return out;
  }

  async #scoreTensor(x: Tensor): Promise<Detection[]> {
    const s = x.shape;
    const [h, w] = this.#info.preprocessing.imageSize;
    const c = this.#info.preprocessing.channels;
    if (s.length !== 4 || s[1] !== c || s[2] !== h || s[3] !== w) {
      throw new RangeError(
        `Detector.score: a tensor must be [N, ${c}, ${h}, ${w}] images in [0, 1], got shape [${s.join(", ")}]`,
      );
    }
    const data = tidy(() => x.to({ dtype: "float32" }).contiguous().data() as Float32Array);
    const per = c * h * w;
    const n = s[0] as number;
    const out: Detection[] = [];
    for (let at = 0; at < n; at += BATCH) {
      const count = Math.min(BATCH, n - at);
      out.push(...this.#records(await this.#run({ count, pixels: data.slice(at * per, (at + count) * per) })));
    }
    return out;
  }

  #run(b: Batch): Promise<Scores> {
    if (this.#disposed) return Promise.reject(new Error("Detector: disposed"));
    const next = this.#queue.then(() => this.#backend.run(b));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #bytesPerImage(): number {
    const [height, width] = this.#info.preprocessing.imageSize;
    return height * width * (this.#info.preprocessing.channels === 1 ? 1 : 3);
  }

  #checkDecoded(img: DecodedImage, input: string): DecodeOutcome {
    const per = this.#bytesPerImage();
    if (img.pixels.length !== per) {
      const [h, w] = this.#info.preprocessing.imageSize;
      return {
        ok: false,
        code: "E_USAGE",
        message: `${input}: ${img.pixels.length} bytes are not one ${h}x${w}x${per / (h * w)} image at the model's size`,
      };
    }
    return { ok: true, pixels: img.pixels, frames: 1 };
  }

  async #decodeOne(
    img: ImageInput,
    name: string,
    o: FrameOptions & { onConversion?: (c: ImageConversion) => void },
  ): Promise<Uint8Array[]> {
    const [height, width] = this.#info.preprocessing.imageSize;
    const channels = this.#info.preprocessing.channels === 1 ? 1 : 3;
    const data = typeof img === "string" ? await readImageFile(img) : img;
    return (await decodeImageFrames(data, name, { size: { height, width }, channels, ...o })).map((f) => f.pixels);
  }

  #records(r: Scores): Detection[] {
    const names = this.#info.classNames;
    const threshold = this.#info.threshold;
    return Array.from(r.pred, (p, i) => ({
      pred: p,
      predClass: names[p] ?? String(p),
      ...(r.expertConfidence && r.auxiliaryConfidence
        ? { expertConfidence: r.expertConfidence[i] as number, auxiliaryConfidence: r.auxiliaryConfidence[i] as number }
        : {}),
      score: r.score[i] as number,
      threshold,
      flagged: r.flagged[i] === 1,
    }));
  }

  /** Frees the detector (the worker's models, or this thread's); waits for a batch in flight. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.#queue;
    await this.#backend.close();
  }
}

/** Where each Detector's models come from (kept out of its public surface). */
const SOURCES = new WeakMap<Detector, { source: DetectorSource; bundleLoad: BundleLoad }>();

/**
 * Where a Detector's models come from, for a service started from it: the bundle it was opened
 * from (with the options it was opened with), or the in-memory weights it was made from.
 */
export function detectorSource(d: Detector): { source: DetectorSource; bundleLoad: BundleLoad } {
  const s = SOURCES.get(d);
  if (!s) throw new TypeError("detectorSource: not a Detector");
  return s;
}

function isDecoded(x: unknown): x is DecodedImage {
  return (
    typeof x === "object" &&
    x !== null &&
    !(x instanceof Uint8Array) &&
    "pixels" in x &&
    (x as { pixels: unknown }).pixels instanceof Uint8Array
  );
}

function joinFrames(frames: Uint8Array[]): DecodeOutcome {
  if (frames.length === 1) return { ok: true, pixels: frames[0] as Uint8Array, frames: 1 };
  const per = (frames[0] as Uint8Array).length;
  const pixels = new Uint8Array(per * frames.length);
  frames.forEach((f, i) => pixels.set(f, i * per));
  return { ok: true, pixels, frames: frames.length };
}

/** decodeOutcome, with the image's conversion to the model's input (if any) recorded as `converted`. */
export async function decodeReporting(
  decode: (onConversion: (c: ImageConversion) => void) => Promise<Uint8Array[]>,
): Promise<DecodeOutcome> {
  let converted: ImageConversion | undefined;
  const d = await decodeOutcome(() => decode((c) => (converted = c)));
  return d.ok && converted ? { ...d, converted } : d;
}

/** Runs one image's decoding and turns its frames or its error into a DecodeOutcome. */
export async function decodeOutcome(decode: () => Promise<Uint8Array[]>): Promise<DecodeOutcome> {
  try {
    return joinFrames(await decode());
  } catch (e) {
    const reason = e instanceof ImageDecodeError ? e.reason : e instanceof ImageFileError ? e.reason : undefined;
    return {
      ok: false,
      code: errorCode(e),
      ...(reason !== undefined ? { reason } : {}),
      message: e instanceof Error ? e.message : String(e),
    };
  }
}
