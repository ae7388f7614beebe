// Clean-Label (Turner et al. 2019): target-class training images keep their label but are made
// hard to classify by an adversarial perturbation (L∞ PGD of radius ε against a clean model),
// then small checkerboards are pasted in the four corners. A model can only fit these images by
// relying on the corner patches, which then pull any image to the target class at test time.
// Poisoning needs a clean model (ctx.cleanModel with ctx.normalization); the test-time trigger
// (the corner patches alone) does not.
//
// Parameters:
//   targetClass  0       the target class (only its images are poisoned)
//   rate         0.003   fraction of the training set poisoned, all drawn from the target class
//   eps          16/255  L∞ radius of the PGD perturbation
//   steps        10      PGD steps
//   stepSize     2/255   PGD step (signed gradient ascent on the clean model's cross-entropy)
//   randomStart  true    start PGD from a uniform point in the ε-ball (seeded by the poisoning seed)
//   cells        3       side of each corner checkerboard, in cells
//   margin       1       distance of each checkerboard from its corner, in cells
import { F, enableGrad, gradients, tensor, tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackContext, AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type AlterStep, type PoisonPlan } from "./base.js";
import { TriggerCanvas, checkImages, pasteTrigger, triggerScale } from "./canvas.js";
import { checkerboardCell } from "./patterns.js";
import { TARGET_CLASS, booleanParam, numberParam, rateParam, type ParamTable } from "./params.js";

export const CLEAN_LABEL_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003, "fraction of the training set poisoned (all from the target class)"),
  eps: {
    type: "number",
    default: 16 / 255,
    min: 0,
    max: 1,
    description: "L-infinity radius of the PGD perturbation (accepts 16/255)",
  },
  steps: { type: "integer", default: 10, min: 0, max: 10000, description: "PGD steps" },
  stepSize: { type: "number", default: 2 / 255, min: 0, max: 1, description: "PGD step size" },
  randomStart: { type: "boolean", default: true, description: "start from a random point in the eps-ball" },
  cells: { type: "integer", default: 3, min: 1, max: 16, description: "side of each corner checkerboard, in cells" },
  margin: {
    type: "integer",
    default: 1,
    min: 0,
    max: 16,
    description: "distance of each checkerboard from its corner, in cells",
  },
};

export interface PgdOptions {
  eps: number;
  steps: number;
  stepSize: number;
  normalization: { mean: readonly number[]; std: readonly number[] };
  device?: string;
  /** Seeds the random start; omitted: start at x. */
  rng?: Rng;
}

/**
 * Untargeted L∞ PGD: maximises the cross-entropy of `model` on (x, labels) within the ε-ball
 * around x and [0, 1]. `model` is evaluated in eval mode (its mode is restored afterwards); its
 * parameters' .grad are left untouched. Returns a new CPU tensor.
 */
export function pgdPerturb(model: Module, x: Tensor, labels: Int32Array, o: PgdOptions): Tensor {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const device = o.device ?? "cpu";
  const start = new Float32Array(n * c * h * w);
  if (o.rng) for (let i = 0; i < start.length; i++) start[i] = o.rng.uniform(-o.eps, o.eps);
  const wasTraining = model.training;
  model.eval();
  try {
    return enableGrad(() =>
      tidy(() => {
        const x0 = x.to({ device, dtype: "float32" });
        const lo = x0.sub(o.eps).clamp(0, 1);
        const hi = x0.add(o.eps).clamp(0, 1);
        const mean = tensor(Float32Array.from(o.normalization.mean), { shape: [1, c, 1, 1], device });
        const std = tensor(Float32Array.from(o.normalization.std), { shape: [1, c, 1, 1], device });
        const y = tensor(
          BigInt64Array.from(labels, (v) => BigInt(v)),
          { device },
        );
        let adv = x0
          .add(tensor(start, { shape: [n, c, h, w], device }))
          .maximum(lo)
          .minimum(hi);
        for (let s = 0; s < o.steps; s++) {
          const next = tidy(() => {
            const a = adv.detach().requiresGrad_(true);
            const loss = F.crossEntropy(model.forward(a.sub(mean).div(std)), y);
            const [g] = gradients([loss], [a]);
            if (!g) throw new Error("pgdPerturb: the model's loss does not depend on its input");
            return a.detach().add(g.sign().mul(o.stepSize)).maximum(lo).minimum(hi);
          });
          adv.dispose();
          adv = next;
        }
        return adv.to({ device: "cpu" });
      }),
    );
  } finally {
    model.train(wasTraining);
  }
}

/** Checkerboards `margin` cells in from each of the four corners. */
export function fourCornerCanvas(what: string, spec: ImageSpec, cells: number, margin: number): TriggerCanvas {
  const canvas = new TriggerCanvas(spec);
  const s = triggerScale(spec.height, spec.width);
  const side = cells * s;
  const cell = checkerboardCell(spec.channels);
  for (const top of [margin * s, spec.height - side - margin * s]) {
    for (const left of [margin * s, spec.width - side - margin * s])
      canvas.drawCells(what, top, left, cells, cells, s, cell);
  }
  return canvas;
}

export class CleanLabel extends BaseAttack {
  readonly canvas: TriggerCanvas;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "clean-label",
        description:
          "PGD-perturbed (eps 16/255) target-class images with checkerboards in the four corners; labels kept",
        kind: "clean-label",
        targeting: "all-to-one",
        needsCleanModel: true,
      },
      params,
      spec,
    );
    this.canvas = fourCornerCanvas(
      `attack '${this.name}'`,
      spec,
      numberParam(params, "cells"),
      numberParam(params, "margin"),
    );
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.canvas);
    return pasteTrigger(x, this.canvas);
  }

  protected override checkContext(ctx: AttackContext): void {
    if (!ctx.cleanModel) {
      throw new Error(
        `attack '${this.name}' needs a clean model to craft its PGD perturbations: pass ctx.cleanModel (a model trained on clean data, ` +
          "e.g. a `badexpert train` checkpoint) and ctx.normalization (the mean/std it was trained with)",
      );
    }
    if (!ctx.normalization)
      throw new Error(
        `attack '${this.name}': ctx.normalization (the mean/std the clean model expects) is required with ctx.cleanModel`,
      );
    const c = this.spec.channels;
    if (ctx.normalization.mean.length !== c || ctx.normalization.std.length !== c) {
      throw new Error(`attack '${this.name}': ctx.normalization needs ${c} mean and std values (one per channel)`);
    }
  }

  protected override poisonImages(x: Tensor, { rows, rng, ctx, train }: AlterStep): Tensor {
    const p = (n: string) => numberParam(this.params, n);
    const model = ctx.cleanModel as Module;
    const labels = Int32Array.from(rows, (i) => train.labels[i] as number);
    const opts: PgdOptions = {
      eps: p("eps"),
      steps: p("steps"),
      stepSize: p("stepSize"),
      normalization: ctx.normalization ?? { mean: [], std: [] },
      ...(ctx.device ? { device: ctx.device } : {}),
      ...(booleanParam(this.params, "randomStart") ? { rng } : {}),
    };
    const adv = pgdPerturb(model, x, labels, opts);
    try {
      return this.applyTrigger(adv);
    } finally {
      adv.dispose();
    }
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return {
      poison: this.choosePoisonInTarget(train, numberParam(this.params, "rate"), rng),
      cover: new Int32Array(0),
      poisonLabel: (y) => y,
    };
  }
}
