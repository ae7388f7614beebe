// The messages between the HTTP thread and a scoring worker. Pixels travel as transferred
// buffers (no copy); results come back as typed arrays, one entry per image of the batch.
import type { SaliencyMethod } from "../forensics/saliency.js";
import type { BundleLoad, DetectorSource } from "./source.js";
import type { ServedInfo } from "./served-info.js";

/** Which runtime runs the forward passes: libtorch, or BaDExpert's exported ONNX graph on onnxruntime (baselines: libtorch only). */
export type ScoringEngine = "libtorch" | "onnxruntime";

export interface WorkerInit {
  source: DetectorSource;
  threads: number;
  /** See ServeOptions.engine. */
  engine: ScoringEngine;
  /** See ServeOptions.bundleLoad. */
  bundleLoad: BundleLoad;
  /**
   * Run this worker's thread at the lowest CPU priority (the explain worker): it then gets only
   * the CPU time that the scoring workers and the HTTP thread leave idle, so a flood of flagged
   * inputs cannot slow the filter itself.
   */
  background?: boolean;
}

/** A batch: `count` images of the model's size, uint8 NHWC, back to back. */
export interface ScoreRequest {
  type: "score";
  id: number;
  count: number;
  pixels: Uint8Array;
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
  /** b and a per input (BaDExpert); null for a baseline detector, which has no B or M'. */
  expertConfidence: Float32Array | null;
  auxiliaryConfidence: Float32Array | null;
  score: Float64Array;
  flagged: Uint8Array;
  /** The detector that scored this batch ("badexpert" or a baseline's name) and its threshold (a reload may change both). */
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
