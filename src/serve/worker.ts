// A scoring worker thread: holds the detector (M, B, M') once and runs the forward passes of
// the batches the HTTP thread sends. One batch at a time; the pool never sends a second before
// the first is answered.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { dispose, getNumThreads, memory, returnLargeBuffersToTheOs, setNumThreads, tidy } from "../engine/index.js";
import { imagesToTensor } from "../data/batch.js";
import { loadBundle } from "../defense/bundle.js";
import { BadExpertDetector, type BatchScores, type DetectorInfo } from "../defense/detector.js";
import { tensorsFromBytes } from "../io/weights.js";
import { createModel } from "../models/registry.js";
import type { Module } from "../nn/index.js";
import { OnnxDetector } from "../export/onnx-detector.js";
import { expertSaliencyOfBytes } from "../forensics/explain.js";
import { overlayPng } from "../forensics/overlay.js";
import { topIndices } from "../forensics/regions.js";
import type { ExplainRequest, FromWorker, ScoreRequest, ToWorker, WorkerInit } from "./protocol.js";
import { ROLES, type DetectorSource, type Role } from "./source.js";

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(m, transfer);
}

async function build(source: DetectorSource, bundleLoad: WorkerInit["bundleLoad"]): Promise<BadExpertDetector> {
  if (source.kind === "bundle") {
    if (bundleLoad.verifyKey !== undefined) return loadBundle(source.dir, { verifyKey: bundleLoad.verifyKey });
    return loadBundle(source.dir);
  }
  const made: Partial<Record<Role, Module>> = {};
  try {
    for (const role of ROLES) {
      const m = createModel(source.info.spec.name, source.info.spec);
      made[role] = m;
      const tensors = tensorsFromBytes(source.weights[role], `in-memory ${role} weights`);
      try {
        m.loadStateDict(tensors, { strict: true });
      } finally {
        dispose(tensors);
      }
    }
    const { model, expert, auxiliary } = made as Record<Role, Module>;
    return new BadExpertDetector({ model, expert, auxiliary }, source.info);
  } catch (e) {
    for (const m of Object.values(made)) m.dispose();
    throw e;
  }
}

/** What a worker scores with: the libtorch detector, or its exported graph on onnxruntime. */
interface Engine {
  threshold: number;
  /** The libtorch detector, where this engine keeps one (explaining needs its gradients). */
  detector?: BadExpertDetector;
  score(req: ScoreRequest, h: number, w: number, c: number): Promise<BatchScores>;
  dispose(): Promise<void>;
}

function libtorchEngine(det: BadExpertDetector): Engine {
  return {
    threshold: det.threshold,
    detector: det,
    score: (req, h, w, c) => Promise.resolve(tidy(() => det.scoreBatch(imagesToTensor(req.pixels, req.count, h, w, c)))),
    dispose: () => Promise.resolve(det.dispose()),
  };
}

/** Exports the loaded detector in memory and frees the libtorch models: the graph holds its own copy of the weights. */
async function onnxEngine(det: BadExpertDetector, threads: number): Promise<Engine> {
  let onnx: OnnxDetector;
  try {
    onnx = await OnnxDetector.fromDetector(det, { threads });
  } finally {
    det.dispose();
  }
  return {
    threshold: onnx.threshold,
    score: (req, h, w, c) => onnx.scoreBatch(tidy(() => imagesToTensor(req.pixels, req.count, h, w, c).contiguous().data() as Float32Array), req.count),
    dispose: () => onnx.release(),
  };
}

async function score(engine: Engine, info: DetectorInfo, req: ScoreRequest): Promise<void> {
  const [h, w] = info.preprocessing.imageSize;
  const t0 = performance.now();
  const r = await engine.score(req, h, w, info.preprocessing.channels);
  const forwardMs = performance.now() - t0;
  const arrays = [r.pred, r.expertConfidence, r.auxiliaryConfidence, r.score, r.flagged];
  post(
    { type: "scored", id: req.id, pred: r.pred, expertConfidence: r.expertConfidence, auxiliaryConfidence: r.auxiliaryConfidence, score: r.score, flagged: r.flagged, threshold: engine.threshold, forwardMs, liveTensors: memory().numTensors },
    arrays.map((a) => a.buffer as ArrayBuffer),
  );
}

/** Saliency of B for flagged images and their overlays; runs on the service's explain worker only. */
async function explain(det: BadExpertDetector, req: ExplainRequest): Promise<void> {
  const [h, w] = det.info.preprocessing.imageSize;
  const c = det.info.preprocessing.channels;
  const t0 = performance.now();
  const maps = expertSaliencyOfBytes(det, { pixels: req.pixels, count: req.count, height: h, width: w, channels: c }, req.preds, { method: req.method });
  const overlays: Uint8Array[] = [];
  const peaks = new Int32Array(req.count);
  for (let i = 0; i < req.count; i++) {
    const map = maps.subarray(i * h * w, (i + 1) * h * w);
    peaks[i] = topIndices(map, 1)[0] ?? 0;
    overlays.push(new Uint8Array(await overlayPng(req.pixels.subarray(i * h * w * c, (i + 1) * h * w * c), h, w, c, map)));
  }
  post({ type: "explained", id: req.id, overlays, peaks, explainMs: performance.now() - t0 }, [peaks.buffer as ArrayBuffer, ...overlays.map((o) => o.buffer as ArrayBuffer)]);
}

async function main(): Promise<void> {
  const init = workerData as WorkerInit;
  // libtorch's OpenMP team size is per calling thread, but the first parallel op on a thread
  // re-applies the process-wide last-set count (at::init_num_threads, run lazily once per
  // thread). Trigger that lazy initialisation first, then set this worker's own budget, so
  // neither the addon's load-time default nor another worker's choice overrides it.
  getNumThreads();
  setNumThreads(init.threads);
  // A long-running scorer: freed activations go back to the OS, so resident memory stays flat.
  returnLargeBuffersToTheOs();
  let engine: Engine;
  let info: DetectorInfo;
  try {
    const det = await build(init.source, init.bundleLoad);
    info = det.info;
    engine = init.engine === "onnxruntime" ? await onnxEngine(det, init.threads) : libtorchEngine(det);
  } catch (e) {
    post({ type: "failed", message: (e as Error).message });
    return;
  }
  // One batch at a time (the pool waits for each answer), so the async engine needs no queue here.
  parentPort?.on("message", (m: ToWorker) => {
    if (m.type === "close") {
      // Free the models explicitly (the pool reports the count left) and let the thread end.
      void engine.dispose().then(() => {
        post({ type: "closed", liveTensors: memory().numTensors });
        parentPort?.close();
      });
      return;
    }
    if (m.type === "explain") {
      // Saliency needs B's gradients: only a libtorch worker (the service's explain worker is one) can.
      if (!engine.detector) {
        post({ type: "error", id: m.id, message: "explain needs the libtorch engine (this worker scores on onnxruntime)" });
        return;
      }
      explain(engine.detector, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
      return;
    }
    score(engine, info, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
  });
  post({ type: "ready", info, threads: getNumThreads(), liveTensors: memory().numTensors });
}

void main();
