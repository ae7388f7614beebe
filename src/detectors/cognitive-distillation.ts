// Cognitive Distillation (Huang et al., "Distilling Cognitive Backdoor Patterns within an Image",
// ICLR 2023). For each input, learn the smallest mask m that keeps M's output: with
// x_cd = x ⊙ m + (1 − m) ⊙ δ, δ a random colour per channel redrawn each step (torch.rand(b, c, 1, 1)
// in the authors' code), minimise |M(x_cd) − M(x)|₁ (mean over logits) + γ‖m‖₁ + β·TV(m), with
// m = (tanh(w) + 1) / 2, w from ones, Adam (lr 0.1, betas (0.1, 0.1)), 100 steps. A backdoor input
// keeps its output with the trigger alone, so its mask is tiny: the score is −‖m‖₁ (here the mean
// over pixels, which ranks the same for one image size). The colours δ come from a seeded stream:
// one per call, or one per input when scoreBatch gets seeds (the service's per-input seeds), so a
// served image gets the same mask whatever batch it lands in.
import { gradients, inferenceMode, keep, noGrad, ones, tensor, tidy, type Tensor } from "../engine/index.js";
import { Rng } from "../util/rng.js";
import { Adam } from "../optim/index.js";
import { numberParam, type ParamTable } from "../attacks/params.js";
import type { ParamValue } from "../attacks/attack.js";
import {
  checkBatch,
  checkSeeds,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
  type ScoreOptions,
} from "./detector.js";
import { logitsOf } from "./model-forward.js";

export const CD_PARAMS: ParamTable = {
  steps: { type: "integer", default: 100, min: 1, description: "optimisation steps per input" },
  lr: { type: "number", default: 0.1, above: 0, description: "Adam learning rate of the mask parameters" },
  gamma: { type: "number", default: 0.01, min: 0, description: "weight γ of the mask's L1 norm" },
  beta: { type: "number", default: 1, min: 0, description: "weight β of the mask's total variation" },
  seed: {
    type: "integer",
    default: 0,
    min: 0,
    description:
      "seed of the random colours δ (each batch derives its own stream; with per-input seeds, each input its own)",
  },
};

/** Total variation of [N, 1, H, W] masks as the authors compute it (squared differences, per-sample sum / (c·h·w)). */
export function totalVariation(m: Tensor): Tensor {
  return tidy(() => {
    const [, c, h, w] = m.shape as [number, number, number, number];
    const dh = m
      .slice(2, 1)
      .sub(m.slice(2, 0, h - 1))
      .square()
      .sum([1, 2, 3]);
    const dw = m
      .slice(3, 1)
      .sub(m.slice(3, 0, w - 1))
      .square()
      .sum([1, 2, 3]);
    return dh.add(dw).div(c * h * w);
  });
}

/**
 * The distilled masks [N, 1, H, W] in [0, 1] for a batch of [0, 1] images. `streams` gives the
 * random colours: one stream for the whole batch (drawn input by input), or one per input.
 */
export function distillMasks(
  ctx: DetectorContext,
  x: Tensor,
  p: { steps: number; lr: number; gamma: number; beta: number },
  streams: Rng | readonly Rng[],
): Tensor {
  const { model, preprocessing } = ctx;
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const target = inferenceMode(() => tidy(() => logitsOf(model, preprocessing, x).detach()));
  const streamOf = (i: number): Rng => (Array.isArray(streams) ? (streams[i] as Rng) : (streams as Rng));
  const param = keep(ones([n, 1, h, w]).requiresGrad_());
  const opt = new Adam([param], { lr: p.lr, betas: [0.1, 0.1] });
  try {
    for (let s = 0; s < p.steps; s++) {
      tidy(() => {
        const mask = param.tanh().add(1).div(2);
        const colours = Float32Array.from({ length: n * c }, (_, k) => streamOf(Math.floor(k / c)).next());
        const mixed = x.mul(mask).add(mask.rsub(1).mul(tensor(colours, { shape: [n, c, 1, 1] })));
        const fit = logitsOf(model, preprocessing, mixed).sub(target).abs().mean(1);
        const loss = fit
          .add(mask.abs().sum([1, 2, 3]).mul(p.gamma))
          .add(totalVariation(mask).mul(p.beta))
          .mean();
        // Gradients for the mask only: M's parameters must not accumulate any.
        const [g] = gradients([loss], [param]);
        if (!g) throw new Error("cd: no gradient reached the mask");
        param.setGrad(g);
        opt.step();
        param.setGrad(null);
      });
    }
    return noGrad(() => tidy(() => param.tanh().add(1).div(2)));
  } finally {
    opt.dispose();
    param.dispose();
    target.dispose();
  }
}

export class CognitiveDistillationDetector implements InputDetector {
  readonly name = "cd";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>> = {};
  readonly #ctx: DetectorContext;
  #calls = 0;

  constructor(ctx: DetectorContext, params: Readonly<Record<string, ParamValue>>) {
    this.#ctx = ctx;
    this.params = params;
  }

  scoreBatch(x: Tensor, o?: ScoreOptions): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const seeds = checkSeeds(this.name, o, x.dim(0));
    const seed = numberParam(this.params, "seed");
    const streams = seeds ? Array.from(seeds, (s) => Rng.derive(seed, 1, s)) : Rng.derive(seed, this.#calls++);
    const p = {
      steps: numberParam(this.params, "steps"),
      lr: numberParam(this.params, "lr"),
      gamma: numberParam(this.params, "gamma"),
      beta: numberParam(this.params, "beta"),
    };
    const pred = inferenceMode(() =>
      tidy(
        () =>
          logitsOf(this.#ctx.model, this.#ctx.preprocessing, x).argmax(1).to({ dtype: "int32" }).data() as Int32Array,
      ),
    );
    const masks = distillMasks(this.#ctx, x, p, streams);
    const l1 = tidy(() => masks.mean([1, 2, 3]).data() as Float32Array);
    masks.dispose();
    return { pred, score: Float64Array.from(l1, (v) => -v) };
  }

  state(): DetectorState {
    return { json: {}, tensors: new Map() };
  }

  dispose(): void {}
}
