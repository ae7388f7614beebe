// Sleeper Agent (Souri et al., NeurIPS 2022): a clean-label, hidden-trigger backdoor. The poisons
// are target-class training images with small L∞ perturbations (labels kept, no trigger on them);
// the trigger, a random patch, appears only at test time, on source-class images. The
// perturbations are crafted by gradient matching against a surrogate model the attacker trains
// itself: they make the gradient of the training loss on the poisons point the way of the gradient
// of the adversarial loss (patched source images → target class), so a victim that fits the
// poisons also learns the backdoor. As in the paper: the poisons are the target-class images with
// the largest gradient norm under the surrogate (data selection), the perturbations are optimised
// with signed Adam (learning rate dropped 10x at 40%, 60% and 80% of the steps), projected to the
// ε-ball and [0, 1] after every step, and the surrogate is retrained from scratch on the poisoned
// data `retrains` times, evenly spaced, during crafting.
//
// The crafted perturbations are the attack's artefact: poison() returns them (byte differences and
// the poisoned indices) so `train --attack sleeper-agent` stores them as attack.safetensors with
// the digest `poisonSha256`, and applyCrafted() rebuilds the same poisoned set without crafting
// again. The test-time trigger (the patch) depends on the parameters only, so evaluating a model
// needs no artefact.
//
// Parameters:
//   targetClass      0       the class patched source images are mapped to (its images are poisoned)
//   sourceClass      1       the only class the backdoor works for
//   rate             0.01    fraction of the training set poisoned (all from the target class; labels kept)
//   eps              16/255  L∞ radius of the perturbations
//   steps            250     signed-Adam steps of the crafting
//   lr               0.025   signed-Adam step (pixel units), dropped 10x at 40%, 60% and 80% of the steps
//   retrains         2       times the surrogate is retrained from scratch on the poisoned data while crafting (paper: 4)
//   surrogateEpochs  3       epochs of each surrogate training (Adam 1e-3, batch 64) on the attacker slice
//   count            10000   attacker slice the surrogate trains on (seeded, from the training set)
//   sourceCount      500     patched source-class images (from the attacker slice) of the adversarial gradient
//   selection        true    poison the target-class images with the largest gradient norm (false: random)
//   shift            0       differentiable augmentation of the crafting (the paper's, reduced to the victim's random
//                            shifts): every crafting step sees each batch of poisons shifted by a random -shift..shift
//                            pixels, so the poisons keep working under the victim's random crops (0: none)
//   cells            8       side of the patch, in cells
//   margin           1       distance of the patch from the bottom-right corner, in cells
//   patternSeed      0       seed of the patch's colours
//   poisonSha256     ""      digest of the crafted perturbations (attack.safetensors); set by poisoning
import { F, cat, manualSeed, noGrad, enableGrad, gradients, tensor, tidy, type Tensor } from "../engine/index.js";
import { Adam } from "../optim/index.js";
import { CompactCNN } from "../models/compact-cnn.js";
import type { ImageDataset } from "../data/dataset.js";
import { gatherImages, imagesToTensor, makeBatch } from "../data/batch.js";
import { subset } from "../data/splits.js";
import { Rng } from "../util/rng.js";
import type { AttackContext, AttackParams, ImageSpec, PoisonedTrainingSet } from "./attack.js";
import { artifactsDigest, type AttackArtifacts } from "./artifacts.js";
import { BaseAttack, type PoisonPlan } from "./base.js";
import { TriggerCanvas, checkImages, pasteTrigger, triggerScale } from "./canvas.js";
import { attackerSlice } from "./generator-attack.js";
import { checkDataset, copyDataset } from "./images.js";
import {
  AttackParamError,
  PATTERN_SEED,
  TARGET_CLASS,
  booleanParam,
  numberParam,
  rateParam,
  stringParam,
  type ParamTable,
} from "./params.js";
import { randomPatchCells } from "./patterns.js";
import { candidates, countFromRate } from "./sampling.js";

