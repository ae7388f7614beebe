// SIG (Barni et al. 2019): a clean-label attack. A horizontal sinusoid
// Δ·sin(2π·j·f/m) (j the column, m the width) is added to target-class training images, which
// keep their label; at test time the same signal on any image pulls it to the target.
//
// Parameters:
//   targetClass  0       the target class (only its images are poisoned)
//   rate         0.02    fraction of the training set poisoned, all drawn from the target class
//   delta        20/255  amplitude Δ of the signal (the SIG paper used 30/255 for testing; 20/255 is common)
//   frequency    6       periods f across the image width
// The result is clamped to [0, 1].
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type PoisonPlan } from "./base.js";
import { checkImages } from "./canvas.js";
import { TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const SIG_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.02, "fraction of the training set poisoned (all from the target class)"),
  delta: {
    type: "number",
    default: 20 / 255,
    above: 0,
    max: 1,
    description: "amplitude of the sinusoid (accepts 20/255)",
  },
  frequency: { type: "number", default: 6, above: 0, description: "periods across the image width" },
};

/** Δ·sin(2π·j·f/m) for j = 0..m−1. */
export function sigSignal(width: number, delta: number, frequency: number): Float32Array {
  return Float32Array.from({ length: width }, (_, j) => delta * Math.sin((2 * Math.PI * j * frequency) / width));
}

export class Sig extends BaseAttack {
  readonly signal: Float32Array;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "sig",
        description: "horizontal sinusoid added to target-class images, which keep their label (clean label)",
        kind: "clean-label",
        targeting: "all-to-one",
      },
      params,
      spec,
    );
    this.signal = sigSignal(spec.width, numberParam(params, "delta"), numberParam(params, "frequency"));
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    return tidy(() => x.add(tensor(this.signal, { shape: [1, 1, 1, this.spec.width] })).clamp(0, 1));
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return {
      poison: this.choosePoisonInTarget(train, numberParam(this.params, "rate"), rng),
      cover: new Int32Array(0),
      poisonLabel: (y) => y,
    };
  }
}
