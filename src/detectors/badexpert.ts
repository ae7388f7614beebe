// BaDExpert as one entry of the detector registry: the defense (defense/procedure.ts,
// defense/fit.ts, defense/detector.ts) behind the InputDetector interface, so that it is
// calibrated and measured by exactly the same code as the baselines.
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { ParamValue } from "../attacks/attack.js";
import { numberParam } from "../attacks/params.js";
import type { BadExpertDetector } from "../defense/detector.js";
import { DEFAULT_TARGET_FPR, finetuneAugment } from "../defense/defaults.js";
import { makeExpertAndAuxiliary } from "../defense/procedure.js";
import { fitBadExpert, type FitDefenseOptions } from "../defense/fit.js";
import { assertScoreRule, SCORE_RULES } from "../defense/scores.js";
import type { DetectorContext, InputDetector, RawScores } from "./detector.js";
import { stringParam, type DetectorParamTable } from "./params.js";

export const BADEXPERT_PARAMS: DetectorParamTable = {
  unlearnLr: { type: "number", default: 0, min: 0, description: "Adam learning rate of B's unlearning (one epoch); 0: unlearn until B forgets the clean task, as defend does" },
  finetuneLr: { type: "number", default: 0, min: 0, description: "SGD learning rate of M''s clean finetuning; 0: the strongest rate that keeps M''s clean accuracy, as defend chooses it" },
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
    const seed = numberParam(params, "seed");
    const augment = finetuneAugment(ctx.dataset);
    const meta = { spec: ctx.spec, preprocessing: ctx.preprocessing, classNames: ctx.classNames };
    const unlearnLr = numberParam(params, "unlearnLr");
    const finetuneLr = numberParam(params, "finetuneLr");
    const t0 = Date.now();
    const made = await makeExpertAndAuxiliary(ctx.model, meta, reserved, calibration, {
      ...(unlearnLr > 0 ? { unlearnLr } : {}),
      ...(finetuneLr > 0 ? { finetuneLr } : {}),
      augment,
      seed,
      silent: true,
      log: (l) => log(`badexpert: ${l}`),
    });
    const selectionSeconds = (Date.now() - t0) / 1000;
    const options: FitDefenseOptions = { unlearn: made.unlearn, finetune: made.finetune, augment, rule, targetFpr: DEFAULT_TARGET_FPR, seed, silent: true };
    const det = await fitBadExpert(ctx.model, meta, reserved, calibration, options, { ...(made.expert ? { expert: made.expert } : {}), ...(made.auxiliary ? { auxiliary: made.auxiliary } : {}) });
    return new BadExpertEntry(det, params, { unlearnLr: made.unlearn.lr, unlearnLrSource: unlearnLr > 0 ? "given" : "until-forgotten", selectionSeconds, finetuneLr: made.finetune.lr });
  }

  scoreBatch(x: Tensor): RawScores {
    const r = this.detector.scoreBatch(x);
    return { pred: r.pred, score: Float64Array.from(r.score) };
  }

  dispose(): void {
    this.detector.dispose();
  }
}
