// The scoring service: a fastify app on the HTTP thread, a pool of scoring workers behind a
// dynamic batcher, metrics, the flagged-rate window and alert, and the audit log. The HTTP
// thread parses, decodes and answers; it never runs a forward pass.
import { randomUUID } from "node:crypto";
import { Server as NetServer } from "node:net";
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import multipart from "@fastify/multipart";
import { Detector, detectorSource } from "../api/detector.js";
import { detectorInfo } from "../detectors/registry.js";
import { BadExpertDetector } from "../defense/detector.js";
import { setBlasThreads } from "../engine/index.js";
import { AuditLog } from "./audit.js";
import { RateAlert } from "./alert.js";
import { Batcher, type ScoredInput } from "./batcher.js";
import { decodeForModel, probeUpload, type DecodeLimits, type ModelInput } from "./decode.js";
import { PixelBudget } from "./pixel-budget.js";
import { collectGarbage } from "./collect-garbage.js";
import { drainExpired, errorBody, ServeError, shuttingDown } from "./errors.js";
import { httpStatus } from "../util/errors.js";
import { Connections } from "./connections.js";
import { FlagWindow } from "./flag-window.js";
import { parseJsonBody, requestImages } from "./inputs.js";
import { ServeMetrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { resolveOptions, type ServeOptions } from "./options.js";
import { startScoringPool, type ChosenPool } from "../workers/engine-choice.js";
import type { ScoringEngine } from "../workers/protocol.js";
import type { WorkerPool } from "../workers/pool.js";
import {
  bundleSource,
  checkSourceAgainst,
  sourceFromDetector,
  sourceHashes,
  type DetectorSource,
} from "../workers/source.js";
import { logTrust, type ServedInfo } from "../workers/served-info.js";
import { bearerCheck } from "./auth.js";
import { handleError } from "./error-handler.js";
import { FlaggedFeed } from "./flagged-feed.js";
import { DASHBOARD_HTML } from "./dashboard.js";
import type { InferenceCore, OriginalOf, RequestContext } from "./v2/core.js";
import { contextOf, registerV2Routes } from "./v2/routes.js";
import { V2_INFER_ROUTES, V2_PUBLIC_ROUTES } from "./v2/schemas.js";
import { v2Paths } from "./v2/openapi.js";
import { GrpcInferenceServer, modelLabel } from "./v2/grpc.js";

/** What a route answers for one input: the batcher's result (with the detector's name) and the predicted class's name. */
import type { DetectionRecord } from "./records.js";
export type { DetectionRecord };

type State = "ready" | "draining" | "closed";

/** What a shutdown did: whether everything received was answered in time, and what was not. */
export interface ShutdownReport {
  /** Every request received before the end of the grace period was answered in it. */
  drained: boolean;
  /** Milliseconds from the start of the shutdown to the last connection closed. */
  drainMs: number;
  /** Requests still unanswered at the end of the grace period (answered 503 there, or cut with their connection). */
  refusedAtDeadline: number;
  /** Connections closed at the end of the grace period with a request still arriving or unanswered. */
  connectionsCut: number;
}

/** Routes that score: during a shutdown, a request to them that was not yet received is refused (503), not started. */
const SCORING_ROUTES = new Set(["/v1/detect", "/v1/predict", ...V2_INFER_ROUTES]);
/**
 * During a drain, a keep-alive connection with no request is closed once it has been idle this
 * long with nothing read: a busy client's next request comes sooner (and is answered with
 * `connection: close`), so closing one idle for a second rarely meets a request on the wire.
 */
const DRAIN_IDLE_CLOSE_MS = 1000;
/** After the grace period, the time the 503 answers get to be written before connections are cut. */
const DRAIN_FLUSH_MS = 1000;
const DRAIN_POLL_MS = 25;
/** After the grace period, the time gRPC's UNAVAILABLE answers get to be sent before its calls are cancelled. */
const GRPC_FLUSH_MS = 100;

const REQUEST_ID = /^[\w.-]{1,64}$/;
/** Routes that answer without a token: probes and the API description. */
/** The dashboard page holds no data (it fetches /v1/flagged, which needs the token). */
const PUBLIC_ROUTES = new Set(["/healthz", "/readyz", "/openapi.json", "/", ...V2_PUBLIC_ROUTES]);
/** The Open Inference Protocol's error body. */
const v2Error = (e: { message: string }): Record<string, unknown> => ({ error: e.message });
const isV2 = (url: string): boolean => url === "/v2" || url.startsWith("/v2/");

export class BadExpertServer {
  readonly app: FastifyInstance;
  readonly options: ServeOptions;
  #engine: ScoringEngine;
  /** Why "auto" scores on libtorch; null when it does not fall back. */
  #fallback: string | null;
  readonly metrics: ServeMetrics;
  #source: DetectorSource;
  #pool: WorkerPool;
  #info: ServedInfo;
  #hashes: Record<string, string>;
  #loadedAt = new Date().toISOString();
  readonly #batcher: Batcher;
  readonly #window: FlagWindow;
  readonly #alert: RateAlert | null;
  readonly #audit: AuditLog | null;
  readonly #feed: FlaggedFeed | null;
  readonly #pixels: PixelBudget;
  /** Bytes of full-size decoded pixels handed to JavaScript since the last collection (collect-garbage.ts). */
  #decodedGarbage = 0;
  #state: State = "ready";
  #reloading: Promise<void> | null = null;
  #closing: Promise<number> | null = null;
  readonly #connections: Connections;
  /** Ends the grace period of a running drain now (a second close() with a shorter timeout). */
  #drainDeadline: { at: number; expire: () => void } | null = null;
  #shutdown: ShutdownReport | null = null;
  /** The Open Inference Protocol's gRPC service, once listen() has started it (options.grpcPort). */
  #grpc: GrpcInferenceServer | null = null;

  private constructor(
    o: ServeOptions,
    source: DetectorSource,
    chosen: ChosenPool,
    hashes: Record<string, string>,
    audit: AuditLog | null,
    feed: FlaggedFeed | null,
  ) {
    const pool = chosen.pool;
    this.options = o;
    this.#engine = chosen.engine;
    this.#fallback = chosen.fallback;
    this.#feed = feed;
    this.#source = source;
    this.#pool = pool;
    this.#info = pool.info;
    this.#hashes = hashes;
    this.#audit = audit;
    this.#window = new FlagWindow(o.windowSeconds, pool.info.classNames.length);
    this.#pixels = new PixelBudget(o.maxInflightPixels);
    this.app = Fastify({
      logger: { level: o.logLevel, ...(o.logStream ? { stream: o.logStream } : {}) },
      bodyLimit: o.maxBodyBytes,
      // One debug line per request from our onResponse hook instead of fastify's two info lines.
      logController: new LogController({ disableRequestLogging: true }),
      requestIdHeader: false,
      genReqId: (req) => {
        const h = req.headers["x-request-id"];
        return typeof h === "string" && REQUEST_ID.test(h) ? h : randomUUID();
      },
      return503OnClosing: true,
      // The drain closes connections itself (close() below): fastify's close runs once none is left.
      forceCloseConnections: false,
    });
    this.#connections = new Connections(this.app.server);
    this.#alert =
      o.alertRate === null
        ? null
        : new RateAlert(this.#window, {
            rate: o.alertRate,
            minInputs: o.alertMinInputs,
            classNames: pool.info.classNames,
            log: this.app.log,
          });
    this.metrics = new ServeMetrics(pool.info, {
      engine: () => ({ engine: this.#engine, requested: o.engine, fallback: this.#fallback }),
      queueDepth: () => this.#batcher.queueDepth,
      runningBatches: () => this.#batcher.running,
      workersReady: () => (this.#state === "closed" ? 0 : this.#pool.alive),
      window: () => this.#window.stats(),
      alerting: () => this.#alert?.active ?? false,
    });
    this.#batcher = new Batcher(pool, o, {
      batch: (n) => this.metrics.batchSize.observe(n),
      scored: (_n, ms, live) => {
        this.metrics.forwardSeconds.observe(ms / 1000);
        this.metrics.workerLiveTensors.set(live);
      },
      failed: (n, e) =>
        this.app.log.error(
          { event: "batch_failed", inputs: n, err: e.message },
          "a scoring batch failed; its inputs were answered 503",
        ),
    });
    this.#routes();
  }

  /** Loads the detector into the workers (they must all load it) and builds the app; call listen() next. */
  static async create(
    detector: Detector | BadExpertDetector | string,
    options: Partial<ServeOptions> = {},
  ): Promise<BadExpertServer> {
    // A Detector opened from a bundle: the workers open that bundle, with the options it was opened with.
    const from = detector instanceof Detector ? detectorSource(detector) : null;
    const o = resolveOptions(
      from ? { ...options, bundleLoad: { ...from.bundleLoad, ...options.bundleLoad } } : options,
    );
    // The bundle's kind is decided once here, and again on each reload.
    const source: DetectorSource =
      typeof detector === "string"
        ? await bundleSource(detector)
        : from
          ? from.source
          : sourceFromDetector(detector as BadExpertDetector);
    checkSourceAgainst(source, o.bundleLoad);
    // Each worker's budget is its own libtorch threads; OpenBLAS's pool is shared by the process,
    // so it gets the same budget, or large products would spill onto other workers' cores and out
    // of the explain worker's low priority.
    setBlasThreads(o.threadsPerWorker);
    const hashes = await sourceHashes(source);
    // A rotation that cannot be done is reported in the log; the server exists by then (the audit log opens first).
    let report: (e: Error) => void = () => undefined;
    const audit = o.auditLog
      ? await AuditLog.open(o.auditLog, o.auditImages, { maxBytes: o.auditMaxBytes, keep: o.auditKeep }, (e) =>
          report(e),
        )
      : null;
    let chosen: ChosenPool;
    let feed: FlaggedFeed | null = null;
    // The explain worker always runs libtorch (saliency needs B's gradients); scoring uses o.engine.
    const init = { source, threads: o.threadsPerWorker, engine: "libtorch" as const, bundleLoad: o.bundleLoad };
    try {
      chosen = await startScoringPool(init, o.workers, o.engine);
    } catch (e) {
      await audit?.close();
      throw e;
    }
    // The feed's overlays are B's saliency: a detector without B cannot have it (logged below).
    const feedOff = !chosen.pool.info.explainable && o.flaggedKeep > 0;
    if (o.flaggedKeep > 0 && !feedOff) {
      try {
        feed = await FlaggedFeed.start(init, {
          keep: o.flaggedKeep,
          method: o.explainMethod,
          maxQueue: o.explainQueue,
          width: chosen.pool.info.preprocessing.imageSize[1],
        });
      } catch (e) {
        await chosen.pool.close();
        await audit?.close();
        throw e;
      }
    }
    const s = new BadExpertServer(o, source, chosen, hashes, audit, feed);
    report = (e) => s.app.log.error({ event: "audit_rotation_failed", err: e.message }, e.message);
    logTrust(s.app.log, chosen.pool.info);
    if (chosen.fallback !== null)
      s.app.log.warn(
        { event: "engine_fallback", engine: chosen.engine, reason: chosen.fallback },
        `engine auto: scoring on libtorch (${chosen.fallback})`,
      );
    if (feedOff)
      s.#logFeedOff(
        chosen.pool.info.detector,
        options.flaggedKeep !== undefined || options.explainMethod !== undefined,
      );
    feed?.setErrorHandler((e) =>
      s.app.log.error(
        { event: "explain_failed", err: e.message },
        "the dashboard's explain worker failed (scoring is unaffected)",
      ),
    );
    const feedStats = feed?.stats;
    if (feedStats && !feedStats.background)
      s.app.log.warn(
        { event: "explain_priority", reason: feedStats.backgroundError },
        `the explain worker runs at normal CPU priority (${feedStats.backgroundError ?? ""}): overlays of flagged inputs compete with scoring; --flagged-keep 0 turns them off`,
      );
    s.#watchPool(chosen.pool);
    return s;
  }

  /**
   * Starts listening; resolves with the base URL (the real port when options.port is 0). When the
   * address cannot be taken, stops the workers, the feed and the audit log, and rejects with an
   * error naming host, port and the reason: nothing is left running to keep the process alive.
   */
  async listen(): Promise<string> {
    const { host, port, grpcPort } = this.options;
    let url: string;
    try {
      url = await this.app.listen({ host, port });
    } catch (e) {
      const err = listenError(host, port, e);
      this.app.log.error({ event: "listen_failed", host, port, err: err.message }, err.message);
      await this.close().catch(() => undefined);
      throw err;
    }
    if (grpcPort !== null) {
      try {
        this.#grpc = await GrpcInferenceServer.start(this.#core, host, grpcPort);
        this.app.log.info(
          { event: "grpc_listening", host, port: this.#grpc.port },
          `gRPC (Open Inference Protocol) listening on ${host}:${this.#grpc.port}`,
        );
      } catch (e) {
        this.app.log.error(
          { event: "listen_failed", host, port: grpcPort, err: (e as Error).message },
          (e as Error).message,
        );
        await this.close().catch(() => undefined);
        throw e;
      }
    }
    return url;
  }

  /** The port of the gRPC service (the real one when options.grpcPort is 0); null when there is none. */
  get grpcPort(): number | null {
    return this.#grpc?.port ?? null;
  }

  /** What the last shutdown did (null before close() has finished). */
  get shutdown(): ShutdownReport | null {
    return this.#shutdown;
  }

  /** The engine the scoring workers run: options.engine, with "auto" resolved (it may change on reload). */
  get engine(): ScoringEngine {
    return this.#engine;
  }

  get info(): ServedInfo {
    return this.#info;
  }

  get auditLines(): number {
    return this.#audit?.lines ?? 0;
  }

  /**
   * Loads the bundle again (SIGHUP) into a new set of workers; requests keep being served by the
   * old ones meanwhile, queued inputs move to the new ones once they are ready, and the old
   * workers are retired after their running batches. A bundle that fails to load, or takes
   * inputs of another size, leaves the running detector in place and rejects.
   */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => (this.#reloading = null));
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    const current = this.#source;
    if (current.kind === "weights")
      throw new Error(
        "reload: the server was created from an in-memory detector, not a bundle directory; there is nothing to reload",
      );
    if (this.#state !== "ready") throw new Error(`reload: the server is ${this.#state}`);
    const log = this.app.log;
    try {
      const source = await bundleSource(current.dir);
      // The engine and the dashboard's feed were set up for what the running detector can do.
      if (detectorInfo(source.detector).explains !== detectorInfo(current.detector).explains) {
        throw new Error(
          `reload: ${source.dir} now holds a ${source.detector} detector bundle, the server was started on a ${current.detector} one; restart the server to change the kind of detector`,
        );
      }
      const hashes = await sourceHashes(source);
      const chosen = await startScoringPool(
        { source, threads: this.options.threadsPerWorker, bundleLoad: this.options.bundleLoad },
        this.options.workers,
        this.options.engine,
      );
      const next = chosen.pool;
      const a = this.#info.preprocessing;
      const b = next.info.preprocessing;
      if (
        a.imageSize[0] !== b.imageSize[0] ||
        a.imageSize[1] !== b.imageSize[1] ||
        a.channels !== b.channels ||
        this.#info.classNames.length !== next.info.classNames.length
      ) {
        await next.close();
        throw new Error(
          `the new bundle takes ${b.imageSize.join("x")}x${b.channels} inputs with ${next.info.classNames.length} classes, the running one ${a.imageSize.join("x")}x${a.channels} with ${this.#info.classNames.length}; restart the server to change the model's input`,
        );
      }
      if (this.#state !== "ready") {
        await next.close();
        throw new Error("reload: the server began shutting down");
      }
      const old = this.#pool;
      this.#watchPool(next);
      this.#pool = next;
      this.#source = source;
      this.#engine = chosen.engine;
      this.#fallback = chosen.fallback;
      this.#info = next.info;
      this.#hashes = hashes;
      this.#loadedAt = new Date().toISOString();
      this.#batcher.setExecutor(next);
      this.metrics.reloads.inc({ result: "ok" });
      log.info(
        {
          event: "reloaded",
          detector: next.info.detector,
          threshold: next.info.threshold,
          hashes,
          engine: chosen.engine,
        },
        "bundle reloaded",
      );
      logTrust(log, next.info);
      if (chosen.fallback !== null)
        log.warn(
          { event: "engine_fallback", engine: chosen.engine, reason: chosen.fallback },
          `engine auto: scoring on libtorch (${chosen.fallback})`,
        );
      await old.close();
      await this.#feed?.replace({ source, threads: 1, engine: "libtorch", bundleLoad: this.options.bundleLoad });
    } catch (e) {
      this.metrics.reloads.inc({ result: "failed" });
      log.error(
        { event: "reload_failed", err: (e as Error).message },
        "bundle reload failed; the previous detector keeps serving",
      );
      throw e;
    }
  }

  /**
   * Graceful shutdown (a drain): stop accepting connections and go not-ready (/readyz 503);
   * answer every request already received (queued inputs are scored without waiting for
   * companions), each with `connection: close`; refuse scoring requests that arrive on open
   * connections meanwhile (503 shutting_down); then stop the workers and flush and close the
   * audit log. Whatever is unanswered after `drainTimeoutMs` (options, or a shorter one given
   * here; a second call may shorten a running drain, 0: end it now) is answered 503, never
   * "clean", and connections still open are closed. Resolves with the tensors the workers still
   * held (0); `shutdown` says what the drain did.
   */
  close(o: { drainTimeoutMs?: number } = {}): Promise<number> {
    const ms = o.drainTimeoutMs ?? this.options.drainTimeoutMs;
    if (this.#closing === null) {
      this.#closing = this.#close(ms);
    } else if (this.#drainDeadline && performance.now() + ms < this.#drainDeadline.at) {
      const d = this.#drainDeadline;
      d.at = performance.now() + ms;
      if (ms === 0) d.expire();
      else setTimeout(d.expire, ms).unref();
    }
    return this.#closing;
  }

  async #close(graceMs: number): Promise<number> {
    const log = this.app.log;
    const start = performance.now();
    this.#state = "draining";
    log.info(
      {
        event: "shutdown",
        drainTimeoutMs: graceMs,
        inFlight: this.#connections.inFlight,
        connections: this.#connections.size,
      },
      "shutting down: answering the requests in flight",
    );
    const server = this.app.server;
    // Only the listening socket: http.Server.close() would also destroy every keep-alive
    // connection idle at this instant, resetting requests already on their way (see connections.ts).
    const listenerClosed = server.listening
      ? new Promise<void>((r) => NetServer.prototype.close.call(server, () => r()))
      : Promise.resolve();
    void this.#batcher.drain();
    const [httpDrained, grpcDrained] = await Promise.all([
      this.#drain(start + graceMs),
      this.#grpc?.drain(start + graceMs) ?? true,
    ]);
    const drained = httpDrained && grpcDrained;
    let refused = 0;
    let cut = 0;
    if (!grpcDrained) {
      // gRPC calls still waiting for a score are answered UNAVAILABLE (not checked), then cut.
      log.warn(
        { event: "drain_expired", drainTimeoutMs: graceMs, protocol: "grpc" },
        "the grace period ended with gRPC calls unanswered: they are answered UNAVAILABLE (not checked)",
      );
      this.#batcher.abort(() => drainExpired(graceMs));
      await new Promise((r) => setTimeout(r, GRPC_FLUSH_MS));
      this.#grpc?.forceClose();
    }
    if (!httpDrained) {
      refused = this.#connections.inFlight;
      log.warn(
        { event: "drain_expired", drainTimeoutMs: graceMs, inFlight: refused, connections: this.#connections.size },
        `the grace period ended with ${refused} requests unanswered: they are answered 503 (not checked)`,
      );
      // Requests waiting for a score are answered 503 through the error handler; those still
      // arriving or in a handler after DRAIN_FLUSH_MS get the same answer written directly.
      this.#batcher.abort(() => drainExpired(graceMs));
      await this.#waitFor(() => this.#connections.inFlight === 0, DRAIN_FLUSH_MS);
      const late = drainExpired(graceMs);
      if (
        this.#connections.answerUnanswered(
          late.statusCode,
          errorBody(late.code, late.reason, late.message),
          late.headers,
        ) > 0
      ) {
        await this.#waitFor(() => this.#connections.inFlight === 0, DRAIN_FLUSH_MS);
      }
      cut = this.#connections.destroyAll();
    }
    await listenerClosed;
    await this.app.close();
    await this.#reloading?.catch(() => undefined);
    // A batch still running (its requests were answered 503 above) finishes before its worker
    // stops: stopping a thread inside a native forward pass would abort the process.
    const left = (await this.#pool.close()) + ((await this.#feed?.close()) ?? 0);
    await this.#audit?.close();
    this.#state = "closed";
    this.#shutdown = {
      drained,
      drainMs: Math.round(performance.now() - start),
      refusedAtDeadline: refused,
      connectionsCut: cut,
    };
    log.info(
      { event: "stopped", workerTensorsLeft: left, ...this.#shutdown },
      drained
        ? "stopped: every request received was answered"
        : `stopped after the grace period: ${refused} requests answered 503, ${cut} connections cut`,
    );
    return left;
  }

  /**
   * Waits until every request received is answered and every connection closed (busy ones close
   * after their next answer, idle ones after DRAIN_IDLE_CLOSE_MS); false when `deadline` (or a
   * shortened one) comes first.
   */
  #drain(deadline: number): Promise<boolean> {
    const c = this.#connections;
    return new Promise<boolean>((resolve) => {
      const finish = (ok: boolean): void => {
        clearInterval(poll);
        clearTimeout(timer);
        this.#drainDeadline = null;
        resolve(ok);
      };
      const check = (): void => {
        c.closeIdle(DRAIN_IDLE_CLOSE_MS);
        if (c.inFlight === 0 && c.size === 0) finish(true);
      };
      const poll = setInterval(check, DRAIN_POLL_MS);
      const expire = (): void => finish(false);
      const timer = setTimeout(expire, Math.max(0, deadline - performance.now()));
      this.#drainDeadline = { at: deadline, expire };
      check();
    });
  }

  #waitFor(done: () => boolean, ms: number): Promise<void> {
    const until = performance.now() + ms;
    return new Promise((resolve) => {
      const poll = setInterval(() => {
        if (done() || performance.now() >= until) {
          clearInterval(poll);
          resolve();
        }
      }, DRAIN_POLL_MS);
    });
  }

  /** One line saying why the dashboard's feed is off; a warning when the options asked for it. */
  #logFeedOff(detector: string, asked: boolean): void {
    const why = `the flagged-input feed and the dashboard's overlays are off: they show BaDExpert's B, and the ${detector} detector has none (flagged inputs are still counted, logged and audited)`;
    if (asked)
      this.app.log.warn(
        { event: "explain_off", detector, flaggedKeep: this.options.flaggedKeep },
        `flaggedKeep/explainMethod (--flagged-keep, --explain-method) ignored: ${why}`,
      );
    else this.app.log.info({ event: "explain_off", detector }, why);
  }

  #watchPool(p: WorkerPool): void {
    // The pool reports deaths and idle workers through these hooks (set after start, when the server exists).
    p.events.onIdle = () => this.#batcher.pump();
    p.events.onWorkerDeath = (e) => {
      this.metrics.workerDeaths.inc();
      this.app.log.error({ event: "worker_died", err: e.message }, "a scoring worker died; starting a replacement");
    };
    p.events.onRespawnFailure = (e) =>
      this.app.log.error(
        { event: "worker_respawn_failed", err: e.message },
        "a replacement scoring worker failed to start",
      );
  }

  get #modelInput(): ModelInput {
    const p = this.#info.preprocessing;
    return { height: p.imageSize[0], width: p.imageSize[1], channels: p.channels === 1 ? 1 : 3 };
  }

  /**
   * Reads every image's header, checks the request's pixel budget, then decodes each image under
   * the in-flight budget: one buffer per scored frame (one per image unless --frames all).
   */
  async #decode(
    ctx: RequestContext,
    images: readonly { name: string; data: Uint8Array }[],
    deadline: number,
  ): Promise<Uint8Array[][]> {
    const o = this.options;
    const limits: DecodeLimits = { maxPixels: o.maxPixels, frames: o.frames, maxFrames: o.maxImagesPerRequest };
    const probes = await Promise.all(images.map((im) => probeUpload(im.data, im.name, limits)));
    const pixels = probes.reduce((n, p) => n + p.pixels, 0);
    if (pixels > o.maxRequestPixels) {
      const largest = probes.reduce((a, p, i) => (p.pixels > (probes[a]?.pixels ?? 0) ? i : a), 0);
      throw new ServeError(
        "E_INPUT_TOO_LARGE",
        "too_many_pixels",
        `the request's ${images.length} image${images.length === 1 ? "" : "s"} declare ${pixels} pixels together (largest: ${images[largest]?.name ?? "?"}, ${probes[largest]?.pixels ?? 0}); at most ${o.maxRequestPixels} per request (--max-request-pixels)`,
      );
    }
    const frames = probes.reduce((n, p) => n + (o.frames === "all" ? p.frames : 1), 0);
    if (frames > o.maxImagesPerRequest) {
      throw new ServeError(
        "E_INPUT_TOO_LARGE",
        "too_many_images",
        `the request's images hold ${frames} frames to score; at most ${o.maxImagesPerRequest} per request (--max-images-per-request; with --frames all each frame is one input)`,
      );
    }
    const target = this.#modelInput;
    return Promise.all(
      images.map(async (im, i) => {
        const probe = probes[i] as (typeof probes)[number];
        const release = await this.#pixels.acquire(probe.pixels, Math.max(1, deadline - performance.now()), im.name);
        try {
          return await decodeForModel(im.data, im.name, target, probe, limits);
        } finally {
          // Decoded in two steps (not onePass), the full-size pixels were a Buffer: up to 4 bytes a pixel.
          if (!probe.onePass) this.#decodedGarbage += 4 * probe.pixels;
          release();
          this.#collectDecodedGarbage();
        }
      }),
    ).finally(() => ctx.log.debug({ event: "decoded", images: images.length, pixels }, "images decoded"));
  }

  /** Once 64 MB of full-size pixels are garbage and nothing is being decoded, their memory goes back now, not at V8's next collection. */
  #collectDecodedGarbage(): void {
    if (this.#decodedGarbage < 64 * 2 ** 20 || this.#pixels.inUse > 0) return;
    this.#decodedGarbage = 0;
    setImmediate(collectGarbage);
  }

  /** Decodes, scores, records (metrics, window, audit) and returns one record per image. */
  async #score(req: FastifyRequest, route: string): Promise<{ records: DetectionRecord[]; batch: boolean }> {
    const deadline = performance.now() + this.options.timeoutMs;
    const { images, batch } = await requestImages(req, {
      maxImages: this.options.maxImagesPerRequest,
      maxBytes: this.options.maxBodyBytes,
    });
    const ctx = contextOf(req);
    const decoded = await this.#decode(ctx, images, deadline);
    const records = await this.#scoreFrames(ctx, route, decoded, (i) => (images[i] as { data: Uint8Array }).data);
    return { records, batch };
  }

  /**
   * Scores decoded images (one entry per image, one buffer per frame) and records them: metrics,
   * the flagged-rate window, the dashboard's feed and the audit log (`original(i)`: the bytes saved
   * for image i). Every protocol's scoring ends here.
   */
  async #scoreFrames(
    ctx: RequestContext,
    route: string,
    decoded: readonly Uint8Array[][],
    original: OriginalOf,
  ): Promise<DetectionRecord[]> {
    const scored = await this.#batcher.submit(decoded.flat());
    const received = new Date().toISOString();
    const names = this.#info.classNames;
    const record = (s: ScoredInput): DetectionRecord => ({
      pred: s.pred,
      predClass: names[s.pred] ?? String(s.pred),
      class: names[s.pred] ?? String(s.pred),
      detector: s.detector,
      expertConfidence: s.expertConfidence,
      auxiliaryConfidence: s.auxiliaryConfidence,
      score: s.score,
      threshold: s.threshold,
      flagged: s.flagged,
      ...(s.reason ? { reason: s.reason } : {}),
    });
    // One record per image: its only frame, or with --frames all the frame that decides (no valid
    // score first: fail closed; else the highest score), flagged when any frame is.
    const records: DetectionRecord[] = [];
    const shown: Uint8Array[] = [];
    let at = 0;
    for (const frames of decoded) {
      const mine = scored.slice(at, at + frames.length);
      at += frames.length;
      let k = 0;
      for (const [j, s] of mine.entries()) {
        const best = mine[k] as ScoredInput;
        if (best.score !== null && (s.score === null || s.score > best.score)) k = j;
      }
      const r = record(mine[k] as ScoredInput);
      if (frames.length > 1)
        Object.assign(r, { flagged: mine.some((s) => s.flagged), frames: frames.length, frame: k });
      records.push(r);
      shown.push(frames[k] as Uint8Array);
    }
    const now = Date.now();
    for (const [i, r] of records.entries()) {
      this.metrics.inputsScored.inc();
      if (r.score !== null) this.metrics.score.observe(r.score);
      this.#window.record(r.pred, r.flagged, now);
      if (!r.flagged) continue;
      this.metrics.inputsFlagged.inc({ class: r.class });
      ctx.log.info(
        {
          event: "flagged",
          index: i,
          pred: r.pred,
          class: r.class,
          score: r.score,
          ...(r.frames ? { frame: r.frame, frames: r.frames } : {}),
        },
        "input flagged as a suspected backdoor input",
      );
      // Handed over, not awaited: the overlay is made by the explain worker after the answer.
      this.#feed?.offer({
        time: received,
        requestId: ctx.id,
        route,
        pred: r.pred,
        class: r.class,
        score: r.score,
        pixels: shown[i] as Uint8Array,
      });
      if (this.#audit) {
        await this.#audit.record(
          {
            time: new Date(now).toISOString(),
            requestId: ctx.id,
            client: ctx.client,
            route,
            index: i,
            pred: r.pred,
            class: r.class,
            score: r.score,
            threshold: r.threshold,
            ...(r.reason ? { reason: r.reason } : {}),
          },
          this.#audit.imagesDir ? await original(i) : new Uint8Array(0),
        );
      }
    }
    this.#alert?.check(now);
    return records;
  }

  /** An input that could not be scored at all (a tensor holding NaN): refused, logged and audited, never counted clean. */
  async #unscorable(
    ctx: RequestContext,
    route: string,
    index: number,
    reason: string,
    original: Uint8Array,
  ): Promise<void> {
    this.metrics.refused.inc({ reason: "unscorable_input" });
    ctx.log.info({ event: "unscorable", index, reason }, "input refused: it cannot be scored");
    await this.#audit?.record(
      {
        time: new Date().toISOString(),
        requestId: ctx.id,
        client: ctx.client,
        route,
        index,
        pred: -1,
        class: "",
        score: null,
        threshold: this.#info.threshold,
        reason,
      },
      original,
    );
  }

  #routes(): void {
    const app = this.app;
    const o = this.options;
    // First of the hooks: every request is counted until answered (the drain waits for them), and
    // a scoring request that arrives during a drain is refused before its body is read.
    app.addHook("onRequest", async (req, reply) => {
      this.#connections.request(req.raw, reply.raw, String(req.id));
      if (this.#state !== "ready" && SCORING_ROUTES.has(req.routeOptions.url ?? "")) throw shuttingDown();
    });
    // Raw image bodies: any image/* type and application/octet-stream, kept as bytes.
    for (const type of ["application/octet-stream", /^image\/[\w.+-]+$/]) {
      app.addContentTypeParser(type, { parseAs: "buffer" }, (_req, body, done) => done(null, body));
    }
    // JSON through our parser: its messages name the problem, including prototype-poisoning keys.
    app.removeContentTypeParser("application/json");
    app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
      try {
        done(null, parseJsonBody(body as string));
      } catch (e) {
        done(e as Error, undefined);
      }
    });
    void app.register(multipart, {
      limits: { fileSize: o.maxBodyBytes, files: o.maxImagesPerRequest, fields: 16, parts: o.maxImagesPerRequest + 16 },
    });
    app.setErrorHandler((err, req, reply) => handleError(err, req, reply, this.metrics, o));
    app.setNotFoundHandler((req, reply) => {
      void reply.code(httpStatus("E_NOT_FOUND")).send({
        ...errorBody("E_NOT_FOUND", "not_found", `no route ${req.method} ${req.url}; see GET /openapi.json`),
        requestId: req.id,
      });
    });
    if (o.token !== null) {
      const check = bearerCheck(o.token);
      app.addHook("onRequest", async (req, reply) => {
        if (PUBLIC_ROUTES.has(req.routeOptions.url ?? "")) return;
        const problem = check(req.headers.authorization);
        if (problem) {
          void reply
            .code(httpStatus("E_UNAUTHORIZED"))
            .header("www-authenticate", 'Bearer realm="badexpert"')
            .send(
              isV2(req.url)
                ? v2Error({ message: problem })
                : { ...errorBody("E_UNAUTHORIZED", "unauthorized", problem), requestId: req.id },
            );
          return reply;
        }
      });
    }
    app.addHook("onSend", async (req, reply) => {
      void reply.header("x-request-id", req.id);
      // While draining, every answer closes its connection: the client's next request goes to a
      // new connection (refused here, so to another instance), and the drain ends.
      if (this.#state !== "ready") void reply.header("connection", "close");
    });
    app.addHook("onResponse", async (req, reply) => {
      const route = req.routeOptions.url ?? "unmatched";
      this.metrics.requests.inc({ route, method: req.method, status: String(reply.statusCode) });
      if (SCORING_ROUTES.has(route)) {
        const v1 = route.startsWith("/v1/");
        const model = v1
          ? route === "/v1/predict"
            ? `${o.modelName}-filtered`
            : o.modelName
          : modelLabel({ options: o }, (req.params as { name?: string }).name);
        this.metrics.inferenceRequests.inc({
          protocol: v1 ? "v1" : "v2-http",
          model,
          status: String(reply.statusCode),
        });
      }
      this.metrics.latency.observe({ route }, reply.elapsedTime / 1000);
      req.log.debug({ route, status: reply.statusCode, ms: reply.elapsedTime }, "request completed");
    });

    app.post("/v1/detect", async (req, reply: FastifyReply) => {
      const { records, batch } = await this.#score(req, "/v1/detect");
      return reply.send(batch ? { requestId: req.id, results: records } : { requestId: req.id, ...records[0] });
    });

    app.post("/v1/predict", async (req, reply: FastifyReply) => {
      const { records, batch } = await this.#score(req, "/v1/predict");
      const flagged = records.flatMap((r, i) => (r.flagged ? [i] : []));
      if (o.onFlag === "reject" && flagged.length > 0) {
        const first = records[flagged[0] as number] as DetectionRecord;
        return reply.code(httpStatus("E_FLAGGED")).send({
          error: "flagged",
          code: "E_FLAGGED",
          reason: "flagged",
          message: batch
            ? `inputs ${flagged.join(", ")} of ${records.length} were flagged as suspected backdoor inputs; the request is refused (--on-flag reject)`
            : `the input was flagged as a suspected backdoor input (score ${first.score ?? "not finite"} > threshold ${first.threshold}); refused (--on-flag reject)`,
          requestId: req.id,
          flagged: flagged.map((i) => {
            const r = records[i] as DetectionRecord;
            return {
              index: i,
              score: r.score,
              threshold: r.threshold,
              ...(r.reason ? { reason: r.reason } : {}),
              ...(r.frames ? { frames: r.frames, frame: r.frame } : {}),
            };
          }),
        });
      }
      const out = records.map((r) =>
        r.flagged
          ? {
              pred: r.pred,
              predClass: r.predClass,
              class: r.class,
              flagged: true,
              score: r.score,
              threshold: r.threshold,
              ...(r.reason ? { reason: r.reason } : {}),
              ...(r.frames ? { frames: r.frames, frame: r.frame } : {}),
            }
          : { pred: r.pred, predClass: r.predClass, class: r.class, flagged: false },
      );
      return reply.send(batch ? { requestId: req.id, results: out } : { requestId: req.id, ...out[0] });
    });

    app.get("/v1/detector", async () => {
      const i = this.#info;
      return {
        detector: i.detector,
        kind: i.kind,
        architecture: i.spec.name,
        classNames: i.classNames,
        imageSize: i.preprocessing.imageSize,
        channels: i.preprocessing.channels,
        rule: i.rule,
        params: i.params,
        threshold: i.threshold,
        targetFpr: i.targetFpr,
        calibration: i.calibration,
        checkpoint: i.checkpoint,
        trust: i.trust,
        source: this.#source.kind === "weights" ? { inMemory: true } : { bundle: this.#source.dir },
        hashes: this.#hashes,
        loadedAt: this.#loadedAt,
        serving: {
          engine: this.#engine,
          engineRequested: o.engine,
          engineFallback: this.#fallback,
          workers: this.#pool.size,
          threadsPerWorker: this.#pool.threads,
          maxBatch: o.maxBatch,
          maxWaitMs: o.maxWaitMs,
          maxQueue: o.maxQueue,
          timeoutMs: o.timeoutMs,
          onFlag: o.onFlag,
        },
      };
    });

    app.get("/", async (_req, reply) => reply.type("text/html; charset=utf-8").send(DASHBOARD_HTML));
    app.get("/v1/flagged", async (req, reply) => {
      if (!this.#feed) {
        const why = this.#info.explainable
          ? "flaggedKeep 0 / --flagged-keep 0"
          : `the ${this.#info.detector} detector has no B to explain with`;
        return reply.code(httpStatus("E_NOT_FOUND")).send({
          ...errorBody("E_NOT_FOUND", "not_found", `the flagged-input feed is off (${why})`),
          requestId: req.id,
        });
      }
      const w = this.#window.stats();
      const names = this.#info.classNames;
      return {
        window: {
          seconds: this.#window.seconds,
          scored: w.scored,
          flagged: w.flagged,
          rate: w.rate,
          flaggedByClass: w.flaggedByClass.map((n, c) => ({ class: names[c] ?? String(c), flagged: n })),
        },
        feed: this.#feed.stats,
        recent: this.#feed.recent(),
      };
    });

    app.get("/healthz", async () => ({ status: "ok" }));
    app.get("/readyz", async (_req, reply) => {
      if (this.#state !== "ready")
        return reply.code(503).send({ status: this.#state === "draining" ? "draining" : "stopped" });
      // A worker that died is not ready again until its replacement has loaded the bundle.
      if (!this.#ready())
        return reply.code(503).send({ status: "loading", workersReady: this.#pool.alive, workers: this.#pool.size });
      return { status: "ready", workers: this.#pool.size };
    });
    app.get("/metrics", async (_req, reply) => {
      const text = await this.metrics.registry.metrics();
      return reply.type(this.metrics.registry.contentType).send(text);
    });
    const doc = openApiDocument(o);
    (doc.paths as Record<string, unknown>) = {
      ...(doc.paths as Record<string, unknown>),
      ...v2Paths(o.token !== null),
    };
    app.get("/openapi.json", async () => doc);
    // The Open Inference Protocol's routes: a plugin of their own, for their body parser and error form.
    void app.register(async (v2) =>
      registerV2Routes(v2, this.#core, (err, req, reply) => handleError(err, req, reply, this.metrics, o, v2Error)),
    );
  }

  /** Every worker holds the verified bundle and the server takes requests: readiness, for /readyz, /v2/health/ready and gRPC. */
  #ready(): boolean {
    return this.#state === "ready" && this.#pool.alive === this.#pool.size;
  }

  /** The scoring path and state, as the Open Inference Protocol's front ends (src/serve/v2) use them. */
  get #core(): InferenceCore {
    // The detector and engine change on reload: read at each use.
    const info = (): ServedInfo => this.#info;
    const engine = (): ScoringEngine => this.#engine;
    return {
      get info() {
        return info();
      },
      get engine() {
        return engine();
      },
      options: this.options,
      metrics: this.metrics,
      log: this.app.log,
      ready: () => this.#ready(),
      accepting: () => this.#state === "ready",
      decode: (ctx, images) => this.#decode(ctx, images, performance.now() + this.options.timeoutMs),
      score: (ctx, route, frames, original) => this.#scoreFrames(ctx, route, frames, original),
      unscorable: (ctx, route, index, reason, original) => this.#unscorable(ctx, route, index, reason, original),
    };
  }
}

/** The library entry: `await (await createServer("runs/detector", { port: 8080 })).listen()`. */
export function createServer(
  detector: Detector | BadExpertDetector | string,
  options: Partial<ServeOptions> = {},
): Promise<BadExpertServer> {
  return BadExpertServer.create(detector, options);
}

/** Why listen() failed, in words, with the system's code. */
function listenError(host: string, port: number, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  const reasons: Record<string, string> = {
    EADDRINUSE: "another process already listens on that address and port",
    EACCES: port < 1024 ? "permission denied (ports below 1024 need privileges)" : "permission denied",
    EADDRNOTAVAIL: "the address is not one of this machine's",
    ENOTFOUND: "the host name does not resolve",
    EAI_AGAIN: "the host name could not be resolved (temporary DNS failure)",
  };
  const reason = (code !== undefined ? reasons[code] : undefined) ?? (e as Error).message;
  const at = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  return new Error(`serve: cannot listen on ${at}: ${reason}${code !== undefined ? ` (${code})` : ""}`, { cause: e });
}

export { ServeError };
