// `badexpert serve`: the detector as an HTTP service (src/serve). SIGTERM/SIGINT shut it down
// gracefully (requests in flight are answered, the audit log flushed); SIGHUP reloads the bundle.
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, int, num, requireStr, str } from "../args.js";
import { checkDevice } from "../../engine/index.js";
import { createServer } from "../../serve/index.js";
import { DEFAULT_OPTIONS, ENGINE_CHOICES, type ServeOptions } from "../../serve/options.js";
import { SALIENCY_METHODS } from "../../forensics/saliency.js";
import { FRAME_POLICIES } from "../../data/image-decode.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

async function readToken(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new UsageError(`--token-file ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) throw new UsageError(`--token-file ${path}: the token must be one word of at least 16 characters`);
  return token;
}

export const serve: Command = {
  name: "serve",
  summary: "serve a detector bundle over HTTP: /v1/detect, /v1/predict (firewall), /metrics",
  details: [
    "Scores run in worker threads behind a dynamic batcher; the HTTP thread never runs a forward pass.",
    "An input that cannot be scored (queue full, timeout, worker failure) is refused with 503/504, never reported clean.",
    "",
    "Images: PNG, JPEG, WebP, GIF, TIFF, PPM/PGM; anything else is 415, broken bytes 400 with what is wrong. Pixels are",
    "limited from the headers, before decoding: per image (--max-pixels), per request (--max-request-pixels, 413) and",
    "being decoded at once across requests (--max-inflight-pixels: others wait, 503 at the --timeout-ms deadline).",
    "Multi-frame images (animated GIF/WebP/PNG, multi-page TIFF) are refused with 415 unless --frames all, which",
    "scores every frame (each one input) and flags the image when any frame is flagged.",
    "",
    "Signals: SIGTERM/SIGINT finish the requests in flight and exit; SIGHUP reloads the bundle without dropping requests",
    "(a reload that would change the kind of detector, BaDExpert <-> baseline, is refused and the running one keeps serving).",
    "",
    "Baseline bundles (`badexpert defend --detector strip|frequency|...`) are served too, on libtorch only: records carry",
    "the baseline's score and threshold, `detector` names it, expertConfidence/auxiliaryConfidence are null, and the",
    "dashboard's overlays (B's saliency) are off. Stochastic baselines (STRIP, SentiNet) seed each input from its pixels,",
    "so an image gets the same score alone or in any batch.",
    "",
    "Examples:",
    "  badexpert serve --bundle runs/detector --port 8080",
    "  curl -s --data-binary @photo.png -H 'content-type: image/png' http://127.0.0.1:8080/v1/detect",
    "  badexpert serve --bundle runs/detector --on-flag annotate --audit-log audit.jsonl --alert-rate 0.2",
    "  badexpert serve --bundle runs/strip --engine libtorch   # a baseline detector bundle",
    "",
    "Dashboard: open http://HOST:PORT/ (with --token-file: /#token=TOKEN) for the flagged rate, flagged inputs per",
    "class and the latest flagged inputs with B's saliency overlays, made by one extra worker thread off the",
    "scoring path (a full queue drops overlays, never requests).",
  ].join("\n"),
  options: {
    bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`, or `defend --detector NAME` for a baseline)" },
    host: { type: "string", description: "address to listen on", default: DEFAULT_OPTIONS.host },
    port: { type: "string", short: "p", description: "TCP port (0: any free port)", default: String(DEFAULT_OPTIONS.port), value: { kind: "int", min: 0, max: 65535 } },
    workers: { type: "string", description: "scoring worker threads, each holding the models once", default: String(DEFAULT_OPTIONS.workers), value: { kind: "int", min: 1, max: 1e9 } },
    threads: { type: "string", description: "libtorch (or onnxruntime) threads per worker (default: cores / workers, at least 1)", value: { kind: "int", min: 1, max: 1e9 } },
    engine: {
      type: "string",
      description: "auto (onnxruntime when installed and the detector exports, else libtorch; baselines: libtorch), onnxruntime (BaDExpert exported to ONNX in each worker; needs onnxruntime-node) or libtorch",
      default: DEFAULT_OPTIONS.engine,
      value: { kind: "choice", values: [...ENGINE_CHOICES] },
    },
    "max-batch": { type: "string", description: "largest batch per forward pass (1: no dynamic batching)", default: String(DEFAULT_OPTIONS.maxBatch), value: { kind: "int", min: 1, max: 1e9 } },
    "max-wait-ms": { type: "string", description: "how long a partial batch waits for more inputs", default: String(DEFAULT_OPTIONS.maxWaitMs), value: { kind: "int", min: 0, max: 1e9 } },
    "max-queue": { type: "string", description: "queued inputs beyond which requests get 503 + Retry-After", default: String(DEFAULT_OPTIONS.maxQueue), value: { kind: "int", min: 1, max: 1e9 } },
    "timeout-ms": { type: "string", description: "per-request scoring deadline (then 504)", default: String(DEFAULT_OPTIONS.timeoutMs), value: { kind: "int", min: 1, max: 1e9 } },
    "max-body-bytes": { type: "string", description: "largest request body", default: String(DEFAULT_OPTIONS.maxBodyBytes), value: { kind: "int", min: 1, max: 1e9 } },
    "max-pixels": { type: "string", description: "largest image (width x height; with --frames all, of all its frames), checked before decoding", default: String(DEFAULT_OPTIONS.maxPixels), value: { kind: "int", min: 1, max: 1e9 } },
    "max-request-pixels": { type: "string", description: "most pixels the images of one request may declare together (413 beyond), checked before decoding", default: String(DEFAULT_OPTIONS.maxRequestPixels), value: { kind: "int", min: 1, max: 1e12 } },
    "max-inflight-pixels": { type: "string", description: "most pixels being decoded at once across all requests (at least --max-pixels; others wait, 503 at the deadline)", default: String(DEFAULT_OPTIONS.maxInflightPixels), value: { kind: "int", min: 1, max: 1e12 } },
    frames: { type: "string", description: "multi-frame images (animated GIF/WebP/PNG, multi-page TIFF): refuse (415) or all (score every frame, flag when any is flagged)", default: DEFAULT_OPTIONS.frames, value: { kind: "choice", values: [...FRAME_POLICIES] } },
    "max-images-per-request": { type: "string", description: "most images in one request", default: String(DEFAULT_OPTIONS.maxImagesPerRequest), value: { kind: "int", min: 1, max: 1e9 } },
    "on-flag": { type: "string", description: "what /v1/predict does with a flagged input: reject (422) or annotate", default: DEFAULT_OPTIONS.onFlag },
    "audit-log": { type: "string", description: "append one JSON line per flagged input to this file" },
    "audit-images": { type: "string", description: "also save each flagged input's image in this directory" },
    "alert-rate": { type: "string", description: "log a warning when the flagged share over the window exceeds this (0-1)", value: { kind: "float", min: 0, max: 1, exclusiveMin: true } },
    "alert-window": { type: "string", description: "sliding window of the flagged-rate metrics and alert, seconds", default: String(DEFAULT_OPTIONS.windowSeconds), value: { kind: "int", min: 1, max: 1e9 } },
    "token-file": { type: "string", description: "require 'Authorization: Bearer <token>' with the token in this file" },
    "verify-key": { type: "string", description: "Ed25519 public key the bundle's signature must verify against" },
    "flagged-keep": { type: "string", description: "recent flagged inputs kept with saliency overlays for the dashboard at / and GET /v1/flagged (0: off)", default: String(DEFAULT_OPTIONS.flaggedKeep), value: { kind: "int", min: 0, max: 10_000 } },
    "explain-method": { type: "string", description: `saliency method of the dashboard's overlays: ${SALIENCY_METHODS.join(", ")}`, default: DEFAULT_OPTIONS.explainMethod, value: { kind: "choice", values: SALIENCY_METHODS } },
    "log-level": { type: "string", description: `JSON log level: ${LOG_LEVELS.join(", ")}`, default: DEFAULT_OPTIONS.logLevel },
    device: { type: "string", description: "cpu (the detector scores on the CPU; see --help text)", default: "cpu" },
  },
  async run(v) {
    const bundle = requireStr(v, "bundle", "a directory written by `badexpert defend`");
    const device = checkDevice(str(v, "device") ?? "cpu");
    if (device !== "cpu") throw new UsageError(`--device ${device}: the service scores on the CPU only (BadExpertDetector.scoreBatch normalises inputs on the CPU)`);
    const workers = int(v, "workers", serve.options) ?? DEFAULT_OPTIONS.workers;
    const verifyKey = str(v, "verify-key");
    const tokenFile = str(v, "token-file");
    const auditImages = str(v, "audit-images");
    const auditLog = str(v, "audit-log");
    if (auditImages && !auditLog) throw new UsageError("--audit-images needs --audit-log (the log lines name the saved files)");
    const o: Partial<ServeOptions> = {
      host: str(v, "host") ?? DEFAULT_OPTIONS.host,
      port: int(v, "port", serve.options) ?? DEFAULT_OPTIONS.port,
      workers,
      threadsPerWorker: int(v, "threads", serve.options) ?? Math.max(1, Math.floor(availableParallelism() / workers)),
      engine: choice(v, "engine", ENGINE_CHOICES) ?? DEFAULT_OPTIONS.engine,
      maxBatch: int(v, "max-batch", serve.options) ?? DEFAULT_OPTIONS.maxBatch,
      maxWaitMs: int(v, "max-wait-ms", serve.options) ?? DEFAULT_OPTIONS.maxWaitMs,
      maxQueue: int(v, "max-queue", serve.options) ?? DEFAULT_OPTIONS.maxQueue,
      timeoutMs: int(v, "timeout-ms", serve.options) ?? DEFAULT_OPTIONS.timeoutMs,
      maxBodyBytes: int(v, "max-body-bytes", serve.options) ?? DEFAULT_OPTIONS.maxBodyBytes,
      maxPixels: int(v, "max-pixels", serve.options) ?? DEFAULT_OPTIONS.maxPixels,
      maxRequestPixels: int(v, "max-request-pixels", serve.options) ?? DEFAULT_OPTIONS.maxRequestPixels,
      maxInflightPixels: int(v, "max-inflight-pixels", serve.options) ?? DEFAULT_OPTIONS.maxInflightPixels,
      frames: choice(v, "frames", FRAME_POLICIES) ?? DEFAULT_OPTIONS.frames,
      maxImagesPerRequest: int(v, "max-images-per-request", serve.options) ?? DEFAULT_OPTIONS.maxImagesPerRequest,
      onFlag: choice(v, "on-flag", ["reject", "annotate"] as const) ?? DEFAULT_OPTIONS.onFlag,
      auditLog: auditLog ?? null,
      auditImages: auditImages ?? null,
      alertRate: num(v, "alert-rate", serve.options) ?? null,
      windowSeconds: int(v, "alert-window", serve.options) ?? DEFAULT_OPTIONS.windowSeconds,
      token: tokenFile ? await readToken(tokenFile) : null,
      logLevel: choice(v, "log-level", LOG_LEVELS) ?? DEFAULT_OPTIONS.logLevel,
      // Each worker hands it to loadBundle, so reloads are verified too.
      bundleLoad: verifyKey ? { verifyKey } : {},
    };
    // Passed only when given: the server tells an explicit request for the feed (warned about with a
    // baseline bundle, which has no B to explain with) from the default.
    const flaggedKeep = int(v, "flagged-keep", serve.options);
    if (flaggedKeep !== undefined) o.flaggedKeep = flaggedKeep;
    const explainMethod = choice(v, "explain-method", SALIENCY_METHODS);
    if (explainMethod !== undefined) o.explainMethod = explainMethod;
    let server;
    try {
      server = await createServer(bundle, o);
    } catch (e) {
      if (e instanceof RangeError) throw new UsageError(e.message);
      throw e;
    }
    const url = await server.listen();
    server.app.log.info({ event: "listening", url, bundle, workers: o.workers, threadsPerWorker: o.threadsPerWorker, engine: server.engine }, `listening on ${url}`);
    const s = server;
    await new Promise<void>((resolve) => {
      const stop = (signal: string): void => {
        s.app.log.info({ event: "signal", signal }, `${signal}: shutting down gracefully`);
        s.close().then(() => resolve(), (e: unknown) => {
          s.app.log.error({ err: (e as Error).message }, "shutdown failed");
          resolve();
        });
      };
      process.once("SIGTERM", () => stop("SIGTERM"));
      process.once("SIGINT", () => stop("SIGINT"));
      process.on("SIGHUP", () => {
        s.app.log.info({ event: "signal", signal: "SIGHUP" }, "SIGHUP: reloading the bundle");
        // A failed reload is logged by the server and leaves the running detector serving.
        s.reload().catch(() => undefined);
      });
    });
    return 0;
  },
};