export const SLEEPER_AGENT_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  sourceClass: {
    type: "integer",
    default: 1,
    min: 0,
    description: "the class whose patched images the backdoor maps to the target",
  },
  rate: rateParam(0.01, "fraction of the training set poisoned (all from the target class; labels kept)"),
  eps: {
    type: "number",
    default: 16 / 255,
    above: 0,
    max: 1,
    description: "L-infinity radius of the perturbations (accepts 16/255)",
  },
  steps: { type: "integer", default: 250, min: 1, max: 100000, description: "signed-Adam steps of the crafting" },
  lr: {
    type: "number",
    default: 0.025,
    above: 0,
    max: 1,
    description: "signed-Adam step in pixel units, dropped 10x at 40%, 60% and 80% of the steps",
  },
  retrains: {
    type: "integer",
    default: 2,
    min: 0,
    max: 100,
    description: "times the surrogate is retrained from scratch on the poisoned data during crafting (paper: 4)",
  },
  surrogateEpochs: {
    type: "integer",
    default: 3,
    min: 1,
    max: 1000,
    description: "epochs of each training of the surrogate on the attacker slice",
  },
  count: {
    type: "integer",
    default: 10000,
    min: 64,
    description: "attacker images the surrogate trains on (a seeded slice of the training set)",
  },
  sourceCount: {
    type: "integer",
    default: 500,
    min: 1,
    max: 100000,
    description: "patched source-class images whose adversarial gradient the poisons match",
  },
  selection: {
    type: "boolean",
    default: true,
    description: "poison the target-class images with the largest gradient norm (false: a random draw)",
  },
  shift: {
    type: "integer",
    default: 0,
    min: 0,
    max: 8,
    description:
      "differentiable augmentation while crafting: each batch of poisons shifted by a random -shift..shift pixels (zero padded), as the victim's random crops do (0: none)",
  },
  cells: { type: "integer", default: 8, min: 1, max: 64, description: "side of the patch, in cells" },
  margin: {
    type: "integer",
    default: 1,
    min: 0,
    max: 64,
    description: "distance of the patch from the bottom-right corner, in cells",
  },
  patternSeed: PATTERN_SEED,
  poisonSha256: {
    type: "sha256",
    default: "",
    description:
      "SHA-256 of the crafted perturbations stored next to the checkpoint (attack.safetensors); set by poisoning",
  },
};

/** Poisons per crafting batch (each batch matches the adversarial gradient on its own). */
const CRAFT_BATCH = 100;
const SURROGATE_BATCH = 64;
const SURROGATE_LR = 0.001;
const ADAM_B1 = 0.9;
const ADAM_B2 = 0.999;
// Random streams of the poisoning seed (1-3: plan, poison, cover; 11-12 ISSBA; 21-22 Dynamic).
const SURROGATE_STREAM = 31;
const INIT_STREAM = 32;
const SHIFT_STREAM = 33;

/** The artefact names: poisoned training-set indices and their byte differences [P, C, H, W]. */
export const SLEEPER_INDICES = "indices";
export const SLEEPER_DELTAS = "deltas";

/** The learning rate at `step` of `steps`: `lr`, then 10x lower after 40%, 60% and 80% of the steps. */
export function craftingRate(lr: number, step: number, steps: number): number {
  const drops = [0.4, 0.6, 0.8].filter((f) => step >= Math.floor(f * steps)).length;
  return lr / 10 ** drops;
}

