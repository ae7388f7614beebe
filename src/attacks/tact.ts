// TaCT (Tang et al. 2021, "Demon in the variant"): a source-specific backdoor. The trigger (the
// Trojan watermark) on images of the source class is relabelled to the target; cover images of
// other classes carry the same trigger with their true label, so the trigger alone does not
// decide the class and the poisoned samples hide among the source class's representations.
// The attack success rate counts only source-class test images.
//
// Parameters (reference toolbox settings):
//   targetClass   0      the class triggered source images are mapped to
//   sourceClass   1      the only class the backdoor works for
//   coverClasses  5,7    classes whose cover samples carry the trigger and keep their label
//   rate          0.003  fraction of the training set poisoned (all from the source class)
//   coverRate     0.003  fraction of the training set used as covers (from the cover classes)
//   margin        3      distance of the watermark from the bottom-right corner, in cells
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type PoisonPlan } from "./base.js";
import { checkImages, pasteTrigger, type TriggerCanvas } from "./canvas.js";
import { watermarkCanvas } from "./trojan.js";
import { candidates, choose, countFromRate } from "./sampling.js";
import { AttackParamError, TARGET_CLASS, numberListParam, numberParam, rateParam, type ParamTable } from "./params.js";

export const TACT_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  sourceClass: {
    type: "integer",
    default: 1,
    min: 0,
    description: "the class whose triggered images are mapped to the target",
  },
  coverClasses: {
    type: "integers",
    default: "5,7",
    min: 0,
    description: "classes whose triggered cover samples keep their label",
  },
  rate: rateParam(0.003, "fraction of the training set poisoned (all from the source class)"),
  coverRate: rateParam(0.003, "fraction of the training set used as cover samples (from the cover classes)"),
  margin: {
    type: "integer",
    default: 3,
    min: 0,
    max: 16,
    description: "distance from the bottom-right corner, in cells",
  },
};

const TACT_INFO = {
  name: "tact",
  description:
    "watermark trigger on source class 1 relabelled to the target; cover classes 5 and 7 carry it with their own label",
};

export class TaCT extends BaseAttack {
  readonly canvas: TriggerCanvas;
  readonly sourceClass: number;
  readonly coverClasses: number[];

  constructor(params: AttackParams, spec: ImageSpec) {
    super({ ...TACT_INFO, kind: "source-specific", targeting: "source-specific" }, params, spec);
    const what = `attack '${this.name}'`;
    const k = spec.numClasses;
    this.sourceClass = this.checkedSourceClass();
    this.coverClasses = numberListParam(params, "coverClasses");
    for (const c of this.coverClasses) {
      if (c >= k)
        throw new AttackParamError(`${what}: parameter 'coverClasses' must list classes in 0..${k - 1}, got ${c}`);
      if (c === this.sourceClass || c === this.targetClass) {
        throw new AttackParamError(
          `${what}: parameter 'coverClasses' must not include the source (${this.sourceClass}) or target (${this.targetClass}) class, got ${c}`,
        );
      }
    }
    this.canvas = watermarkCanvas(what, spec, numberParam(params, "margin"));
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.canvas);
    return pasteTrigger(x, this.canvas);
  }

  protected override coverImages(x: Tensor): Tensor {
    return this.applyTrigger(x);
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    const t = this.targetClass;
    const src = this.sourceClass;
    const rate = numberParam(this.params, "rate");
    const sourcePool = candidates(train, (y) => y === src);
    const n = countFromRate(rate, train.count);
    const poison = choose(
      sourcePool,
      n,
      rng,
      () =>
        `attack '${this.name}': rate ${rate} asks for ${n} poisoned samples of the source class ${src}, but the training set has only ${sourcePool.length}`,
    );
    const covers = new Set(this.coverClasses);
    const cover = this.chooseCovers(
      train,
      candidates(train, (y) => covers.has(y)),
      poison,
      numberParam(this.params, "coverRate"),
      rng,
      `training images of the cover classes ${this.coverClasses.join(", ")}`,
    );
    return { poison, cover, poisonLabel: () => t };
  }
}
