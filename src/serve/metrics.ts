// The service's Prometheus metrics, on a registry of its own (several servers in one process —
// tests, or a library user's — must not share counters). Gauges that mirror live state (queue
// depth, the sliding-window flagged rate) are read at scrape time.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { ServedInfo } from "../workers/served-info.js";
import type { WindowStats } from "./flag-window.js";

/** The scoring engine in use, as --engine asked, and why "auto" fell back to libtorch (null when it did not). */
export interface EngineState {
  engine: string;
  requested: string;
  fallback: string | null;
}

export interface LiveState {
  engine(): EngineState;
  queueDepth(): number;
  runningBatches(): number;
  workersReady(): number;
  window(): WindowStats;
  alerting(): boolean;
}

/** Score buckets around the calibrated threshold, scaled by the spread of clean calibration scores. */
export function scoreBuckets(info: Pick<ServedInfo, "calibration" | "threshold">): number[] {
  const c = info.calibration;
  const t = info.threshold;
  const spread = Number.isFinite(c.scoreStd) && c.scoreStd > 0 ? c.scoreStd : Math.max(Math.abs(t) * 0.1, 1e-3);
  const centre = Number.isFinite(t) ? t : c.scoreMean;
  const steps = [-8, -4, -2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2, 4, 8].map((k) => centre + k * spread);
  const marks = [c.scoreQuantiles.p50, c.scoreQuantiles.p90, c.scoreQuantiles.p99];
  return [...new Set([...steps, ...marks].filter(Number.isFinite).map((x) => Number(x.toPrecision(6))))].sort(
    (a, b) => a - b,
  );
}

export class ServeMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "method" | "status">;
  readonly latency: Histogram<"route">;
  readonly batchSize: Histogram;
  readonly forwardSeconds: Histogram;
  readonly inputsScored: Counter;
  readonly inputsFlagged: Counter<"class">;
  readonly score: Histogram;
  readonly refused: Counter<"reason">;
  readonly reloads: Counter<"result">;
  readonly workerDeaths: Counter;
  readonly workerLiveTensors: Gauge;
  readonly grpcRequests: Counter<"method" | "code">;
  readonly grpcLatency: Histogram<"method">;
  readonly inferenceRequests: Counter<"protocol" | "model" | "status">;

  constructor(info: ServedInfo, live: LiveState) {
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: "badexpert_" });
    this.requests = new Counter({
      name: "badexpert_http_requests_total",
      help: "HTTP requests by route, method and status code",
      labelNames: ["route", "method", "status"],
      registers: [r],
    });
    this.latency = new Histogram({
      name: "badexpert_http_request_duration_seconds",
      help: "HTTP request latency by route (receiving the body to sending the answer)",
      labelNames: ["route"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.grpcRequests = new Counter({
      name: "badexpert_grpc_requests_total",
      help: "gRPC calls (Open Inference Protocol) by method and status code",
      labelNames: ["method", "code"],
      registers: [r],
    });
    this.grpcLatency = new Histogram({
      name: "badexpert_grpc_request_duration_seconds",
      help: "gRPC call latency by method (request received to answer sent)",
      labelNames: ["method"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [r],
    });
    this.inferenceRequests = new Counter({
      name: "badexpert_inference_requests_total",
      help: "Scoring requests by protocol (v1: /v1/detect and /v1/predict; v2-http, v2-grpc: the Open Inference Protocol), model (the detector, or the filtered model: /v1/predict) and HTTP status (gRPC: the status the same answer has over HTTP)",
      labelNames: ["protocol", "model", "status"],
      registers: [r],
    });
    this.batchSize = new Histogram({
      name: "badexpert_batch_size",
      help: "Inputs per batch sent to a scoring worker",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: [r],
    });
    this.forwardSeconds = new Histogram({
      name: "badexpert_batch_forward_seconds",
      help: "Time of one batch's forward passes in a worker (BaDExpert: three; a baseline: its own count)",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [r],
    });
    this.inputsScored = new Counter({
      name: "badexpert_inputs_scored_total",
      help: "Inputs scored by the detector",
      registers: [r],
    });
    this.inputsFlagged = new Counter({
      name: "badexpert_inputs_flagged_total",
      help: "Inputs flagged as suspected backdoor inputs, by M's predicted class",
      labelNames: ["class"],
      registers: [r],
    });
    this.score = new Histogram({
      name: "badexpert_score",
      help: `Detector scores (threshold ${info.threshold}; higher is more suspicious)`,
      buckets: scoreBuckets(info),
      registers: [r],
    });
    this.refused = new Counter({
      name: "badexpert_refused_total",
      help: "Requests refused without a score, by reason (queue_full, timeout, scoring_failed, shutting_down)",
      labelNames: ["reason"],
      registers: [r],
    });
    this.reloads = new Counter({
      name: "badexpert_reloads_total",
      help: "Bundle reloads (SIGHUP) by result",
      labelNames: ["result"],
      registers: [r],
    });
    this.workerDeaths = new Counter({
      name: "badexpert_worker_deaths_total",
      help: "Scoring worker threads that died and were replaced",
      registers: [r],
    });
    this.workerLiveTensors = new Gauge({
      name: "badexpert_worker_live_tensors",
      help: "Live tensors in the last worker that answered (constant: the detector's own weights and state)",
      registers: [r],
    });
    new Gauge({
      name: "badexpert_scoring_engine",
      help: "1 for the engine the scoring workers use, labelled with the engine and --engine as given",
      labelNames: ["engine", "requested"],
      registers: [r],
      collect() {
        const e = live.engine();
        this.reset();
        this.set({ engine: e.engine, requested: e.requested }, 1);
      },
    });
    new Gauge({
      name: "badexpert_engine_fallback",
      help: "1 while --engine auto scores on libtorch because onnxruntime could not run the detector (the reason is in /v1/detector and the log)",
      registers: [r],
      collect() {
        this.set(live.engine().fallback === null ? 0 : 1);
      },
    });
    new Gauge({
      name: "badexpert_queue_depth",
      help: "Inputs waiting for a scoring worker",
      registers: [r],
      collect() {
        this.set(live.queueDepth());
      },
    });
    new Gauge({
      name: "badexpert_batches_running",
      help: "Batches being scored now",
      registers: [r],
      collect() {
        this.set(live.runningBatches());
      },
    });
    new Gauge({
      name: "badexpert_workers_ready",
      help: "Scoring workers holding a loaded detector",
      registers: [r],
      collect() {
        this.set(live.workersReady());
      },
    });
    new Gauge({
      name: "badexpert_alert_active",
      help: "1 while the windowed flagged rate is above --alert-rate",
      registers: [r],
      collect() {
        this.set(live.alerting() ? 1 : 0);
      },
    });
    new Gauge({
      name: "badexpert_window_flagged_rate",
      help: "Share of inputs flagged over the sliding window (--alert-window seconds)",
      registers: [r],
      collect() {
        this.set(live.window().rate);
      },
    });
    new Gauge({
      name: "badexpert_window_inputs_scored",
      help: "Inputs scored over the sliding window",
      registers: [r],
      collect() {
        this.set(live.window().scored);
      },
    });
    const names = info.classNames;
    new Gauge({
      name: "badexpert_window_flagged_share_by_class",
      help: "Share of the window's flagged inputs predicted as each class (an attack concentrates them on its target)",
      labelNames: ["class"],
      registers: [r],
      collect() {
        const w = live.window();
        this.reset();
        for (const [c, n] of w.flaggedByClass.entries())
          this.set({ class: names[c] ?? String(c) }, w.flagged > 0 ? n / w.flagged : 0);
      },
    });
  }
}
