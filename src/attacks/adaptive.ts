// What Adaptive-Blend and Adaptive-Patch share: poison and cover samples both carry a weakened,
// randomised training trigger (poison samples are relabelled to the target, covers keep their
// label), so the backdoor does not form the tight latent cluster that simple defenses look for.
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import { BaseAttack, type AlterStep, type PoisonPlan } from "./base.js";

export abstract class AdaptiveAttack extends BaseAttack {
  /** The randomised, weakened trigger used on training samples (test time uses applyTrigger). */
  abstract trainingTrigger(x: Tensor, rng: Rng): Tensor;

  protected override poisonImages(x: Tensor, step: AlterStep): Tensor {
    return this.trainingTrigger(x, step.rng);
  }

  protected override coverImages(x: Tensor, step: AlterStep): Tensor {
    return this.trainingTrigger(x, step.rng);
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return this.planWithCovers(train, rng);
  }
}
