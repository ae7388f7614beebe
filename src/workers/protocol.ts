// The messages between a scoring worker and its owner (the service's HTTP thread, or the
// library's Detector). Pixels travel as transferred buffers (no copy); results come back as
// typed arrays, one entry per image of the batch.
import type { SaliencyMethod } from "../forensics/saliency.js";
import type { BundleLoad, DetectorSource } from "./source.js";
import type { ServedInfo } from "./served-info.js";

/** Which runtime runs the forward passes: libtorch (every kind), or BaDExpert's exported ONNX graph on onnxruntime. */
export type ScoringEngine = "libtorch" | "onnxruntime";

export interface WorkerInit {
  source: DetectorSource;
  threads: number;
  engine: ScoringEngine;
  /** How a bundle source is opened: a verification key, a required signature (BundleLoad in source.ts). */
  bundleLoad: BundleLoad;
  /**
   * Run this worker's thread at the lowest CPU priority (the explain worker): it then gets only
   * the CPU time that the scoring workers and the HTTP thread leave idle, so a flood of flagged
   * inputs cannot slow the filter itself.
   */
  background?: boolean;
}

/** A batch: `count` images of the model's size, uint8 NHWC back to back, or float32 NCHW in [0, 1]. */
export interface ScoreRequest {
  type: "score";
  id: number;
  count: number;
  pixels: Uint8Array | Float32Array;
}

/** Flagged images to explain (the dashboard's overlays): same layout as a batch, with M's predictions. */
export interface ExplainRequest {
  type: "explain";
  id: number;
  count: number;
  pixels: Uint8Array;
  preds: Int32Array;
  method: SaliencyMethod;
}

export type ToWorker = ScoreRequest | ExplainRequest | { type: "close" };

export interface ExplainResult {
  /** One PNG overlay per image (the saliency of B over the image, at the model's input size). */
  overlays: Uint8Array[];
  /** Each map's top pixel, row-major index (where B looks most). */
  peaks: Int32Array;
  explainMs: number;
}

export interface BatchResult {
  pred: Int32Array;
  /** b and a per input (BaDExpert); null for a detector without B and M'. */
  expertConfidence: Float32Array | null;
  auxiliaryConfidence: Float32Array | null;
  score: Float64Array;
  flagged: Uint8Array;
  /** The kind of detector that scored this batch ("badexpert", "strip", ...) (a reload may change it). */
  detector: string;
  /** The threshold of the detector that scored this batch (a reload may change it). */
  threshold: number;
  /** Time of the detector's forward passes, for the inference-time metric. */
  forwardMs: number;
  /** Live tensors in the worker after the batch: must stay at the models' own count. */
  liveTensors: number;
}

export type FromWorker =
  | { type: "ready"; info: ServedInfo; threads: number; liveTensors: number; backgroundError?: string }
  | { type: "failed"; message: string }
  | ({ type: "scored"; id: number } & BatchResult)
  | ({ type: "explained"; id: number } & ExplainResult)
  | { type: "error"; id: number; message: string }
  | { type: "closed"; liveTensors: number };
