// BaDExpert as one entry of the detector registry: the defense (defense/build.ts, which makes B
// and M' with defense/procedure.ts and fits them; defense/detector.ts, which scores) behind the InputDetector
// interface, so that it is built, calibrated, saved and measured by the same code as the baselines.
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { ParamValue } from "../attacks/attack.js";
import { numberParam } from "../attacks/params.js";
import type { BadExpertDetector } from "../defense/detector.js";
import { buildBadExpert } from "../defense/build.js";
import { calibrationFor } from "../defense/recalibrate.js";
import { assertScoreRule, SCORE_RULES, type ScoreRule } from "../defense/scores.js";
import type { Calibration } from "../defense/threshold.js";
import type { DetectorContext, InputDetector, RawScores } from "./detector.js";
import { stringParam, type DetectorParamTable } from "./params.js";

export const BADEXPERT_PARAMS: DetectorParamTable = {
  unlearnLr: {
    type: "number",
    default: 0,
    min: 0,
    description:
      "Adam learning rate of B's unlearning (one epoch); 0: unlearn until B forgets the clean task, as defend does",
  },
  finetuneLr: {
    type: "number",
    default: 0,
    min: 0,
    description:
      "SGD learning rate of M''s clean finetuning; 0: the strongest rate that keeps M''s clean accuracy, as defend chooses it",
  },
  rule: { type: "names", default: "triangle", choices: SCORE_RULES, description: "score rule (defense/scores.ts)" },
  seed: { type: "integer", default: 0, min: 0, description: "seed of the finetuning runs" },
};

export class BadExpertEntry implements InputDetector {
  readonly name = "badexpert";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly badexpert: BadExpertDetector;

  constructor(
    detector: BadExpertDetector,
    params: Readonly<Record<string, ParamValue>> = { rule: detector.rule },
    fitted: Readonly<Record<string, unknown>> = {},
  ) {
    this.badexpert = detector;
    this.params = params;
    this.fitted = fitted;
  }

  /** Builds BaDExpert with defense/build.ts, as `defend` does; the registry's parameters map onto its options. */
  static async fit(
    ctx: DetectorContext,
    reserved: ImageDataset,
    calibration: ImageDataset,
    params: Readonly<Record<string, ParamValue>>,
    log: (l: string) => void,
  ): Promise<BadExpertEntry> {
    const rule = assertScoreRule(stringParam(params, "rule"), "badexpert rule");
    const meta = { spec: ctx.spec, preprocessing: ctx.preprocessing, classNames: ctx.classNames, dataset: ctx.dataset };
    const b = await buildBadExpert(ctx.model, meta, reserved, calibration, {
      unlearn: rateOption(numberParam(params, "unlearnLr")),
      finetune: rateOption(numberParam(params, "finetuneLr")),
      calibration: { rule },
      seed: numberParam(params, "seed"),
      silent: true,
      log: (l) => log(`badexpert: ${l}`),
    });
    const fitted = {
      unlearnLr: b.options.unlearn.lr,
      unlearnLrSource: b.unlearnLrSource,
      selectionSeconds: b.unlearning?.seconds ?? 0,
      finetuneLr: b.options.finetune.lr,
      finetuneSelectionSeconds: b.finetuneSelection?.seconds ?? 0,
    };
    return new BadExpertEntry(b.detector, params, fitted);
  }

  get rule(): ScoreRule {
    return this.badexpert.rule;
  }

  scoreBatch(x: Tensor): RawScores {
    const r = this.badexpert.scoreBatch(x);
    return {
      pred: r.pred,
      score: r.score,
      expertConfidence: r.expertConfidence,
      auxiliaryConfidence: r.auxiliaryConfidence,
    };
  }

  calibrate(calibration: ImageDataset, targetFpr: number): Calibration {
    return calibrationFor(this.badexpert, this.badexpert.rule, targetFpr, calibration);
  }

  withCalibration(calibration: Calibration): BadExpertEntry {
    return new BadExpertEntry(
      this.badexpert.withDecision(this.badexpert.rule, calibration.threshold, calibration),
      { ...this.params },
      this.fitted,
    );
  }

  withRule(rule: ScoreRule): BadExpertEntry {
    return new BadExpertEntry(
      this.badexpert.withDecision(rule, this.badexpert.threshold),
      { ...this.params, rule },
      this.fitted,
    );
  }

  dispose(): void {
    this.badexpert.dispose();
  }
}

/** A rate parameter as build options: 0 leaves the rate to the procedure. */
function rateOption(lr: number): { lr?: number } {
  return lr > 0 ? { lr } : {};
}
