// `badexpert serve`: the detector as an HTTP service (src/serve). SIGTERM/SIGINT drain it (requests
// in flight are answered, the audit log flushed; a second signal ends the grace period at once);
// SIGHUP reloads the bundle.
import type { Command, OptionSpec } from "../command.js";
import { UsageError } from "../command.js";
import { choice, int, num, numWithDefault, requireStr, str } from "../args.js";
import { checkDevice } from "../../engine/index.js";
import { createServer } from "../../serve/index.js";
import {
  DEFAULT_OPTIONS,
  ENGINE_CHOICES,
  MAX_AUDIT_KEEP,
  MIN_AUDIT_BYTES,
  hostProblem,
  poolLimits,
  poolProblem,
  type ServeOptions,
} from "../../serve/options.js";
import { PUBLIC_KEY_FILE, VERIFY_KEY_ENV } from "../../defense/signature.js";
import { SALIENCY_METHODS } from "../../forensics/saliency.js";
import { readRegularTextFile } from "../../util/read-regular-file.js";
import { FRAME_POLICIES } from "../../data/image-decode.js";

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const LIMITS = poolLimits();
/** After a second signal, the time the forced shutdown gets before the process exits regardless. */
const FORCED_EXIT_MS = 5000;

/** An integer option in min..max whose default is the service's (DEFAULT_OPTIONS). */
function intOption(description: string, serviceDefault: number, min: number, max: number): OptionSpec {
  return { type: "string", description, default: String(serviceDefault), value: { kind: "int", min, max } };
}

async function readToken(path: string): Promise<string> {
  let text: string;
  try {
    // A token is one word: 4 KiB is room to spare, and a FIFO or a device is refused before reading.
    text = await readRegularTextFile(path, { maxBytes: 4096, what: "token file" });
  } catch (e) {
    throw new UsageError(`--token-file ${(e as Error).message}`);
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token))
    throw new UsageError(`--token-file ${path}: the token must be one word of at least 16 characters`);
  return token;
}

