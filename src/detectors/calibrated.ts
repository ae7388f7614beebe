// A detector ready to judge inputs, whatever its kind: a fitted InputDetector (BaDExpert or a
// baseline), its calibrated threshold, where it came from and what loading it established. What a
// bundle holds (open.ts reads and writes one) and what `defend` builds, `scan`, `explain`,
// `evaluate-defense`, `compare`, the service and the library's Detector all score with.
import { tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { ParamValue } from "../attacks/attack.js";
import type { BundleTrust } from "../defense/bundle.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { ScoreRule } from "../defense/scores.js";
import type { DefenseSplitSpec } from "../defense/splits.js";
import type { Calibration } from "../defense/threshold.js";
import type { AttackRecord, ModelSpec, Preprocessing } from "../train/checkpoint.js";
import type { InputDetector } from "./detector.js";
import { calibrateDetector } from "./calibrate.js";
import { inputSeeds } from "./input-seeds.js";
import { flagged } from "./scoring.js";

/** Where a detector came from: what `evaluate-defense` rebuilds its splits and default attack from. */
export interface DetectorOrigin {
  /** The clean data it was fitted and calibrated on (null: not recorded, e.g. fitted directly with the library). */
  dataset: { name: string; path?: string } | null;
  splits: DefenseSplitSpec | null;
  /** The suspicious model's checkpoint directory (where an attack's artefacts, e.g. a trigger network, are stored). */
  checkpoint: string | null;
  /**
   * SHA-256 of that checkpoint's weights where the bundle depends on it (a baseline is rebuilt on
   * M from there, checked against this on load); null where the bundle holds M itself (BaDExpert).
   */
  checkpointSha256: string | null;
  /** The attack the checkpoint's training record names (evaluate-defense's default). */
  attack: AttackRecord | null;
}

/** One batch judged: M's prediction, the score, the verdict; b and a where the detector has B and M'. */
export interface Judgement {
  pred: Int32Array;
  /** Higher = more suspicious; NaN or ±Infinity where the detector could not judge (then flagged). */
  score: Float64Array;
  /** 1 where flagged: score above the threshold, or no finite score, or no finite threshold (fail closed). */
  flagged: Uint8Array;
  /** b and a (BaDExpert); null for a detector without B and M'. */
  expertConfidence: Float32Array | null;
  auxiliaryConfidence: Float32Array | null;
}

export interface CalibratedParts {
  kind: string;
  scorer: InputDetector;
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  calibration: Calibration;
  origin: DetectorOrigin;
  /** Whether scoring draws randomness per input (seeded from its pixels under `inputSeedKey`). */
  seeded: boolean;
  inputSeedKey: Uint8Array | null;
  trust: BundleTrust;
  /** Frees what this detector owns (the scorer, and the model a baseline was rebuilt on). */
  release: () => void;
}

/** What a detector made in this process reports as its trust: nothing was verified. */
export const MADE_HERE_TRUST: BundleTrust = { signature: "unsigned", key: null, warnings: [] };

export class CalibratedDetector {
  readonly kind: string;
  /** The fitted detector: its scoreBatch gives the raw scores. */
  readonly scorer: InputDetector;
  readonly spec: ModelSpec;
  readonly preprocessing: Preprocessing;
  readonly classNames: string[];
  readonly calibration: Calibration;
  readonly origin: DetectorOrigin;
  readonly inputSeedKey: Uint8Array | null;
  readonly trust: BundleTrust;
  readonly #seeded: boolean;
  #release: (() => void) | null;

  constructor(p: CalibratedParts) {
    this.kind = p.kind;
    this.scorer = p.scorer;
    this.spec = p.spec;
    this.preprocessing = p.preprocessing;
    this.classNames = p.classNames;
    this.calibration = p.calibration;
    this.origin = p.origin;
    this.inputSeedKey = p.inputSeedKey;
    this.trust = p.trust;
    this.#seeded = p.seeded;
    this.#release = p.release;
  }

  get threshold(): number {
    return this.calibration.threshold;
  }

  get targetFpr(): number {
    return this.calibration.targetFpr;
  }

  /** BaDExpert's score rule; null for a detector without one. */
  get rule(): ScoreRule | null {
    return this.badexpert?.rule ?? null;
  }

  /** The resolved parameters it was built with. */
  get params(): Readonly<Record<string, ParamValue>> {
    return this.scorer.params;
  }

  /**
   * BaDExpert's three models, where the detector has them (null otherwise): what explaining (B's
   * saliency), exporting to one ONNX graph, other score rules and `--parts` need.
   */
  get badexpert(): BadExpertDetector | null {
    return this.scorer.badexpert ?? null;
  }

  /** Checks that images fit the model (size and channels) with a message naming both. */
  checkInput(height: number, width: number, channels: number, what = "input"): void {
    const [h, w] = this.preprocessing.imageSize;
    const c = this.preprocessing.channels;
    if (height !== h || width !== w || channels !== c) {
      throw new RangeError(
        `${what}: images are ${height}x${width}x${channels} but the detector's model takes ${h}x${w}x${c}`,
      );
    }
  }

  /**
   * Judges x: float [N, C, H, W] in [0, 1] at the model's size. A detector that draws randomness
   * gets one seed per input from the input's pixels, so an input scores the same in any batch.
   */
  judge(x: Tensor): Judgement {
    const s = x.shape;
    if (s.length !== 4) throw new RangeError(`${this.kind}: expected [N, C, H, W] images, got shape [${s.join(", ")}]`);
    this.checkInput(s[2] as number, s[3] as number, s[1] as number);
    const r = tidy(() => this.scorer.scoreBatch(x, this.#seeded ? { seeds: inputSeeds(x, this.inputSeedKey) } : {}));
    return {
      pred: r.pred,
      score: r.score,
      flagged: flagged(r.score, this.threshold),
      expertConfidence: r.expertConfidence ?? null,
      auxiliaryConfidence: r.auxiliaryConfidence ?? null,
    };
  }

  /**
   * The same detector with its threshold calibrated again on clean `calibration` images at
   * `targetFpr` (and, for BaDExpert, under another score rule). It shares this detector's models:
   * dispose this one, not the copy.
   */
  recalibrated(
    calibration: ImageDataset,
    o: { targetFpr?: number; rule?: ScoreRule; progressLabel?: string } = {},
  ): CalibratedDetector {
    if (o.rule !== undefined && this.scorer.withRule === undefined)
      throw new RangeError(`rule: score rules are BaDExpert's; this is a ${this.kind} detector`);
    const scorer = o.rule !== undefined && this.scorer.withRule ? this.scorer.withRule(o.rule) : this.scorer;
    const targetFpr = o.targetFpr ?? this.targetFpr;
    const cal = scorer.calibrate
      ? scorer.calibrate(calibration, targetFpr)
      : calibrateDetector(scorer, calibration, targetFpr, o.progressLabel ? { progressLabel: o.progressLabel } : {})
          .calibration;
    return new CalibratedDetector({
      kind: this.kind,
      scorer: scorer.withCalibration ? scorer.withCalibration(cal) : scorer,
      spec: this.spec,
      preprocessing: this.preprocessing,
      classNames: this.classNames,
      calibration: cal,
      origin: this.origin,
      seeded: this.#seeded,
      inputSeedKey: this.inputSeedKey,
      trust: this.trust,
      release: () => undefined,
    });
  }

  dispose(): void {
    const release = this.#release;
    this.#release = null;
    release?.();
  }
}
