// The service's settings, their defaults and their validation. The CLI (`badexpert serve`) and
// the library (`createServer`) both end here, so a bad value gets the same message from either.
import { availableParallelism } from "node:os";
import type { ScoringEngine } from "./protocol.js";

export type EngineChoice = ScoringEngine | "auto";
export const ENGINE_CHOICES: readonly EngineChoice[] = ["auto", "onnxruntime", "libtorch"];
import { DEFAULT_SALIENCY_METHOD, SALIENCY_METHODS, type SaliencyMethod } from "../forensics/saliency.js";
import { FRAME_POLICIES, type FramePolicy } from "../data/image-decode.js";

export type OnFlag = "reject" | "annotate";

export interface ServeOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Scoring worker threads, each holding the three models once. */
  workers: number;
  /** libtorch threads per worker (OpenMP here: each worker thread gets its own team of this size); onnxruntime's intra-op threads with that engine. */
  threadsPerWorker: number;
  /**
   * What runs the forward passes: libtorch, the detector exported to ONNX on onnxruntime-node (an
   * optional dependency), or "auto": onnxruntime when it is installed and the detector exports,
   * else libtorch (the server's `engine` says which was taken, and why).
   */
  engine: EngineChoice;
  /** Largest batch one forward pass takes; 1 turns dynamic batching off. */
  maxBatch: number;
  /** How long the oldest queued input may wait for companions before a partial batch goes. */
  maxWaitMs: number;
  /** Inputs waiting for a worker beyond which requests get 503 with Retry-After. */
  maxQueue: number;
  /** A request not answered within this time gets 504 (its inputs are never reported clean). */
  timeoutMs: number;
  /** Largest request body (raw image, JSON or multipart). */
  maxBodyBytes: number;
  /** Largest decoded image (width × height; with frames "all", of all its frames), checked from the header before decoding. */
  maxPixels: number;
  /** Most pixels the images of one request may declare together (413 beyond), checked from the headers before any is decoded. */
  maxRequestPixels: number;
  /**
   * Most pixels being decoded at once, across all requests: each image holds its header's pixel
   * count from before it is decoded until it is at the model's size (src/serve/pixel-budget.ts).
   * Must be at least maxPixels, or an image within the per-image limit could never be decoded.
   */
  maxInflightPixels: number;
  /**
   * Images of several frames (animated GIF/WebP/PNG, multi-page TIFF): "refuse" answers 415;
   * "all" scores every frame as one input and flags the image when any frame is flagged.
   */
  frames: FramePolicy;
  /** Most images one request may carry. */
  maxImagesPerRequest: number;
  onFlag: OnFlag;
  /** JSONL file that gets one line per flagged input; null: no audit log. */
  auditLog: string | null;
  /** Directory where flagged images are saved (named by request id and index); null: not saved. */
  auditImages: string | null;
  /** Flagged share over the sliding window above which a warning is logged; null: no alert. */
  alertRate: number | null;
  /** Length of the sliding window for the flagged rate, in seconds. */
  windowSeconds: number;
  /** Fewest inputs in the window before the alert can fire (a rate over 3 inputs is noise). */
  alertMinInputs: number;
  /** Bearer token every /v1 and /metrics request must carry; null: no authentication. */
  token: string | null;
  /** pino log level of the structured JSON logs; "silent" turns them off. */
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Where the JSON log lines go (one write per line); absent: standard output. */
  logStream?: { write(line: string): void };
  /**
   * Options for loading the bundle in each worker: `verifyKey` (a path to an Ed25519 public key)
   * makes every load (start-up and SIGHUP reloads) refuse a bundle not signed by its private key.
   */
  bundleLoad: { verifyKey?: string };
  /** Recent flagged inputs kept with their saliency overlays for the dashboard (GET /, /v1/flagged); 0 turns it off. */
  flaggedKeep: number;
  /** Saliency method of the overlays (see src/forensics/saliency.ts). */
  explainMethod: SaliencyMethod;
  /** Flagged inputs waiting for the explain worker beyond which new ones get no overlay (counted as dropped). */
  explainQueue: number;
}

