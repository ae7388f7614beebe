// BadNet all-to-all: the BadNet patch, but a poisoned sample of class y is relabelled to
// (y + 1) mod C, so the backdoor shifts every class by one. Poisoned samples are drawn from all
// classes; the attack success rate counts every test image with target (y + 1) mod C.
//
// Parameters:
//   targetClass  0      unused by the label mapping; kept so every attack has one
//   rate         0.003  fraction of the training set poisoned
//   cells        3      checkerboard side, in cells (as BadNet)
//   margin       1      distance from the bottom-right corner, in cells (as BadNet)
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BadNet, BADNET_PARAMS } from "./badnet.js";
import type { PoisonPlan } from "./base.js";
import { TARGET_CLASS, numberParam, type ParamTable } from "./params.js";
import { candidates, choose, countFromRate } from "./sampling.js";

export const BADNET_ALL_TO_ALL_PARAMS: ParamTable = {
  ...BADNET_PARAMS,
  targetClass: { ...TARGET_CLASS, description: "not used: the target of class y is (y + 1) mod C" },
};

export class BadNetAllToAll extends BadNet {
  constructor(params: AttackParams, spec: ImageSpec) {
    super(params, spec, {
      name: "badnet-all-to-all",
      description: "BadNet patch; a poisoned sample of class y is relabelled to (y + 1) mod C",
      kind: "all-to-all",
      targeting: "all-to-all",
    });
  }

  protected override plan(train: ImageDataset, rng: Rng): PoisonPlan {
    const rate = numberParam(this.params, "rate");
    const n = countFromRate(rate, train.count);
    const c = this.spec.numClasses;
    const poison = choose(
      candidates(train, () => true),
      n,
      rng,
      () => `attack '${this.name}': rate ${rate} asks for ${n} poisoned samples of ${train.count}`,
    );
    return { poison, cover: new Int32Array(0), poisonLabel: (y) => (y + 1) % c };
  }
}
