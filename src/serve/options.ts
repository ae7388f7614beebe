// The service's settings, their defaults and their validation. The CLI (`badexpert serve`) and
// the library (`createServer`) both end here, so a bad value gets the same message from either.
import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { DEFAULT_SALIENCY_METHOD, SALIENCY_METHODS, type SaliencyMethod } from "../forensics/saliency.js";
import type { BundleLoad } from "../workers/source.js";
import { ENGINE_CHOICES, type EngineChoice } from "../workers/engine-choice.js";
import { FRAME_POLICIES, type FramePolicy } from "../data/image-decode.js";
import { BadExpertError } from "../util/errors.js";

export { ENGINE_CHOICES, type EngineChoice };

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
  /**
   * Size at which the audit log is rotated (auditLog -> auditLog.1 -> ... -> auditLog.<auditKeep>,
   * the oldest deleted): no file grows past it, unless one line alone is larger.
   */
  auditMaxBytes: number;
  /** Rotated audit files kept besides the current one. */
  auditKeep: number;
  /** Directory where flagged images are saved (named by request id and index); null: not saved. */
  auditImages: string | null;
  /** Flagged share over the sliding window above which a warning is logged; null: no alert. */
  alertRate: number | null;
  /** Length of the sliding window for the flagged rate, in seconds. */
  windowSeconds: number;
  /** Fewest inputs in the window before the alert can fire (a rate over 3 inputs is noise). */
  alertMinInputs: number;
  /**
   * Port of the Open Inference Protocol's gRPC service (GRPCInferenceService), on `host`; 0 picks
   * a free port; null: no gRPC service.
   */
  grpcPort: number | null;
  /** The detector's model name in the Open Inference Protocol (/v2 and gRPC); the filtered model is "<modelName>-filtered". */
  modelName: string;
  /** Bearer token every /v1 and /metrics request must carry; null: no authentication. */
  token: string | null;
  /** pino log level of the structured JSON logs; "silent" turns them off. */
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** Where the JSON log lines go (one write per line); absent: standard output. */
  logStream?: { write(line: string): void };
  /**
   * Options for loading the bundle in each worker, at start-up and on SIGHUP reloads (BundleLoad
   * in source.ts): `verifyKey` (a path to an Ed25519 public key; default BADEXPERT_VERIFY_KEY,
   * then ~/.config/badexpert/badexpert-signing.pub) refuses a bundle not signed by its private
   * key; `requireSignature` refuses one that is unsigned or cannot be verified for want of a key.
   */
  bundleLoad: BundleLoad;
  /**
   * Grace period of a shutdown (close(), SIGTERM): requests in flight and queued are answered for
   * this long; what is left after it is answered 503 (never "clean") and the server stops.
   */
  drainTimeoutMs: number;
  /** Recent flagged inputs kept with their saliency overlays for the dashboard (GET /, /v1/flagged); 0 turns it off. */
  flaggedKeep: number;
  /** Saliency method of the overlays (see src/forensics/saliency.ts). */
  explainMethod: SaliencyMethod;
  /** Flagged inputs waiting for the explain worker beyond which new ones get no overlay (counted as dropped). */
  explainQueue: number;
}

/** Smallest audit file size: a few lines (a line is about 300 bytes). */
export const MIN_AUDIT_BYTES = 1024;
export const MAX_AUDIT_KEEP = 1000;

export const DEFAULT_OPTIONS: ServeOptions = {
  host: "127.0.0.1",
  port: 8080,
  // One single-threaded worker per core: measured on 2 cores (docs/performance.md, "Service"),
  // parallelism across batches beat OpenMP teams inside one worker by 2-3x at concurrency 64,
  // because a team's barriers stall whenever one of its threads is descheduled.
  workers: availableParallelism(),
  threadsPerWorker: 1,
  // onnxruntime scores faster than libtorch on CPUs (docs/performance.md, "Scoring engines"), and
  // the service with it ("Service").
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
  auditMaxBytes: 100 * 1024 * 1024,
  auditKeep: 5,
  alertRate: null,
  windowSeconds: 60,
  alertMinInputs: 20,
  grpcPort: null,
  modelName: "badexpert",
  token: null,
  logLevel: "info",
  bundleLoad: {},
  drainTimeoutMs: 30_000,
  flaggedKeep: 32,
  explainMethod: DEFAULT_SALIENCY_METHOD,
  explainQueue: 16,
};