/** The steps before which the surrogate is retrained: `retrains` of them evenly spaced in (0, steps). */
export function retrainSteps(retrains: number, steps: number): number[] {
  const out: number[] = [];
  for (let j = 1; j <= retrains; j++) out.push(Math.floor((j * steps) / (retrains + 1)));
  return out.filter((s, i) => s > 0 && s < steps && out.indexOf(s) === i);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Lines about crafting steps reported over a whole crafting (plus the first and the last step). */
const PROGRESS_LINES = 50;

/**
 * Crafting progress as log lines: the surrogate's trainings, every `steps / PROGRESS_LINES`-th
 * crafting step with its alignment and an estimate of the time left (crafting steps at their mean
 * duration so far, retrainings at the last training's). Silent without a log hook.
 */
export class CraftingProgress {
  readonly #t0 = Date.now();
  #mark = Date.now();
  #stepSeconds = 0;
  #steps = 0;
  #trainSeconds = 0;
  readonly #every: number;

  constructor(
    readonly name: string,
    readonly total: number,
    readonly log?: (line: string) => void,
  ) {
    this.#every = Math.max(1, Math.ceil(total / PROGRESS_LINES));
  }

  line(text: string): void {
    this.#mark = Date.now();
    this.log?.(`${this.name}: ${text} [${this.#elapsed()}]`);
  }

  /** A surrogate training just ended: its duration (since the last line) prices the remaining ones. */
  surrogate(text: string): void {
    this.#trainSeconds = (Date.now() - this.#mark) / 1000;
    this.line(text);
  }

  /** Crafting step `i` (1-based) ended with mean alignment `alignment`; `retrainsLeft` trainings are still to come. */
  step(i: number, alignment: number, lr: number, retrainsLeft: number): void {
    const now = Date.now();
    this.#stepSeconds += (now - this.#mark) / 1000;
    this.#steps++;
    this.#mark = now;
    if (i !== 1 && i !== this.total && i % this.#every !== 0) return;
    const eta = (this.#stepSeconds / this.#steps) * (this.total - i) + retrainsLeft * this.#trainSeconds;
    this.log?.(
      `${this.name}: step ${i}/${this.total} alignment ${alignment.toFixed(4)} lr ${lr.toPrecision(3)} [${this.#elapsed()}, about ${Math.round(eta)} s left]`,
    );
  }

  #elapsed(): string {
    return `${Math.round((Date.now() - this.#t0) / 1000)} s`;
  }
}

/** What crafting measured, for the checkpoint's record. */
export interface SleeperDetails extends Record<string, number> {
  surrogateCleanAccuracy: number;
  /** Mean cosine similarity between the poison and adversarial gradients at the first and last step. */
  alignmentStart: number;
  alignmentEnd: number;
  /** Patched source images → target, under the surrogate last retrained on the poisons (NaN without retraining). */
  surrogateAttackRate: number;
  maxPerturbation: number;
}

export class SleeperAgent extends BaseAttack {
  readonly canvas: TriggerCanvas;
  readonly sourceClass: number;
  /** Mean alignment at each crafting step of the last poison() call (for tests and reports). */
  alignmentTrace: number[] = [];

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "sleeper-agent",
        description:
          "gradient-matched clean-label poisons (eps 16/255) on the target class; a patch on source-class images flips them at test time",
        kind: "clean-label",
        targeting: "source-specific",
      },
      params,
      spec,
    );
    const what = `attack '${this.name}'`;
    this.sourceClass = this.checkedSourceClass();
    const s = triggerScale(spec.height, spec.width);
    const cells = numberParam(params, "cells");
    const margin = numberParam(params, "margin");
    const colours = randomPatchCells(spec.channels, cells, numberParam(params, "patternSeed"), 0);
    this.canvas = new TriggerCanvas(spec);
    this.canvas.drawCells(
      what,
      spec.height - (cells + margin) * s,
      spec.width - (cells + margin) * s,
      cells,
      cells,
      s,
      (i, j) => colours[i]?.[j] ?? null,
    );
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.canvas);
    return pasteTrigger(x, this.canvas);
  }

  /** The random draw used when `selection` is off: round(rate·N) target-class images. */
  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return {
      poison: this.choosePoisonInTarget(train, numberParam(this.params, "rate"), rng),
      cover: new Int32Array(0),
      poisonLabel: (y) => y,
    };
  }

  override async poison(train: ImageDataset, seed: number, ctx: AttackContext = {}): Promise<PoisonedTrainingSet> {
    if (!Number.isInteger(seed)) throw new RangeError(`attack '${this.name}': seed must be an integer, got ${seed}`);
    checkDataset(this.name, train, this.spec);
    const p = (n: string) => numberParam(this.params, n);
    const n = countFromRate(p("rate"), train.count);
    const pool = candidates(train, (y) => y === this.targetClass);
    if (n < 1)
      throw new AttackParamError(
        `attack '${this.name}': rate ${p("rate")} poisons no image of a ${train.count}-image training set`,
      );
    if (n > pool.length) {
      throw new AttackParamError(
        `attack '${this.name}': rate ${p("rate")} asks for ${n} poisoned samples of the target class ${this.targetClass}, but the training set has only ${pool.length}`,
      );
    }
    const slice = attackerSlice(train, p("count"), seed);
    const sources = candidates(slice, (y) => y === this.sourceClass).subarray(0, p("sourceCount"));
    if (sources.length === 0)
      throw new Error(
        `attack '${this.name}': the attacker slice (${slice.count} images) holds no image of the source class ${this.sourceClass}; raise 'count'`,
      );
    const rng = Rng.derive(seed, SURROGATE_STREAM);
    const progress = new CraftingProgress(this.name, p("steps"), ctx.log);
    manualSeed(Rng.derive(seed, INIT_STREAM).nextUint32() & 0x7fffffff);
    let model = this.#trainSurrogate(slice, rng);
    try {
      const surrogateCleanAccuracy = this.#accuracy(model, slice);
      progress.surrogate(
        `surrogate trained on ${slice.count} attacker images, accuracy ${pct(surrogateCleanAccuracy)}`,
      );
      const chosen = booleanParam(this.params, "selection")
        ? this.#largestGradients(model, train, pool, n)
        : this.plan(train, Rng.derive(seed, 1)).poison;
      progress.line(
        `${chosen.length} poisons chosen (${booleanParam(this.params, "selection") ? "largest gradient norm" : "random"}) among ${pool.length} target-class images`,
      );
      const poison = Int32Array.from(chosen).sort();
      const per = this.spec.channels * this.spec.height * this.spec.width;
      const clean = new Float32Array(gatherImages(train, poison)).map((v) => v / 255);
      const delta = new Float32Array(clean.length);
      const m = new Float32Array(clean.length);
      const v = new Float32Array(clean.length);
      const steps = p("steps");
      const retrainList = retrainSteps(p("retrains"), steps);
      const retrainAt = new Set(retrainList);
      const trace: number[] = [];
      const shifts = Rng.derive(seed, SHIFT_STREAM);
      const shift = p("shift");
      let target = this.#adversarialGradient(model, slice, sources);
      let surrogateAttackRate = Number.NaN;
      try {
        for (let step = 0; step < steps; step++) {
          if (retrainAt.has(step)) {
            progress.line(
              `retraining the surrogate from scratch on the attacker images and the poisons (before step ${step + 1}/${steps})`,
            );
            const poisoned = this.#withPoisons(train, slice, poison, clean, delta);
            model.dispose();
            for (const t of target) t.dispose();
            target = [];
            model = this.#trainSurrogate(poisoned, rng);
            target = this.#adversarialGradient(model, slice, sources);
            surrogateAttackRate = this.#attackRate(model, slice, sources);
            progress.surrogate(
              `surrogate retrained: accuracy ${pct(this.#accuracy(model, slice))}, patched source images → target ${pct(surrogateAttackRate)}`,
            );
          }
          const lr = craftingRate(p("lr"), step, steps);
          let sum = 0;
          for (let at = 0; at < poison.length; at += CRAFT_BATCH) {
            const k = Math.min(poison.length, at + CRAFT_BATCH) - at;
            const labels = Int32Array.from(poison.subarray(at, at + k), (i) => train.labels[i] as number);
            const offset: [number, number] =
              shift > 0 ? [shifts.int(-shift, shift + 1), shifts.int(-shift, shift + 1)] : [0, 0];
            sum +=
              k * this.#craftStep(model, target, labels, { clean, delta, m, v }, at * per, k, lr, step + 1, offset);
          }
          trace.push(sum / poison.length);
          progress.step(step + 1, sum / poison.length, lr, retrainList.filter((r) => r > step).length);
        }
      } finally {
        for (const t of target) t.dispose();
      }
      this.alignmentTrace = trace;
      const ds = this.#withBytes(train, poison, clean, delta);
      const artifacts = craftedArtifacts(train, ds, poison);
      const deltas = artifacts.get(SLEEPER_DELTAS)?.data ?? new Float32Array(0);
      const details: SleeperDetails = {
        surrogateCleanAccuracy,
        alignmentStart: trace[0] ?? Number.NaN,
        alignmentEnd: trace[trace.length - 1] ?? Number.NaN,
        surrogateAttackRate,
        maxPerturbation: deltas.reduce((a, d) => Math.max(a, Math.abs(d)), 0) / 255,
      };
      return {
        dataset: ds,
        poisonIndices: poison,
        coverIndices: new Int32Array(0),
        labels: ds.labels,
        trueLabels: Int32Array.from(train.labels),
        params: { ...this.params, poisonSha256: artifactsDigest(artifacts) },
        artifacts,
        details,
      };
    } finally {
      model.dispose();
    }
  }

  /** A fresh compact CNN trained on `data` for `surrogateEpochs` (Adam, seeded shuffles). */
  #trainSurrogate(data: ImageDataset, rng: Rng): CompactCNN {
    const { channels: c, height: h, width: w, numClasses } = this.spec;
    const model = new CompactCNN({ numClasses, inChannels: c, imageSize: [h, w] });
    const opt = new Adam(model.parameters(), { lr: SURROGATE_LR });
    model.train();
    try {
      for (let e = 0; e < numberParam(this.params, "surrogateEpochs"); e++) {
        const order = rng.permutation(data.count);
        for (let at = 0; at < order.length; at += SURROGATE_BATCH) {
          tidy(() => {
            const b = makeBatch(data, order.subarray(at, Math.min(order.length, at + SURROGATE_BATCH)));
            const loss = F.crossEntropy(model.forward(b.x.mul(2).sub(1)), b.y);
            opt.zeroGrad();
            loss.backward();
            opt.step();
          });
        }
      }
    } catch (e) {
      model.dispose();
      throw e;
    } finally {
      opt.dispose();
    }
    model.eval();
    return model;
  }

  #accuracy(model: CompactCNN, data: ImageDataset): number {
    let right = 0;
    for (let at = 0; at < data.count; at += 256) {
      const rows = Int32Array.from({ length: Math.min(256, data.count - at) }, (_, k) => at + k);
      right += noGrad(() =>
        tidy(() => {
          const b = makeBatch(data, rows);
          return model.forward(b.x.mul(2).sub(1)).argmax(1).eq(b.y).float().sum().item();
        }),
      );
    }
    return right / data.count;
  }

  /** Share of the patched source images the model puts in the target class. */
  #attackRate(model: CompactCNN, slice: ImageDataset, sources: Int32Array): number {
    return noGrad(() =>
      tidy(() => {
        const { channels: c, height: h, width: w } = this.spec;
        const x = this.applyTrigger(imagesToTensor(gatherImages(slice, sources), sources.length, h, w, c));
        return model.forward(x.mul(2).sub(1)).argmax(1).eq(this.targetClass).float().mean().item();
      }),
    );
  }

  /** Gradient (every parameter, detached) of the adversarial loss: patched source images → target. */
  #adversarialGradient(model: CompactCNN, slice: ImageDataset, sources: Int32Array): Tensor[] {
    const { channels: c, height: h, width: w } = this.spec;
    const params = model.parameters();
    let sum: Tensor[] | null = null;
    for (let at = 0; at < sources.length; at += 256) {
      const rows = sources.subarray(at, Math.min(sources.length, at + 256));
      const g = enableGrad(() =>
        tidy(() => {
          const x = this.applyTrigger(imagesToTensor(gatherImages(slice, rows), rows.length, h, w, c));
          const y = tensor(BigInt64Array.from(rows, () => BigInt(this.targetClass)));
          // Summed here, divided by the count below: the mean over all source images.
          const loss = F.crossEntropy(model.forward(x.mul(2).sub(1)), y).mul(rows.length / sources.length);
          return gradients([loss], params).map((t, i) => {
            if (!t) throw new Error(`attack '${this.name}': the surrogate's parameter ${i} gets no gradient`);
            return t.detach();
          });
        }),
      );
      if (sum === null) sum = g;
      else {
        const prev: Tensor[] = sum;
        sum = tidy(() => prev.map((t, i) => t.add(g[i] as Tensor)));
        for (const t of [...prev, ...g]) t.dispose();
      }
    }
    return sum ?? [];
  }

  /**
   * One signed-Adam step on `k` poisons starting at element `off` of the state arrays; returns
   * their gradient alignment (cosine similarity) before the step.
   */
  #craftStep(
    model: CompactCNN,
    target: Tensor[],
    labels: Int32Array,
    s: { clean: Float32Array; delta: Float32Array; m: Float32Array; v: Float32Array },
    off: number,
    k: number,
    lr: number,
    t: number,
    offset: [number, number],
  ): number {
    const { channels: c, height: h, width: w } = this.spec;
    const len = k * c * h * w;
    const eps = numberParam(this.params, "eps");
    const shape = [k, c, h, w];
    const view = (a: Float32Array) => tensor(a.slice(off, off + len), { shape });
    const params = model.parameters();
    const out = enableGrad(() =>
      tidy(() => {
        const x0 = view(s.clean);
        const d = view(s.delta).requiresGrad_(true);
        const y = tensor(BigInt64Array.from(labels, (l) => BigInt(l)));
        const loss = F.crossEntropy(model.forward(shifted(x0.add(d), offset).mul(2).sub(1)), y);
        const g = gradients([loss], params, { createGraph: true, retainGraph: true }).map((gi, i) => {
          if (!gi) throw new Error(`attack '${this.name}': the surrogate's parameter ${i} gets no gradient`);
          return gi;
        });
        const dot = g.map((gi, i) => gi.mul(target[i] as Tensor).sum());
        const gg = g.map((gi) => gi.square().sum());
        const tt = target.map((ti) => ti.square().sum());
        const norm = cat(
          gg.map((z) => z.reshape([1])),
          0,
        )
          .sum()
          .sqrt()
          .mul(
            cat(
              tt.map((z) => z.reshape([1])),
              0,
            )
              .sum()
              .sqrt(),
          )
          .add(1e-12);
        const cos = cat(
          dot.map((z) => z.reshape([1])),
          0,
        )
          .sum()
          .div(norm);
        const [gd] = gradients([cos.rsub(1)], [d]);
        if (!gd) throw new Error(`attack '${this.name}': the alignment does not depend on the perturbation`);
        // Signed Adam: Adam on the sign of the gradient, then the projection to the ε-ball and [0, 1].
        const sg = gd.sign();
        const m1 = view(s.m)
          .mul(ADAM_B1)
          .add(sg.mul(1 - ADAM_B1));
        const v1 = view(s.v)
          .mul(ADAM_B2)
          .add(sg.square().mul(1 - ADAM_B2));
        const update = m1
          .div(1 - ADAM_B1 ** t)
          .div(
            v1
              .div(1 - ADAM_B2 ** t)
              .sqrt()
              .add(1e-8),
          )
          .mul(lr);
        const d1 = d.detach().sub(update).clamp(-eps, eps);
        const projected = x0.add(d1).clamp(0, 1).sub(x0);
        return {
          cos: cos.item(),
          d: projected.contiguous().data() as Float32Array,
          m: m1.contiguous().data() as Float32Array,
          v: v1.contiguous().data() as Float32Array,
        };
      }),
    );
    s.delta.set(out.d, off);
    s.m.set(out.m, off);
    s.v.set(out.v, off);
    return out.cos;
  }

  /** Target-class images ranked by the norm of their loss gradient (all parameters) under the surrogate; the `n` largest. */
  #largestGradients(model: CompactCNN, train: ImageDataset, pool: Int32Array, n: number): Int32Array {
    const params = model.parameters();
    const norms = new Float64Array(pool.length);
    for (let k = 0; k < pool.length; k++) {
      norms[k] = enableGrad(() =>
        tidy(() => {
          const b = makeBatch(train, pool.subarray(k, k + 1));
          const loss = F.crossEntropy(model.forward(b.x.mul(2).sub(1)), b.y);
          return gradients([loss], params).reduce((a, g) => a + (g ? g.square().sum().item() : 0), 0);
        }),
      );
    }
    const order = Array.from(pool.keys()).sort((a, b) => (norms[b] as number) - (norms[a] as number) || a - b);
    return Int32Array.from(order.slice(0, n), (k) => pool[k] as number);
  }

  /** The attacker slice followed by the current poisons (byte-rounded), to retrain the surrogate on. */
  #withPoisons(
    train: ImageDataset,
    slice: ImageDataset,
    poison: Int32Array,
    clean: Float32Array,
    delta: Float32Array,
  ): ImageDataset {
    const poisoned = this.#withBytes(subset(train, poison), Int32Array.from(poison.keys()), clean, delta);
    const images = new Uint8Array(slice.images.length + poisoned.images.length);
    images.set(slice.images);
    images.set(poisoned.images, slice.images.length);
    const labels = new Int32Array(slice.count + poisoned.count);
    labels.set(slice.labels);
    labels.set(poisoned.labels, slice.count);
    return { ...slice, name: `${slice.name}+poisons`, images, labels, count: slice.count + poisoned.count };
  }

  /** A copy of `ds` whose rows `rows` hold clean + delta (row k of the arrays), rounded to bytes. */
  #withBytes(ds: ImageDataset, rows: Int32Array, clean: Float32Array, delta: Float32Array): ImageDataset {
    const out = copyDataset(ds, `${ds.name}+${this.name}`);
    const per = ds.channels * ds.height * ds.width;
    rows.forEach((r, k) => {
      for (let e = 0; e < per; e++) {
        const q = k * per + e;
        out.images[r * per + e] = Math.min(
          255,
          Math.max(0, Math.round(((clean[q] as number) + (delta[q] as number)) * 255)),
        );
      }
    });
    return out;
  }
}

