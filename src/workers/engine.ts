// What runs a detector's forward passes, on whichever thread holds it: a scoring worker
// (scoring-thread.ts) or, when asked, the caller's own thread (the library's Detector with
// thread "caller"). Built from the same WorkerInit either way, so both score with the same code:
// any kind on libtorch (CalibratedDetector.judge), or BaDExpert's exported graph on onnxruntime.
import { dispose, tensor, tidy, type Tensor } from "../engine/index.js";
import { imagesToTensor } from "../data/batch.js";
import { BadExpertDetector } from "../defense/detector.js";
import { tensorsFromBytes } from "../io/weights.js";
import { createModel } from "../models/registry.js";
import type { Module } from "../nn/index.js";
import { OnnxDetector } from "../export/onnx-detector.js";
import type { CalibratedDetector } from "../detectors/calibrated.js";
import { badexpertDetector, openDetector } from "../detectors/open.js";
import type { BatchResult, WorkerInit } from "./protocol.js";
import { ROLES, weightsTrust, type DetectorSource, type Role } from "./source.js";
import { servedInfo, type ServedInfo } from "./served-info.js";

export type Scores = Pick<BatchResult, "pred" | "expertConfidence" | "auxiliaryConfidence" | "score" | "flagged">;

/** A batch as it travels: `count` uint8 NHWC images at the model's size, or float32 NCHW images in [0, 1]. */
export interface Batch {
  count: number;
  pixels: Uint8Array | Float32Array;
}

export interface Engine {
  info: ServedInfo;
  /** The detector on libtorch, where this engine keeps one (null on onnxruntime). */
  detector: CalibratedDetector | null;
  /** BaDExpert's libtorch detector, where this engine keeps one (explaining needs B's gradients). */
  explainer: BadExpertDetector | null;
  score(batch: Batch): Promise<Scores>;
  dispose(): Promise<void>;
}

/** The batch as a float [N, C, H, W] tensor in [0, 1]. */
export function batchTensor(b: Batch, info: Pick<ServedInfo, "preprocessing">): Tensor {
  const [h, w] = info.preprocessing.imageSize;
  const c = info.preprocessing.channels;
  if (b.pixels instanceof Float32Array) {
    if (b.pixels.length !== b.count * c * h * w)
      throw new RangeError(`scoring: ${b.pixels.length} floats do not hold ${b.count} images of ${c}x${h}x${w}`);
    return tensor(b.pixels, { shape: [b.count, c, h, w] });
  }
  return imagesToTensor(b.pixels, b.count, h, w, c);
}

async function open(source: DetectorSource, bundleLoad: WorkerInit["bundleLoad"]): Promise<CalibratedDetector> {
  // The warnings travel in the ready message's info; the caller logs them once, not once per worker.
  if (source.kind === "bundle") return openDetector(source.dir, { ...bundleLoad, onWarning: () => undefined });
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
    return badexpertDetector(new BadExpertDetector({ model, expert, auxiliary }, source.info), weightsTrust(source));
  } catch (e) {
    for (const m of Object.values(made)) m.dispose();
    throw e;
  }
}

/**
 * Any kind on libtorch. A detector that draws randomness seeds each input from its pixels
 * (CalibratedDetector.judge), so it answers the same for an image whatever batch it lands in.
 * Scores that are not finite stay as they are: they are flagged, and the caller says why.
 */
export function libtorchEngine(det: CalibratedDetector): Engine {
  const info = servedInfo(det);
  return {
    info,
    detector: det,
    explainer: det.badexpert,
    score: (b) => Promise.resolve(tidy(() => det.judge(batchTensor(b, info)))),
    dispose: () => Promise.resolve(det.dispose()),
  };
}

/** Exports BaDExpert in memory and frees the libtorch models: the graph holds its own copy of the weights. */
async function onnxEngine(det: CalibratedDetector, threads: number): Promise<Engine> {
  const info = servedInfo(det);
  const d = det.badexpert;
  if (d === null) {
    det.dispose();
    throw new Error(
      `the ${det.kind} detector scores with libtorch only, not onnxruntime (onnxruntime runs BaDExpert's exported graph)`,
    );
  }
  let onnx: OnnxDetector;
  try {
    onnx = await OnnxDetector.fromDetector(d, { threads });
  } finally {
    det.dispose();
  }
  return {
    info,
    detector: null,
    explainer: null,
    score: async (b) => {
      const x =
        b.pixels instanceof Float32Array
          ? b.pixels
          : tidy(() => batchTensor(b, info).contiguous().data() as Float32Array);
      const r = await onnx.scoreBatch(x, b.count);
      return {
        pred: r.pred,
        expertConfidence: r.expertConfidence,
        auxiliaryConfidence: r.auxiliaryConfidence,
        score: r.score,
        flagged: r.flagged,
      };
    },
    dispose: () => onnx.release(),
  };
}

export async function buildEngine(init: WorkerInit): Promise<Engine> {
  const det = await open(init.source, init.bundleLoad);
  return init.engine === "onnxruntime" ? onnxEngine(det, init.threads) : libtorchEngine(det);
}
