// What every input-level backdoor detector is, BaDExpert and the baselines alike: built from the
// suspicious model M and the defender's reserved clean set, it scores a batch of images (higher =
// more suspicious) and reports M's own prediction, so that the same threshold and metric code
// (defense/threshold.ts, defense/metrics.ts) judges every detector.
import type { Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import type { ParamValue } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { ScoreRule } from "../defense/scores.js";
import type { Calibration } from "../defense/threshold.js";

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
  /** b and a: B's and M''s confidence in M's prediction (BaDExpert only). */
  expertConfidence?: Float32Array;
  auxiliaryConfidence?: Float32Array;
}

export interface ScoreOptions {
  /** One seed per input (an unsigned 32-bit integer each; see inputSeeds in input-seeds.ts). */
  seeds?: ArrayLike<number>;
}

/** Checks that `o.seeds`, when given, has one integer seed per input of a batch of `n`. */
export function checkSeeds(detector: string, o: ScoreOptions | undefined, n: number): ArrayLike<number> | undefined {
  const seeds = o?.seeds;
  if (seeds === undefined) return undefined;
  if (seeds.length !== n)
    throw new RangeError(`${detector}.scoreBatch: seeds must have one entry per input (${n}), got ${seeds.length}`);
  for (let i = 0; i < n; i++) {
    if (!Number.isInteger(seeds[i]))
      throw new RangeError(`${detector}.scoreBatch: seeds[${i}] must be an integer, got ${seeds[i]}`);
  }
  return seeds;
}

export interface InputDetector {
  readonly name: string;
  /** The resolved parameters it was built with (see docs/baselines.md). */
  readonly params: Readonly<Record<string, ParamValue>>;
  /** Facts found while fitting (chosen layers, class means, timings) for the report. */
  readonly fitted: Readonly<Record<string, unknown>>;
  /**
   * Scores x: float [N, C, H, W] in [0, 1], not normalised (each detector normalises for M itself).
   * A detector that draws randomness from a seeded stream (STRIP, SentiNet) takes `o.seeds`, one
   * per input, so an input's score depends only on the input and its seed, not on its batch or on
   * earlier calls; the others ignore it.
   */
  scoreBatch(x: Tensor, o?: ScoreOptions): RawScores;
  /**
   * What a bundle must keep to rebuild the fitted detector from M without the reserved data (JSON
   * facts and tensors the detector still owns); absent for detectors with their own bundle format.
   */
  state?(): DetectorState;
  /**
   * The threshold at `targetFpr` on clean calibration images, where the detector has its own way
   * (BaDExpert: its score rule's ceiling); absent: calibrate.ts's, the same for every baseline.
   */
  calibrate?(calibration: ImageDataset, targetFpr: number): Calibration;
  /** The same detector judged by a calibration of its own (BaDExpert: its threshold lives with its models). */
  withCalibration?(calibration: Calibration): InputDetector;
  /** The same detector under another score rule, sharing its models (BaDExpert only); calibrate it before use. */
  withRule?(rule: ScoreRule): InputDetector;
  /** BaDExpert's models M, B and M' (what explaining and ONNX export need); absent for the baselines. */
  readonly badexpert?: BadExpertDetector;
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
    throw new RangeError(
      `${detector}.scoreBatch: x must be [N, ${p.channels}, ${h}, ${w}] images in [0, 1], got shape [${s.join(", ")}]`,
    );
  }
}