/**
 * How many scoring threads this machine takes. Threads per worker: 1..4 × cores, the bound of
 * BADEXPERT_THREADS (more libtorch threads than that only slow it down). Workers: 1..2 × cores. A
 * forward pass is CPU-bound, so workers beyond the cores only queue for them; up to two per core
 * lets one worker's message handling and batch copying overlap another's forward pass. Past that
 * each worker only adds a full copy of the three models and its engine's arenas (1,000 workers
 * took more than 5 GB in 18 s). All workers' threads together: at most 4 × cores, as one worker's.
 */
export interface PoolLimits {
  cores: number;
  maxWorkers: number;
  maxThreadsPerWorker: number;
  maxTotalThreads: number;
}

export function poolLimits(cores = availableParallelism()): PoolLimits {
  return { cores, maxWorkers: 2 * cores, maxThreadsPerWorker: 4 * cores, maxTotalThreads: 4 * cores };
}

/** Why workers × threadsPerWorker is too many threads for this machine, or null; the option names are the caller's. */
export function poolProblem(
  workers: number,
  threads: number,
  names: { workers: string; threads: string },
  l: PoolLimits = poolLimits(),
): string | null {
  if (!Number.isInteger(workers) || workers < 1 || workers > l.maxWorkers)
    return `${names.workers} must be an integer in 1..${l.maxWorkers} (2 × ${l.cores} cores), got ${workers}`;
  if (!Number.isInteger(threads) || threads < 1 || threads > l.maxThreadsPerWorker)
    return `${names.threads} must be an integer in 1..${l.maxThreadsPerWorker} (4 × ${l.cores} cores), got ${threads}`;
  if (workers * threads > l.maxTotalThreads) {
    return `${names.workers} × ${names.threads} must be at most ${l.maxTotalThreads} threads (4 × ${l.cores} cores), got ${workers} × ${threads} = ${workers * threads}`;
  }
  return null;
}

/** A model name of the Open Inference Protocol: it appears in URLs, so letters, digits, '.', '_' and '-' only. */
export const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const HOST_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * Why `host` cannot be an address to listen on, or null: an IPv4 or IPv6 address, or a DNS host
 * name (labels of letters, digits and inner hyphens). A name whose last label is a number is
 * read as an IPv4 address (as URLs do), so "0.0.0.0.0" or "127.1" are refused here, not
 * sent to the resolver.
 */
export function hostProblem(host: string): string | null {
  if (isIP(host) !== 0) return null;
  const what = `expected an IP address (127.0.0.1, 0.0.0.0, ::1, ::) or a host name, got ${JSON.stringify(host.slice(0, 300))}`;
  if (host.length === 0 || host.length > 253) return what;
  const labels = host.replace(/\.$/, "").split(".");
  if (!labels.every((l) => HOST_LABEL.test(l))) return what;
  if (/^\d+$/.test(labels[labels.length - 1] as string))
    return `${what}: a name ending in a number must be a whole IPv4 address`;
  return null;
}

function positiveInt(name: string, v: number, min = 1): void {
  if (!Number.isInteger(v) || v < min)
    throw new BadExpertError("E_USAGE", `serve: ${name} must be an integer >= ${min}, got ${v}`);
}