export const serve: Command = {
  name: "serve",
  summary:
    "serve a detector bundle over HTTP (/v1/detect, /v1/predict, /metrics) and the Open Inference Protocol (/v2, gRPC)",
  details: [
    "Scores run in worker threads behind a dynamic batcher; the HTTP thread never runs a forward pass.",
    "An input that cannot be scored (queue full, timeout, worker failure) is refused with 503/504, never reported clean.",
    "Signals: SIGTERM/SIGINT drain: the listening socket closes, /readyz answers 503, every request already received is",
    "answered (each with `connection: close`), scoring requests arriving on open connections get 503 shutting_down; then",
    "exit 0. After --drain-timeout seconds whatever is left is answered 503 (never clean) and the process exits 1; a",
    "second SIGTERM/SIGINT does that at once. SIGHUP reloads the bundle without dropping requests (a reload that would",
    "change the kind of detector, BaDExpert <-> baseline, is refused and the running one keeps serving).",
    `Scoring threads are bounded by this machine's ${LIMITS.cores} cores: --workers 1..${LIMITS.maxWorkers} (2 x cores), --threads`,
    `1..${LIMITS.maxThreadsPerWorker} (4 x cores), and --workers x --threads at most ${LIMITS.maxTotalThreads}: a forward pass is CPU-bound, so more`,
    "threads only queue for the cores, and each worker holds its own copy of the three models.",
    "The audit log is rotated by size (--audit-max-bytes, --audit-keep): LOG -> LOG.1 -> ..., flushed first, the oldest deleted.",
    "",
    "Images: PNG, JPEG, WebP, GIF, TIFF, PPM/PGM; anything else is 415, broken bytes 400 with what is wrong. Pixels are",
    "limited from the headers, before decoding: per image (--max-pixels), per request (--max-request-pixels, 413) and",
    "being decoded at once across requests (--max-inflight-pixels: others wait, 503 at the --timeout-ms deadline).",
    "Multi-frame images (animated GIF/WebP/PNG, multi-page TIFF) are refused with 415 unless --frames all, which",
    "scores every frame (each one input) and flags the image when any frame is flagged.",
    "",
    "",
    "Baseline bundles (`badexpert defend --detector strip|frequency|...`) are served too, on libtorch only: records carry",
    "the baseline's score and threshold, `detector` names it, expertConfidence/auxiliaryConfidence are null, and the",
    "dashboard's overlays (B's saliency) are off. Stochastic baselines (STRIP, SentiNet) seed each input from its pixels,",
    "so an image gets the same score alone or in any batch.",
    "",
    "",
    "A request: curl -s --data-binary @badnet.png -H 'content-type: image/png' http://127.0.0.1:8080/v1/detect",
    "",
    "Open Inference Protocol (KServe v2, as Triton, KServe and MLServer speak it): /v2/health/live, /v2/health/ready,",
    "/v2, /v2/models/NAME[/versions/1][/ready|/infer] over HTTP (JSON or the binary tensor extension) and, with",
    "--grpc-port, GRPCInferenceService over gRPC. Models: NAME (--model-name, the detector: score, threshold, flagged,",
    "pred, class, error) and NAME-filtered (the firewall: pred, class, refused, error; a flagged or unscorable input is",
    'refused in its row, never answered). Input "image": UINT8 [-1,H,W,C], FP32 [-1,C,H,W] in [0,1], or BYTES images.',
    "",
    "Dashboard: open http://HOST:PORT/ (with --token-file: /#token=TOKEN) for the flagged rate, flagged inputs per",
    "class and the latest flagged inputs with B's saliency overlays, made by one extra worker thread off the",
    "scoring path (a full queue drops overlays, never requests).",
  ].join("\n"),
  examples: [
    "badexpert serve --bundle out/demo/detector --port 8080",
    "badexpert serve --bundle out/demo/detector --on-flag annotate --audit-log audit.jsonl --alert-rate 0.2",
    "badexpert serve --bundle runs/fmnist-blend-strip --engine libtorch   # a baseline detector bundle (defend --detector strip)",
  ],
  options: {
    bundle: {
      type: "string",
      short: "b",
      description: "detector bundle directory (from `badexpert defend`, or `defend --detector NAME` for a baseline)",
    },
    host: {
      type: "string",
      description: "address to listen on: an IP address (0.0.0.0 or :: for all interfaces) or a host name",
      default: DEFAULT_OPTIONS.host,
    },
    port: {
      type: "string",
      short: "p",
      description: "TCP port (0: any free port)",
      default: String(DEFAULT_OPTIONS.port),
      value: { kind: "int", min: 0, max: 65535 },
    },
    workers: intOption(
      `scoring worker threads, each holding the models once: 1..2 x cores (${LIMITS.maxWorkers} here)`,
      DEFAULT_OPTIONS.workers,
      1,
      LIMITS.maxWorkers,
    ),
    threads: {
      type: "string",
      description: `libtorch (or onnxruntime) threads per worker: 1..4 x cores (${LIMITS.maxThreadsPerWorker} here), workers x threads at most that too (default: cores / workers, at least 1)`,
      value: { kind: "int", min: 1, max: LIMITS.maxThreadsPerWorker },
    },
    engine: {
      type: "string",
      description:
        "auto (onnxruntime when installed and the detector exports, else libtorch; baselines: libtorch), onnxruntime (BaDExpert exported to ONNX in each worker; needs onnxruntime-node) or libtorch",
      default: DEFAULT_OPTIONS.engine,
      value: { kind: "choice", values: [...ENGINE_CHOICES] },
    },
    "max-batch": intOption("largest batch per forward pass (1: no dynamic batching)", DEFAULT_OPTIONS.maxBatch, 1, 1e9),
    "max-wait-ms": intOption("how long a partial batch waits for more inputs", DEFAULT_OPTIONS.maxWaitMs, 0, 1e9),
    "max-queue": intOption(
      "queued inputs beyond which requests get 503 + Retry-After",
      DEFAULT_OPTIONS.maxQueue,
      1,
      1e9,
    ),
    "timeout-ms": intOption("per-request scoring deadline (then 504)", DEFAULT_OPTIONS.timeoutMs, 1, 1e9),
    "max-body-bytes": intOption("largest request body", DEFAULT_OPTIONS.maxBodyBytes, 1, 1e9),
    "max-pixels": intOption(
      "largest image (width x height; with --frames all, of all its frames), checked before decoding",
      DEFAULT_OPTIONS.maxPixels,
      1,
      1e9,
    ),
    "max-request-pixels": intOption(
      "most pixels the images of one request may declare together (413 beyond), checked before decoding",
      DEFAULT_OPTIONS.maxRequestPixels,
      1,
      1e12,
    ),
    "max-inflight-pixels": intOption(
      "most pixels being decoded at once across all requests (at least --max-pixels; others wait, 503 at the deadline)",
      DEFAULT_OPTIONS.maxInflightPixels,
      1,
      1e12,
    ),
    frames: {
      type: "string",
      description:
        "multi-frame images (animated GIF/WebP/PNG, multi-page TIFF): refuse (415) or all (score every frame, flag when any is flagged)",
      default: DEFAULT_OPTIONS.frames,
      value: { kind: "choice", values: [...FRAME_POLICIES] },
    },
    "max-images-per-request": intOption("most images in one request", DEFAULT_OPTIONS.maxImagesPerRequest, 1, 1e9),
    "on-flag": {
      type: "string",
      description: "what /v1/predict does with a flagged input: reject (422) or annotate",
      default: DEFAULT_OPTIONS.onFlag,
    },
    "audit-log": { type: "string", description: "append one JSON line per flagged input to this file" },
    "audit-images": { type: "string", description: "also save each flagged input's image in this directory" },
    "audit-max-bytes": intOption(
      "rotate the audit log before it passes this size: LOG -> LOG.1 -> ... -> LOG.<audit-keep>, the oldest deleted",
      DEFAULT_OPTIONS.auditMaxBytes,
      MIN_AUDIT_BYTES,
      2 ** 50,
    ),
    "audit-keep": intOption(
      "rotated audit files kept besides the current one",
      DEFAULT_OPTIONS.auditKeep,
      1,
      MAX_AUDIT_KEEP,
    ),
    "drain-timeout": intOption(
      "grace period of a shutdown, seconds: requests still unanswered after it get 503 and the process exits 1",
      DEFAULT_OPTIONS.drainTimeoutMs / 1000,
      0,
      86_400,
    ),
    "alert-rate": {
      type: "string",
      description: "log a warning when the flagged share over the window exceeds this (0-1)",
      value: { kind: "float", min: 0, max: 1, exclusiveMin: true },
    },
    "alert-window": intOption(
      "sliding window of the flagged-rate metrics and alert, seconds",
      DEFAULT_OPTIONS.windowSeconds,
      1,
      1e9,
    ),
    "token-file": {
      type: "string",
      description:
        "require 'Authorization: Bearer <token>' with the token in this file (HTTP, and gRPC's authorization metadata)",
    },
    "grpc-port": {
      type: "string",
      description:
        "also serve the Open Inference Protocol over gRPC (GRPCInferenceService) on this port of --host (0: any free port); off when not given",
      value: { kind: "int", min: 0, max: 65535 },
    },
    "model-name": {
      type: "string",
      description:
        "the detector's model name in the Open Inference Protocol (/v2, gRPC); the filtered model is NAME-filtered",
      default: DEFAULT_OPTIONS.modelName,
    },
    "verify-key": {
      type: "string",
      description: `Ed25519 public key the bundle's signature must verify against (default: $${VERIFY_KEY_ENV}, then ~/.config/badexpert/${PUBLIC_KEY_FILE} if present)`,
    },
    "require-signature": {
      type: "boolean",
      description:
        "refuse a bundle that is not signed, or whose signature cannot be verified for want of a key (also on SIGHUP reloads)",
    },
    "flagged-keep": intOption(
      "recent flagged inputs kept with saliency overlays for the dashboard at / and GET /v1/flagged (0: off)",
      DEFAULT_OPTIONS.flaggedKeep,
      0,
      10_000,
    ),
    "explain-method": {
      type: "string",
      description: `saliency method of the dashboard's overlays: ${SALIENCY_METHODS.join(", ")}`,
      default: DEFAULT_OPTIONS.explainMethod,
      value: { kind: "choice", values: SALIENCY_METHODS },
    },
    "log-level": {
      type: "string",
      description: `JSON log level: ${LOG_LEVELS.join(", ")}`,
      default: DEFAULT_OPTIONS.logLevel,
    },
    device: { type: "string", description: "cpu (the detector scores on the CPU; see --help text)", default: "cpu" },
  },
  async run(v) {
    const bundle = requireStr(v, "bundle", "a directory written by `badexpert defend`");
    const device = checkDevice(str(v, "device") ?? "cpu");
    if (device !== "cpu")
      throw new UsageError(
        `--device ${device}: the service scores on the CPU only (BadExpertDetector.scoreBatch normalises inputs on the CPU)`,
      );
    const host = str(v, "host") ?? DEFAULT_OPTIONS.host;
    const hostWrong = hostProblem(host);
    if (hostWrong !== null) throw new UsageError(`--host: ${hostWrong}`);
    const workers = int(v, "workers", serve.options) ?? DEFAULT_OPTIONS.workers;
    const threads = int(v, "threads", serve.options) ?? Math.max(1, Math.floor(LIMITS.cores / workers));
    const poolWrong = poolProblem(workers, threads, { workers: "--workers", threads: "--threads" }, LIMITS);
    if (poolWrong !== null) throw new UsageError(poolWrong);
    const verifyKey = str(v, "verify-key");
    const tokenFile = str(v, "token-file");
    const auditImages = str(v, "audit-images");
    const auditLog = str(v, "audit-log");
    if (auditImages && !auditLog)
      throw new UsageError("--audit-images needs --audit-log (the log lines name the saved files)");
    for (const name of ["audit-max-bytes", "audit-keep"]) {
      if (!auditLog && str(v, name) !== undefined && v[name] !== serve.options[name]?.default)
        throw new UsageError(`--${name} needs --audit-log (it rotates that file)`);
    }
    const o: Partial<ServeOptions> = {
      host,
      port: int(v, "port", serve.options) ?? DEFAULT_OPTIONS.port,
      workers,
      threadsPerWorker: threads,
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
      auditMaxBytes: numWithDefault(v, "audit-max-bytes", serve.options),
      auditKeep: numWithDefault(v, "audit-keep", serve.options),
      drainTimeoutMs: numWithDefault(v, "drain-timeout", serve.options) * 1000,
      alertRate: num(v, "alert-rate", serve.options) ?? null,
      windowSeconds: int(v, "alert-window", serve.options) ?? DEFAULT_OPTIONS.windowSeconds,
      token: tokenFile ? await readToken(tokenFile) : null,
      grpcPort: int(v, "grpc-port", serve.options) ?? null,
      modelName: str(v, "model-name") ?? DEFAULT_OPTIONS.modelName,
      logLevel: choice(v, "log-level", LOG_LEVELS) ?? DEFAULT_OPTIONS.logLevel,
      // Each worker hands it to loadBundle, so reloads are verified too.
      bundleLoad: {
        ...(verifyKey ? { verifyKey } : {}),
        ...(v["require-signature"] === true ? { requireSignature: true } : {}),
      },
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
    // The service log has them too (event "bundle_trust"); stderr is where a person starting it looks.
    for (const w of server.info.trust.warnings) console.error(`badexpert serve: warning: ${w}`);
    // A failed listen has already stopped the workers, the feed and the audit log: the error
    // (naming host, port and reason) ends the process with exit 1.
    const url = await server.listen();
    server.app.log.info(
      {
        event: "listening",
        url,
        bundle,
        workers: o.workers,
        threadsPerWorker: o.threadsPerWorker,
        engine: server.engine,
        drainTimeoutMs: o.drainTimeoutMs,
      },
      `listening on ${url}`,
    );
    const s = server;
    const code = await new Promise<number>((resolve) => {
      let signals = 0;
      const stop = (signal: string): void => {
        signals++;
        if (signals === 1) {
          s.app.log.info(
            { event: "signal", signal },
            `${signal}: draining (grace period ${o.drainTimeoutMs} ms; a second signal ends it at once)`,
          );
          s.close().then(
            () => resolve(s.shutdown?.drained === true ? 0 : 1),
            (e: unknown) => {
              s.app.log.error({ err: (e as Error).message }, "shutdown failed");
              resolve(1);
            },
          );
          return;
        }
        s.app.log.warn(
          { event: "signal", signal },
          `${signal} again: ending the drain now (what is left is answered 503)`,
        );
        void s.close({ drainTimeoutMs: 0 });
        // Should a worker not stop (a native call that does not return), exit regardless.
        setTimeout(() => process.exit(1), FORCED_EXIT_MS).unref();
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
      process.on("SIGHUP", () => {
        s.app.log.info({ event: "signal", signal: "SIGHUP" }, "SIGHUP: reloading the bundle");
        // A failed reload is logged by the server and leaves the running detector serving.
        s.reload().catch(() => undefined);
      });
    });
    return code;
  },
};
