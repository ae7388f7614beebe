// What BadNet and Trojan share: a fixed trigger pasted under its mask at full opacity, and
// dirty-label all-to-one poisoning (samples from other classes relabelled to the target).
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type AttackInfo, type PoisonPlan } from "./base.js";
import { checkImages, pasteTrigger, type TriggerCanvas } from "./canvas.js";
import { numberParam } from "./params.js";

export abstract class PatchAttack extends BaseAttack {
  readonly canvas: TriggerCanvas;

  constructor(info: AttackInfo, params: AttackParams, spec: ImageSpec, makeCanvas: (what: string) => TriggerCanvas) {
    super(info, params, spec);
    this.canvas = makeCanvas(`attack '${this.name}'`);
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.canvas);
    return pasteTrigger(x, this.canvas);
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