/** Fills defaults and checks every value; throws a RangeError naming the option. */
export function resolveOptions(o: Partial<ServeOptions> = {}): ServeOptions {
  const r: ServeOptions = { ...DEFAULT_OPTIONS, ...o, bundleLoad: { ...o.bundleLoad } };
  positiveInt("port", r.port, 0);
  if (r.port > 65535) throw new BadExpertError("E_USAGE", `serve: port must be at most 65535, got ${r.port}`);
  if (r.grpcPort !== null) {
    positiveInt("grpcPort", r.grpcPort, 0);
    if (r.grpcPort > 65535)
      throw new BadExpertError("E_USAGE", `serve: grpcPort must be at most 65535, got ${r.grpcPort}`);
    if (r.grpcPort !== 0 && r.grpcPort === r.port)
      throw new BadExpertError(
        "E_USAGE",
        `serve: grpcPort must differ from port (both ${r.port}): gRPC has a port of its own`,
      );
  }
  if (typeof r.modelName !== "string" || !MODEL_NAME.test(r.modelName)) {
    throw new BadExpertError(
      "E_USAGE",
      `serve: modelName must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${JSON.stringify(String(r.modelName).slice(0, 100))}`,
    );
  }
  const host = hostProblem(r.host);
  if (host !== null) throw new BadExpertError("E_USAGE", `serve: host: ${host}`);
  const pool = poolProblem(r.workers, r.threadsPerWorker, { workers: "workers", threads: "threadsPerWorker" });
  if (pool !== null) throw new BadExpertError("E_USAGE", `serve: ${pool}`);
  positiveInt("maxBatch", r.maxBatch);
  positiveInt("maxWaitMs", r.maxWaitMs, 0);
  positiveInt("maxQueue", r.maxQueue);
  positiveInt("timeoutMs", r.timeoutMs);
  positiveInt("maxBodyBytes", r.maxBodyBytes);
  positiveInt("maxPixels", r.maxPixels);
  positiveInt("maxRequestPixels", r.maxRequestPixels);
  positiveInt("maxInflightPixels", r.maxInflightPixels);
  if (r.maxPixels > r.maxInflightPixels) {
    throw new BadExpertError(
      "E_USAGE",
      `serve: maxPixels (${r.maxPixels}) must not exceed maxInflightPixels (${r.maxInflightPixels}), or an image within the per-image limit could never be decoded`,
    );
  }
  if (!FRAME_POLICIES.includes(r.frames))
    throw new BadExpertError(
      "E_USAGE",
      `serve: frames must be one of ${FRAME_POLICIES.join(", ")}, got ${JSON.stringify(r.frames)}`,
    );
  positiveInt("maxImagesPerRequest", r.maxImagesPerRequest);
  positiveInt("windowSeconds", r.windowSeconds);
  positiveInt("alertMinInputs", r.alertMinInputs);
  positiveInt("flaggedKeep", r.flaggedKeep, 0);
  positiveInt("explainQueue", r.explainQueue);
  positiveInt("auditMaxBytes", r.auditMaxBytes, MIN_AUDIT_BYTES);
  positiveInt("auditKeep", r.auditKeep);
  if (r.auditKeep > MAX_AUDIT_KEEP)
    throw new BadExpertError("E_USAGE", `serve: auditKeep must be at most ${MAX_AUDIT_KEEP}, got ${r.auditKeep}`);
  positiveInt("drainTimeoutMs", r.drainTimeoutMs, 0);
  // Node's timers hold at most 2^31 - 1 ms (and fire at once beyond it); a day is plenty.
  if (r.drainTimeoutMs > 86_400_000)
    throw new BadExpertError(
      "E_USAGE",
      `serve: drainTimeoutMs must be at most 86400000 (a day), got ${r.drainTimeoutMs}`,
    );
  if (!SALIENCY_METHODS.includes(r.explainMethod))
    throw new BadExpertError(
      "E_USAGE",
      `serve: explainMethod must be one of ${SALIENCY_METHODS.join(", ")}, got ${JSON.stringify(r.explainMethod)}`,
    );
  if (r.maxImagesPerRequest > r.maxQueue) {
    throw new BadExpertError(
      "E_USAGE",
      `serve: maxImagesPerRequest (${r.maxImagesPerRequest}) must not exceed maxQueue (${r.maxQueue}), or such a request could never be queued`,
    );
  }
  if (!ENGINE_CHOICES.includes(r.engine))
    throw new BadExpertError(
      "E_USAGE",
      `serve: engine must be one of ${ENGINE_CHOICES.join(", ")}, got ${JSON.stringify(r.engine)}`,
    );
  if (r.onFlag !== "reject" && r.onFlag !== "annotate")
    throw new BadExpertError(
      "E_USAGE",
      `serve: onFlag must be "reject" or "annotate", got ${JSON.stringify(r.onFlag)}`,
    );
  if (r.alertRate !== null && !(r.alertRate > 0 && r.alertRate <= 1))
    throw new BadExpertError("E_USAGE", `serve: alertRate must be in (0, 1], got ${r.alertRate}`);
  if (r.token !== null && r.token.length < 16)
    throw new BadExpertError(
      "E_USAGE",
      `serve: the bearer token must have at least 16 characters, got ${r.token.length}`,
    );
  return r;
}