export const DEFAULT_OPTIONS: ServeOptions = {
  host: "127.0.0.1",
  port: 8080,
  // One single-threaded worker per core: measured on 2 shared cores (BENCHMARKS.md, "Service"),
  // parallelism across batches beat OpenMP teams inside one worker by 2-3x at concurrency 64,
  // because a team's barriers stall whenever one of its threads is descheduled.
  workers: availableParallelism(),
  threadsPerWorker: 1,
  // onnxruntime scored the compact CNN 3-30x faster than libtorch on these CPUs (BENCHMARKS.md,
  // "ONNX export"), and the service with it (BENCHMARKS.md, "Service").
  engine: "auto",
  maxBatch: 64,
  maxWaitMs: 2,
  maxQueue: 1024,
  timeoutMs: 10_000,
  maxBodyBytes: 16 * 1024 * 1024,
  maxPixels: 25_000_000,
  // Decoding runs on libuv's 4 threads; an image costs up to ~11 bytes per declared pixel while it
  // is decoded (a 16-bit RGBA interlaced PNG is decoded whole before its 8-bit copy is made), and
  // ~3 in the common case, so 100 megapixels in flight stays near 1 GB at worst on a machine of a
  // few GB. One request may declare as much: 256 images of 640x480, or four at --max-pixels.
  maxRequestPixels: 100_000_000,
  maxInflightPixels: 100_000_000,
  frames: "refuse",
  maxImagesPerRequest: 256,
  onFlag: "reject",
  auditLog: null,
  auditImages: null,
  alertRate: null,
  windowSeconds: 60,
  alertMinInputs: 20,
  token: null,
  logLevel: "info",
  bundleLoad: {},
  flaggedKeep: 32,
  explainMethod: DEFAULT_SALIENCY_METHOD,
  explainQueue: 16,
};

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`serve: ${name} must be an integer >= ${min}, got ${v}`);
}

/** Fills defaults and checks every value; throws a RangeError naming the option. */
export function resolveOptions(o: Partial<ServeOptions> = {}): ServeOptions {
  const r: ServeOptions = { ...DEFAULT_OPTIONS, ...o, bundleLoad: { ...o.bundleLoad } };
  positiveInt("port", r.port, 0);
  if (r.port > 65535) throw new RangeError(`serve: port must be at most 65535, got ${r.port}`);
  positiveInt("workers", r.workers);
  positiveInt("threadsPerWorker", r.threadsPerWorker);
  positiveInt("maxBatch", r.maxBatch);
  positiveInt("maxWaitMs", r.maxWaitMs, 0);
  positiveInt("maxQueue", r.maxQueue);
  positiveInt("timeoutMs", r.timeoutMs);
  positiveInt("maxBodyBytes", r.maxBodyBytes);
  positiveInt("maxPixels", r.maxPixels);
  positiveInt("maxRequestPixels", r.maxRequestPixels);
  positiveInt("maxInflightPixels", r.maxInflightPixels);
  if (r.maxPixels > r.maxInflightPixels) {
    throw new RangeError(`serve: maxPixels (${r.maxPixels}) must not exceed maxInflightPixels (${r.maxInflightPixels}), or an image within the per-image limit could never be decoded`);
  }
  if (!FRAME_POLICIES.includes(r.frames)) throw new RangeError(`serve: frames must be one of ${FRAME_POLICIES.join(", ")}, got ${JSON.stringify(r.frames)}`);
  positiveInt("maxImagesPerRequest", r.maxImagesPerRequest);
  positiveInt("windowSeconds", r.windowSeconds);
  positiveInt("alertMinInputs", r.alertMinInputs);
  positiveInt("flaggedKeep", r.flaggedKeep, 0);
  positiveInt("explainQueue", r.explainQueue);
  if (!SALIENCY_METHODS.includes(r.explainMethod)) throw new RangeError(`serve: explainMethod must be one of ${SALIENCY_METHODS.join(", ")}, got ${JSON.stringify(r.explainMethod)}`);
  if (r.maxImagesPerRequest > r.maxQueue) {
    throw new RangeError(`serve: maxImagesPerRequest (${r.maxImagesPerRequest}) must not exceed maxQueue (${r.maxQueue}), or such a request could never be queued`);
  }
  if (!ENGINE_CHOICES.includes(r.engine)) throw new RangeError(`serve: engine must be one of ${ENGINE_CHOICES.join(", ")}, got ${JSON.stringify(r.engine)}`);
  if (r.onFlag !== "reject" && r.onFlag !== "annotate") throw new RangeError(`serve: onFlag must be "reject" or "annotate", got ${JSON.stringify(r.onFlag)}`);
  if (r.alertRate !== null && !(r.alertRate > 0 && r.alertRate <= 1)) throw new RangeError(`serve: alertRate must be in (0, 1], got ${r.alertRate}`);
  if (r.token !== null && r.token.length < 16) throw new RangeError(`serve: the bearer token must have at least 16 characters, got ${r.token.length}`);
  return r;
}
