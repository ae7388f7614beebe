// Blend (Chen et al. 2017): every pixel is mixed with a full-image pattern, x' = (1 − α)·x + α·P.
// P is seeded uniform noise generated at the image's size and channel count (the paper's
// random-noise variant; no third-party picture). Poisoned samples, drawn from the classes other
// than the target, are relabelled to the target.
//
// Parameters:
//   targetClass  0      the class triggered inputs are mapped to
//   rate         0.003  fraction of the training set poisoned
//   alpha        0.2    blend weight of the pattern, in training and at test time
//   patternSeed  0      seed of the noise pattern
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type PoisonPlan } from "./base.js";
import { checkImages } from "./canvas.js";
import { noisePattern } from "./patterns.js";
import { PATTERN_SEED, TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const BLEND_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003),
  alpha: { type: "number", default: 0.2, above: 0, max: 1, description: "blend weight of the pattern" },
  patternSeed: PATTERN_SEED,
};

/** (1 − α·m)·x + α·m·P, with m an optional [N or 1, 1, H, W] mask (none: the whole image). */
export function blendWith(x: Tensor, pattern: Float32Array, alpha: number, mask?: Tensor): Tensor {
  return tidy(() => {
    const [, c, h, w] = x.shape as [number, number, number, number];
    const p = tensor(pattern, { shape: [1, c, h, w] });
    if (!mask) return x.mul(1 - alpha).add(p.mul(alpha));
    const a = mask.mul(alpha);
    return x.mul(a.rsub(1)).add(p.mul(a));
  });
}

export class Blend extends BaseAttack {
  readonly pattern: Float32Array;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "blend",
        description: "full-image noise pattern blended in at alpha 0.2; poisoned samples relabelled to the target",
        kind: "dirty-label",
        targeting: "all-to-one",
      },
      params,
      spec,
    );
    this.pattern = noisePattern(spec, numberParam(params, "patternSeed"));
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    return blendWith(x, this.pattern, numberParam(this.params, "alpha"));
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    const t = this.targetClass;
    return {
      poison: this.choosePoisonOutsideTarget(train, numberParam(this.params, "rate"), rng),
      cover: new Int32Array(0),
      poisonLabel: () => t,
    };
  }
}
