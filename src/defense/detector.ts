// The BaDExpert detector: the suspicious model M, the backdoor expert B and the auxiliary model
// M', a score rule and a calibrated threshold. Scoring costs three forward passes per input.
import { inferenceMode, tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { normalize } from "../data/augment.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { Progress } from "../util/progress.js";
import { scoreOf, type ScoreRule } from "./scores.js";
import type { Calibration } from "./threshold.js";
import type { CreationRecord } from "./creation.js";

export interface BatchScores {
  /** M's predicted class. */
  pred: Int32Array;
  /** b: B's softmax probability of M's predicted class. */
  expertConfidence: Float32Array;
  /** c = 1 − b, computed as B's probabilities of the other classes summed (precise where b rounds to 1; scores.ts). */
  expertComplement: Float32Array;
  /** a: M''s softmax probability of M's predicted class. */
  auxiliaryConfidence: Float32Array;
  score: Float64Array;
  /**
   * 1 where the input is suspected: score > threshold, or no valid score, or no valid threshold.
   * Fails closed: a NaN score (broken weights, a NaN input) compares false with any threshold and
   * would otherwise pass; an uncalibrated (+Infinity) threshold would pass everything.
   */
  flagged: Uint8Array;
  /** 1 where the score is not a finite number (the input is flagged because it could not be judged). */
  invalid: Uint8Array;
}

/** Room for the scores of n inputs, filled batch by batch with putScores (both engines' scoreDataset). */
export function emptyScores(n: number): BatchScores {
  return {
    pred: new Int32Array(n),
    expertConfidence: new Float32Array(n),
    expertComplement: new Float32Array(n),
    auxiliaryConfidence: new Float32Array(n),
    score: new Float64Array(n),
    flagged: new Uint8Array(n),
    invalid: new Uint8Array(n),
  };
}

/** Copies one batch's scores into `out` at `at`: every field, so none is left at its zero (e.g. not flagged). */
export function putScores(out: BatchScores, r: BatchScores, at: number): void {
  out.pred.set(r.pred, at);
  out.expertConfidence.set(r.expertConfidence, at);
  out.expertComplement.set(r.expertComplement, at);
  out.auxiliaryConfidence.set(r.auxiliaryConfidence, at);
  out.score.set(r.score, at);
  out.flagged.set(r.flagged, at);
  out.invalid.set(r.invalid, at);
}

export interface DetectorInfo {
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  rule: ScoreRule;
  threshold: number;
  targetFpr: number;
  calibration: Calibration;
  /** How the detector was made (hyperparameters, data sizes, seed, timings, data and splits). */
  creation: CreationRecord;
}

export class BadExpertDetector {
  readonly model: Module;
  readonly expert: Module;
  readonly auxiliary: Module;
  readonly info: DetectorInfo;

  constructor(parts: { model: Module; expert: Module; auxiliary: Module }, info: DetectorInfo) {
    this.model = parts.model.eval();
    this.expert = parts.expert.eval();
    this.auxiliary = parts.auxiliary.eval();
    this.info = info;
  }

  /**
   * A detector whose threshold is not calibrated yet (+Infinity), for scoring calibration data or
   * comparing rules by their scores; calibrate it with withDecision(). Fails closed: until then it
   * flags every input (a threshold that is not a finite number cannot judge), and it cannot be
   * saved or exported (both refuse a threshold that is not a finite number).
   */
  static uncalibrated(
    parts: { model: Module; expert: Module; auxiliary: Module },
    meta: { spec: ModelSpec; preprocessing: Preprocessing; classNames: string[]; rule: ScoreRule; targetFpr?: number },
  ): BadExpertDetector {
    const targetFpr = meta.targetFpr ?? 0.01;
    const threshold = Number.POSITIVE_INFINITY;
    return new BadExpertDetector(parts, {
      ...meta,
      threshold,
      targetFpr,
      calibration: {
        threshold,
        targetFpr,
        count: 0,
        achievedFpr: 0,
        scoreMean: 0,
        scoreStd: 0,
        scoreQuantiles: { p50: 0, p90: 0, p99: 0 },
      },
      creation: {},
    });
  }

  get rule(): ScoreRule {
    return this.info.rule;
  }

  get threshold(): number {
    return this.info.threshold;
  }

  /** Same detector with another rule or threshold (shares the models; dispose only one of them). */
  withDecision(
    rule: ScoreRule,
    threshold: number,
    calibration: Calibration = this.info.calibration,
  ): BadExpertDetector {
    return new BadExpertDetector(this, {
      ...this.info,
      rule,
      threshold,
      calibration,
      targetFpr: calibration.targetFpr,
    });
  }

  /** Checks that images fit the model (size and channels) with a message naming both. */
  checkInput(height: number, width: number, channels: number, what = "input"): void {
    const [h, w] = this.info.preprocessing.imageSize;
    const c = this.info.preprocessing.channels;
    if (height !== h || width !== w || channels !== c) {
      throw new RangeError(
        `${what}: images are ${height}x${width}x${channels} but the detector's model takes ${h}x${w}x${c}`,
      );
    }
  }

  /** Scores x: float [N, C, H, W] in [0, 1] (not normalised). */
  scoreBatch(x: Tensor): BatchScores {
    const s = x.shape;
    if (s.length !== 4) throw new RangeError(`scoreBatch: expected [N, C, H, W] images, got shape [${s.join(", ")}]`);
    this.checkInput(s[2] as number, s[3] as number, s[1] as number);
    const { mean, std } = this.info.preprocessing;
    const [pred, b, c, a] = inferenceMode(() =>
      tidy(() => {
        const xn = normalize(x, mean, std);
        const p = this.model.forward(xn).argmax(1);
        const idx = p.unsqueeze(1);
        const probs = (m: Module) => m.forward(xn).softmax(1);
        const conf = (q: Tensor) => q.gather(1, idx).squeeze(1).data() as Float32Array;
        const pb = probs(this.expert);
        // 1 − b as a sum of the other classes' probabilities: no cancellation when b is near 1.
        const rest = pb.scatter(1, idx, 0).sum(1).data() as Float32Array;
        return [p.to({ dtype: "int32" }).data() as Int32Array, conf(pb), rest, conf(probs(this.auxiliary))] as const;
      }),
    );
    return this.#decide(pred, b, c, a);
  }

  /** Scores every image of a dataset, batch by batch. */
  scoreDataset(ds: ImageDataset, o: { batchSize?: number; progressLabel?: string } = {}): BatchScores {
    this.checkInput(ds.height, ds.width, ds.channels, ds.name);
    const n = ds.count;
    const out = emptyScores(n);
    const bar = o.progressLabel ? new Progress(o.progressLabel, n) : null;
    let at = 0;
    for (const batch of new DataLoader(ds, { batchSize: o.batchSize ?? 256 })) {
      const r = this.scoreBatch(batch.x);
      batch.x.dispose();
      batch.y.dispose();
      putScores(out, r, at);
      at += r.pred.length;
      bar?.tick(r.pred.length);
    }
    return out;
  }

  #decide(pred: Int32Array, b: Float32Array, c: Float32Array, a: Float32Array): BatchScores {
    const n = pred.length;
    const score = new Float64Array(n);
    const flagged = new Uint8Array(n);
    const invalid = new Uint8Array(n);
    const t = this.info.threshold;
    for (let i = 0; i < n; i++) {
      const s = scoreOf(this.info.rule, a[i] as number, b[i] as number, c[i] as number);
      score[i] = s;
      // Written so that NaN (score or threshold) lands on the flagged side, and so does a threshold
      // that was never calibrated (±Infinity).
      const bad = !Number.isFinite(s);
      invalid[i] = bad ? 1 : 0;
      flagged[i] = bad || !Number.isFinite(t) || s > t ? 1 : 0;
    }
    return { pred, expertConfidence: b, expertComplement: c, auxiliaryConfidence: a, score, flagged, invalid };
  }

  dispose(): void {
    this.model.dispose();
    this.expert.dispose();
    this.auxiliary.dispose();
  }
}
