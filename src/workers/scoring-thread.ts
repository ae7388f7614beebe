// A scoring worker thread: holds one detector (any kind, or BaDExpert's in-memory weights) and
// runs the forward passes of the batches its owner sends — the service's HTTP thread, or the
// library's Detector. One batch at a time; the owner never sends a second before the first is
// answered.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { getNumThreads, memory, returnLargeBuffersToTheOs, setNumThreads } from "../engine/index.js";
import type { BadExpertDetector } from "../defense/detector.js";
import { lowerThreadPriority } from "../util/thread-priority.js";
import { expertSaliencyOfBytes } from "../forensics/explain.js";
import { overlayPng } from "../forensics/overlay.js";
import { topIndices } from "../forensics/regions.js";
import type { ExplainRequest, FromWorker, ScoreRequest, ToWorker, WorkerInit } from "./protocol.js";
import { buildEngine, type Engine } from "./engine.js";

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(m, transfer);
}

async function score(engine: Engine, req: ScoreRequest): Promise<void> {
  const t0 = performance.now();
  const r = await engine.score(req);
  const forwardMs = performance.now() - t0;
  const arrays = [r.pred, r.expertConfidence, r.auxiliaryConfidence, r.score, r.flagged].flatMap((a) =>
    a ? [a.buffer as ArrayBuffer] : [],
  );
  post(
    {
      type: "scored",
      id: req.id,
      pred: r.pred,
      expertConfidence: r.expertConfidence,
      auxiliaryConfidence: r.auxiliaryConfidence,
      score: r.score,
      flagged: r.flagged,
      detector: engine.info.detector,
      threshold: engine.info.threshold,
      forwardMs,
      liveTensors: memory().numTensors,
    },
    arrays,
  );
}

/** Saliency of B for flagged images and their overlays; runs on the service's explain worker only. */
async function explain(det: BadExpertDetector, req: ExplainRequest): Promise<void> {
  const [h, w] = det.info.preprocessing.imageSize;
  const c = det.info.preprocessing.channels;
  const t0 = performance.now();
  const maps = expertSaliencyOfBytes(
    det,
    { pixels: req.pixels, count: req.count, height: h, width: w, channels: c },
    req.preds,
    { method: req.method },
  );
  const overlays: Uint8Array[] = [];
  const peaks = new Int32Array(req.count);
  for (let i = 0; i < req.count; i++) {
    const map = maps.subarray(i * h * w, (i + 1) * h * w);
    peaks[i] = topIndices(map, 1)[0] ?? 0;
    overlays.push(
      new Uint8Array(await overlayPng(req.pixels.subarray(i * h * w * c, (i + 1) * h * w * c), h, w, c, map)),
    );
  }
  post({ type: "explained", id: req.id, overlays, peaks, explainMs: performance.now() - t0 }, [
    peaks.buffer as ArrayBuffer,
    ...overlays.map((o) => o.buffer as ArrayBuffer),
  ]);
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
  const backgroundError = init.background === true ? lowerThreadPriority() : null;
  let engine: Engine;
  try {
    engine = await buildEngine(init);
  } catch (e) {
    post({ type: "failed", message: (e as Error).message });
    return;
  }
  // One batch at a time (the owner waits for each answer), so the async engine needs no queue here.
  parentPort?.on("message", (m: ToWorker) => {
    if (m.type === "close") {
      // Free the models explicitly (the owner reports the count left) and let the thread end.
      void engine.dispose().then(() => {
        post({ type: "closed", liveTensors: memory().numTensors });
        parentPort?.close();
      });
      return;
    }
    if (m.type === "explain") {
      // Saliency needs B's gradients: only a libtorch worker holding BaDExpert (the service's explain worker is one) can.
      const det = engine.explainer;
      if (!det) {
        post({
          type: "error",
          id: m.id,
          message: engine.info.explainable
            ? "explain needs the libtorch engine (this worker scores on onnxruntime)"
            : `explain needs BaDExpert's B; this worker holds the ${engine.info.detector} detector`,
        });
        return;
      }
      explain(det, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
      return;
    }
    score(engine, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
  });
  post({
    type: "ready",
    info: engine.info,
    threads: getNumThreads(),
    liveTensors: memory().numTensors,
    ...(backgroundError !== null ? { backgroundError } : {}),
  });
}

void main();
