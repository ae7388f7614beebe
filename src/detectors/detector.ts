// What every input-level backdoor detector is, BaDExpert and the baselines alike: built from the
// suspicious model M and the defender's reserved clean set, it scores a batch of images (higher =
// more suspicious) and reports M's own prediction, so that the same threshold and metric code
// (defense/threshold.ts, defense/metrics.ts) judges every detector.
import type { Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import type { ParamValue } from "../attacks/attack.js";

/** The suspicious model and how it reads images. The model is the caller's: detectors never dispose it. */
export interface DetectorContext {
  model: Module;
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  /** Dataset name (per-dataset defaults, e.g. BaDExpert's finetuning recipe). */
  dataset: string;
}

export interface RawScores {
  /** M's predicted class for each input. */
  pred: Int32Array;
  /** Higher = more suspicious. May hold NaN or ±Infinity; scoring.ts turns them into +Infinity (flagged). */
  score: Float64Array;
}

export interface InputDetector {
  readonly name: string;
  /** The resolved parameters it was built with (see docs/baselines.md). */
  readonly params: Readonly<Record<string, ParamValue>>;
  /** Facts found while fitting (chosen layers, class means, timings) for the report. */
  readonly fitted: Readonly<Record<string, unknown>>;
  /** Scores x: float [N, C, H, W] in [0, 1], not normalised (each detector normalises for M itself). */
  scoreBatch(x: Tensor): RawScores;
  /**
   * What a bundle must keep to rebuild the fitted detector from M without the reserved data (JSON
   * facts and tensors the detector still owns); absent for detectors with their own bundle format.
   */
  state?(): DetectorState;
  /** Frees what the detector owns (copies of models, buffers); never the context's model. */
  dispose(): void;
}

export interface DetectorState {
  json: Record<string, unknown>;
  tensors: Map<string, Tensor>;
}

/** Checks that a batch fits the model, naming the expected and the actual shape. */
export function checkBatch(detector: string, x: Tensor, p: Preprocessing): void {
  const s = x.shape;
  const [h, w] = p.imageSize;
  if (s.length !== 4 || s[1] !== p.channels || s[2] !== h || s[3] !== w) {
    throw new RangeError(`${detector}.scoreBatch: x must be [N, ${p.channels}, ${h}, ${w}] images in [0, 1], got shape [${s.join(", ")}]`);
  }
}