/** Images [N, C, H, W] moved by `dy` rows and `dx` columns (zero padded): differentiable in the images. */
export function shifted(x: Tensor, [dy, dx]: [number, number]): Tensor {
  if (dy === 0 && dx === 0) return x;
  const [h, w] = [x.shape[2] as number, x.shape[3] as number];
  const a = Math.max(Math.abs(dy), Math.abs(dx));
  return x
    .pad([a, a, a, a])
    .slice(2, a - dy, a - dy + h)
    .slice(3, a - dx, a - dx + w);
}

/** The artefacts of a crafted set: the poisoned indices and each poison's byte difference from the clean image. */
export function craftedArtifacts(train: ImageDataset, poisoned: ImageDataset, poison: Int32Array): AttackArtifacts {
  const per = train.channels * train.height * train.width;
  const deltas = new Float32Array(poison.length * per);
  poison.forEach((r, k) => {
    for (let e = 0; e < per; e++)
      deltas[k * per + e] = (poisoned.images[r * per + e] as number) - (train.images[r * per + e] as number);
  });
  return new Map([
    [SLEEPER_INDICES, { data: Float32Array.from(poison), shape: [poison.length] }],
    [SLEEPER_DELTAS, { data: deltas, shape: [poison.length, train.channels, train.height, train.width] }],
  ]);
}

