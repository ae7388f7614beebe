// A scoring worker thread: holds the detector once — BaDExpert (M, B, M') or a baseline from a
// baseline detector bundle — and runs the forward passes of the batches the HTTP thread sends.
// One batch at a time; the pool never sends a second before the first is answered.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { dispose, getNumThreads, memory, returnLargeBuffersToTheOs, setNumThreads, tidy } from "../engine/index.js";
import { imagesToTensor } from "../data/batch.js";
import { loadBundleWithTrust, type BundleTrust } from "../defense/bundle.js";
import { BadExpertDetector } from "../defense/detector.js";
import { loadDetectorBundle, type LoadedDetector } from "../detectors/bundle.js";
import { inputSeeds } from "../detectors/input-seeds.js";
import { flagged } from "../detectors/scoring.js";
import { tensorsFromBytes } from "../io/weights.js";
import { createModel } from "../models/registry.js";
import type { Module } from "../nn/index.js";
import { OnnxDetector } from "../export/onnx-detector.js";
import { lowerThreadPriority } from "../util/thread-priority.js";
import { expertSaliencyOfBytes } from "../forensics/explain.js";
import { overlayPng } from "../forensics/overlay.js";
import { topIndices } from "../forensics/regions.js";
import type { BatchResult, ExplainRequest, FromWorker, ScoreRequest, ToWorker, WorkerInit } from "./protocol.js";
import { ROLES, weightsTrust, type DetectorSource, type Role } from "./source.js";
import { badexpertServedInfo, baselineServedInfo, type ServedInfo } from "./served-info.js";

type Scores = Pick<BatchResult, "pred" | "expertConfidence" | "auxiliaryConfidence" | "score" | "flagged">;

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort?.postMessage(m, transfer);
}

async function buildBadExpert(source: Exclude<DetectorSource, { kind: "baseline" }>, bundleLoad: WorkerInit["bundleLoad"]): Promise<{ det: BadExpertDetector; trust: BundleTrust }> {
  if (source.kind === "bundle") {
    // The warnings travel in the ready message's info; the HTTP thread logs them once, not once per worker.
    const { detector, trust } = await loadBundleWithTrust(source.dir, { ...bundleLoad, onWarning: () => undefined });
    return { det: detector, trust };
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
    return { det: new BadExpertDetector({ model, expert, auxiliary }, source.info), trust: weightsTrust(source) };
  } catch (e) {
    for (const m of Object.values(made)) m.dispose();
    throw e;
  }
}

/** What a worker scores with: BaDExpert on libtorch or on onnxruntime (its exported graph), or a baseline on libtorch. */
interface Engine {
  info: ServedInfo;
  /** The libtorch BaDExpert detector, where this engine keeps one (explaining needs B's gradients). */
  detector?: BadExpertDetector;
  score(req: ScoreRequest, h: number, w: number, c: number): Promise<Scores>;
  dispose(): Promise<void>;
}

function libtorchEngine(det: BadExpertDetector, trust: BundleTrust): Engine {
  return {
    info: badexpertServedInfo(det.info, trust),
    detector: det,
    score: (req, h, w, c) => Promise.resolve(tidy(() => det.scoreBatch(imagesToTensor(req.pixels, req.count, h, w, c)))),
    dispose: () => Promise.resolve(det.dispose()),
  };
}

/** Exports the loaded detector in memory and frees the libtorch models: the graph holds its own copy of the weights. */
async function onnxEngine(det: BadExpertDetector, trust: BundleTrust, threads: number): Promise<Engine> {
  let onnx: OnnxDetector;
  try {
    onnx = await OnnxDetector.fromDetector(det, { threads });
  } finally {
    det.dispose();
  }
  return {
    info: badexpertServedInfo(det.info, trust),
    score: (req, h, w, c) => onnx.scoreBatch(tidy(() => imagesToTensor(req.pixels, req.count, h, w, c).contiguous().data() as Float32Array), req.count),
    dispose: () => onnx.release(),
  };
}

/**
 * A baseline from its bundle, on libtorch. Each input's seed comes from its pixels (inputSeeds),
 * so a stochastic baseline (STRIP, SentiNet) answers the same for an image whatever batch it
 * lands in and whatever was scored before. Scores that are not finite stay as they are: flagged()
 * flags them and the batcher answers them flagged with the reason (fail closed).
 */
function baselineEngine(loaded: LoadedDetector): Engine {
  const det = loaded.detector;
  return {
    info: baselineServedInfo(loaded),
    score: (req, h, w, c) =>
      Promise.resolve(
        tidy(() => {
          const x = imagesToTensor(req.pixels, req.count, h, w, c);
          const r = det.scoreBatch(x, { seeds: inputSeeds(x, loaded.inputSeedKey) });
          return { pred: r.pred, expertConfidence: null, auxiliaryConfidence: null, score: r.score, flagged: flagged(r.score, loaded.threshold) };
        }),
      ),
    dispose: () => Promise.resolve(loaded.dispose()),
  };
}

async function build(init: WorkerInit): Promise<Engine> {
  const source = init.source;
  if (source.kind === "baseline") {
    // The pool refuses these before starting workers (engine-choice.ts); checked again where the bundle is read.
    if (init.engine !== "libtorch") throw new Error(`the baseline detector '${source.detector}' scores with libtorch only, not ${init.engine}`);
    if (init.bundleLoad.verifyKey !== undefined) throw new Error(`a baseline detector bundle (${source.detector}) is not signed; its checkpoint's weights are hash-checked instead`);
    if (init.bundleLoad.requireSignature === true) throw new Error(`a baseline detector bundle (${source.detector}) is not signed, and a signature is required (--require-signature)`);
    return baselineEngine(await loadDetectorBundle(source.dir));
  }
  const { det, trust } = await buildBadExpert(source, init.bundleLoad);
  return init.engine === "onnxruntime" ? onnxEngine(det, trust, init.threads) : libtorchEngine(det, trust);
}

async function score(engine: Engine, req: ScoreRequest): Promise<void> {
  const [h, w] = engine.info.preprocessing.imageSize;
  const t0 = performance.now();
  const r = await engine.score(req, h, w, engine.info.preprocessing.channels);
  const forwardMs = performance.now() - t0;
  const arrays = [r.pred, r.expertConfidence, r.auxiliaryConfidence, r.score, r.flagged].flatMap((a) => (a ? [a.buffer as ArrayBuffer] : []));
  post(
    { type: "scored", id: req.id, pred: r.pred, expertConfidence: r.expertConfidence, auxiliaryConfidence: r.auxiliaryConfidence, score: r.score, flagged: r.flagged, detector: engine.info.detector, threshold: engine.info.threshold, forwardMs, liveTensors: memory().numTensors },
    arrays,
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
  const backgroundError = init.background === true ? lowerThreadPriority() : null;
  let engine: Engine;
  try {
    engine = await build(init);
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
        post({ type: "error", id: m.id, message: engine.info.kind === "baseline" ? `explain needs BaDExpert's B; this worker holds the baseline '${engine.info.detector}'` : "explain needs the libtorch engine (this worker scores on onnxruntime)" });
        return;
      }
      explain(engine.detector, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
      return;
    }
    score(engine, m).catch((e: unknown) => post({ type: "error", id: m.id, message: (e as Error).message }));
  });
  post({ type: "ready", info: engine.info, threads: getNumThreads(), liveTensors: memory().numTensors, ...(backgroundError !== null ? { backgroundError } : {}) });
}

void main();
