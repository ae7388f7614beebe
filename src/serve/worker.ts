// A scoring worker thread: holds the detector (M, B, M') once and runs the forward passes of
// the batches the HTTP thread sends. One batch at a time; the pool never sends a second before
// the first is answered.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { dispose, getNumThreads, memory, setNumThreads, tidy } from "../engine/index.js";
import { imagesToTensor } from "../data/batch.js";
import { loadBundle } from "../defense/bundle.js";
import { BadExpertDetector } from "../defense/detector.js";
import { tensorsFromBytes } from "../io/weights.js";
import { createModel } from "../models/registry.js";
import type { Module } from "../nn/index.js";
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

function score(det: BadExpertDetector, req: ScoreRequest): void {
  const [h, w] = det.info.preprocessing.imageSize;
  const t0 = performance.now();
  const r = tidy(() => det.scoreBatch(imagesToTensor(req.pixels, req.count, h, w, det.info.preprocessing.channels)));
  const forwardMs = performance.now() - t0;
  const arrays = [r.pred, r.expertConfidence, r.auxiliaryConfidence, r.score, r.flagged];
  post(
    { type: "scored", id: req.id, ...r, threshold: det.threshold, forwardMs, liveTensors: memory().numTensors },
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
  let det: BadExpertDetector;
  try {
    det = await build(init.source, init.bundleLoad);
  } catch (e) {
    post({ type: "failed", message: (e as Error).message });
    return;
  }
  parentPort?.on("message", (m: ToWorker) => {
    if (m.type === "close") {
      // Free the models explicitly (the pool reports the count left) and let the thread end.
      det.dispose();
      post({ type: "closed", liveTensors: memory().numTensors });
      parentPort?.close();
      return;
    }
    if (m.type === "explain") {
      explain(det, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
      return;
    }
    try {
      score(det, m);
    } catch (e) {
      post({ type: "error", id: m.id, message: (e as Error).message });
    }
  });
  post({ type: "ready", info: det.info, threads: getNumThreads(), liveTensors: memory().numTensors });
}

void main();
