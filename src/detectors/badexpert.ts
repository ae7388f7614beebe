// BaDExpert as one entry of the detector registry: the unchanged defense (defense/fit.ts,
// defense/canary.ts, defense/detector.ts) behind the InputDetector interface, so that it is
// calibrated and measured by exactly the same code as the baselines.
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { ParamValue } from "../attacks/attack.js";
import { booleanParam, numberParam } from "../attacks/params.js";
import type { BadExpertDetector } from "../defense/detector.js";
import { auxiliaryRateCandidates, canaryFinetune, choosesFinetuneLr, choosesUnlearnLr, defenseDefaults } from "../defense/defaults.js";
import { fitBadExpert, type FitDefenseOptions } from "../defense/fit.js";
import { selectUnlearnLr } from "../defense/canary.js";
import { selectFinetuneLr } from "../defense/auxiliary-rate.js";
import type { Module } from "../nn/index.js";
import { assertScoreRule, SCORE_RULES } from "../defense/scores.js";
import type { DetectorContext, InputDetector, RawScores } from "./detector.js";
import { stringParam, type DetectorParamTable } from "./params.js";

export const BADEXPERT_PARAMS: DetectorParamTable = {
  unlearnLr: { type: "number", default: 0, min: 0, description: "Adam learning rate of B's unlearning; 0: the architecture's default (the paper's rate, else the defender-side canary selection)" },
  finetuneLr: { type: "number", default: 0, min: 0, description: "SGD learning rate of M''s clean finetuning; 0: the architecture's default (for the compact CNN: chosen as autoFinetune does)" },
  autoFinetune: { type: "boolean", default: false, description: "choose M''s rate as `defend --finetune-lr auto` does (the strongest of 1, 2, 5, 10x the default that keeps M''s calibration accuracy within 4 points of M's); overrides finetuneLr; the default for the compact CNN when finetuneLr is 0" },
  rule: { type: "names", default: "triangle", choices: SCORE_RULES, description: "score rule (defense/scores.ts)" },
  seed: { type: "integer", default: 0, min: 0, description: "seed of the finetuning runs" },
};

export class BadExpertEntry implements InputDetector {
  readonly name = "badexpert";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly detector: BadExpertDetector;

  private constructor(detector: BadExpertDetector, params: Readonly<Record<string, ParamValue>>, fitted: Record<string, unknown>) {
    this.detector = detector;
    this.params = params;
    this.fitted = fitted;
  }

  static async fit(ctx: DetectorContext, reserved: ImageDataset, calibration: ImageDataset, params: Readonly<Record<string, ParamValue>>, log: (l: string) => void): Promise<BadExpertEntry> {
    const rule = assertScoreRule(stringParam(params, "rule"), "badexpert rule");
    const d = defenseDefaults(ctx.spec.name, ctx.dataset);
    const given = numberParam(params, "unlearnLr");
    const options: FitDefenseOptions = { unlearn: { ...d.unlearn }, finetune: d.finetune, augment: d.augment, rule, targetFpr: d.targetFpr, seed: numberParam(params, "seed"), silent: true };
    const meta = { spec: ctx.spec, preprocessing: ctx.preprocessing, classNames: ctx.classNames };
    let source = given > 0 ? "given" : d.unlearnLrSource;
    let selectionSeconds = 0;
    if (given > 0) options.unlearn.lr = given;
    else if (choosesUnlearnLr(d, undefined, false)) {
      log("badexpert: choosing the unlearning rate with two canary backdoors (defender-side data only)");
      const sel = await selectUnlearnLr(ctx.model, meta, reserved, calibration, { ...options, finetune: canaryFinetune(d), log: () => {} });
      options.unlearn.lr = sel.lr;
      selectionSeconds = sel.seconds;
      if (!sel.conclusive) source = "canary-inconclusive";
    }
    // As in defend: the canaries above were planted at the default rate; M''s own rate is set after.
    const givenFinetune = numberParam(params, "finetuneLr");
    if (givenFinetune > 0) options.finetune = { ...options.finetune, lr: givenFinetune };
    let auxiliary: Module | undefined;
    let finetuneSelectionSeconds = 0;
    if (choosesFinetuneLr(d, booleanParam(params, "autoFinetune") ? "auto" : givenFinetune > 0 ? givenFinetune : undefined)) {
      log("badexpert: choosing the finetuning rate of M' (the strongest that keeps its calibration accuracy)");
      const chosen = await selectFinetuneLr(ctx.model, meta, reserved, calibration, { finetune: d.finetune, candidates: auxiliaryRateCandidates(d), augment: options.augment, seed: options.seed, log: () => {} });
      auxiliary = chosen.auxiliary;
      options.finetune = { ...options.finetune, lr: chosen.selection.lr };
      finetuneSelectionSeconds = chosen.selection.seconds;
    }
    const det = await fitBadExpert(ctx.model, meta, reserved, calibration, options, auxiliary ? { auxiliary } : {});
    return new BadExpertEntry(det, params, { unlearnLr: options.unlearn.lr, unlearnLrSource: source, selectionSeconds, finetuneLr: options.finetune.lr, finetuneSelectionSeconds });
  }

  scoreBatch(x: Tensor): RawScores {
    const r = this.detector.scoreBatch(x);
    return { pred: r.pred, score: Float64Array.from(r.score) };
  }

  dispose(): void {
    this.detector.dispose();
  }
}