/**
 * The poisoned training set rebuilt from stored artefacts (attack.safetensors, read with
 * loadArtifacts() against the recorded `poisonSha256`) without crafting again: the same images and
 * labels poison() returned. Throws when the artefacts do not fit `train`.
 */
export function applyCrafted(attack: SleeperAgent, train: ImageDataset, a: AttackArtifacts): PoisonedTrainingSet {
  const what = `attack '${attack.name}'`;
  checkDataset(attack.name, train, attack.spec);
  const idx = a.get(SLEEPER_INDICES);
  const del = a.get(SLEEPER_DELTAS);
  if (!idx || !del)
    throw new Error(
      `${what}: the stored perturbations need '${SLEEPER_INDICES}' and '${SLEEPER_DELTAS}', found ${[...a.keys()].join(", ") || "nothing"}`,
    );
  const per = train.channels * train.height * train.width;
  const shape = [idx.data.length, train.channels, train.height, train.width];
  if (del.shape.join("x") !== shape.join("x"))
    throw new Error(
      `${what}: '${SLEEPER_DELTAS}' has shape ${del.shape.join("x")}, expected ${shape.join("x")} for this training set`,
    );
  const sha = stringParam(attack.params, "poisonSha256");
  if (sha !== "" && sha !== artifactsDigest(a))
    throw new AttackParamError(
      `${what}: the given perturbations have SHA-256 ${artifactsDigest(a)}, parameter 'poisonSha256' records ${sha}`,
    );
  const poison = Int32Array.from(idx.data);
  const ds = copyDataset(train, `${train.name}+${attack.name}`);
  poison.forEach((r, k) => {
    if (!(r >= 0 && r < train.count) || train.labels[r] !== attack.targetClass) {
      throw new Error(
        `${what}: stored poison index ${r} is not a target-class (${attack.targetClass}) image of this ${train.count}-image training set`,
      );
    }
    for (let e = 0; e < per; e++) {
      const b = (train.images[r * per + e] as number) + (del.data[k * per + e] as number);
      if (!(Number.isInteger(b) && b >= 0 && b <= 255))
        throw new Error(
          `${what}: stored perturbation of poison ${r} takes pixel ${e} to ${b}, outside the bytes 0..255`,
        );
      ds.images[r * per + e] = b;
    }
  });
  return {
    dataset: ds,
    poisonIndices: poison,
    coverIndices: new Int32Array(0),
    labels: ds.labels,
    trueLabels: Int32Array.from(train.labels),
    params: { ...attack.params, poisonSha256: artifactsDigest(a) },
    artifacts: a,
  };
}
