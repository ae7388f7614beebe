// Dynamic / input-aware backdoor (Nguyen & Tran, NeurIPS 2020): a generator g and a mask network
// m turn each input into its own trigger, x' = x + m(x)·(g(x) − x). The attacker first trains m
// alone (a diversity loss, so different inputs get different masks, and a penalty on mask area
// above `maskDensity`), then trains g jointly with a classifier: in each batch a fraction carries
// its own trigger and the target label, another fraction carries the trigger made for another
// input ("cross" samples) and keeps its true label, so only an input's own trigger works; g gets
// the diversity loss too. As in the BaDExpert evaluation (the backdoor-toolbox setting), the
// trained pair then poisons the victim's training set at a low rate, with cross samples as covers;
// the classifier trained jointly is the attacker's surrogate (a compact CNN) and is thrown away.
//
// Parameters:
//   targetClass      0       the target class
//   rate             0.003   fraction of the training set poisoned (outside the target class)
//   coverRate        0.003   fraction carrying another input's trigger, labels kept ("cross")
//   maskDensity      0.032   mask area (mean of m) above which the mask is penalised
//   count            5000    attacker images the networks train on (seeded slice of the training set)
//   maskSteps        300     Adam steps of the mask network alone (batch 32)
//   steps            800     Adam steps of the joint generator + surrogate classifier training (batch 32)
//   backdoorShare    0.1     fraction of each joint batch with its own trigger and the target label
//   crossShare       0.1     fraction of each joint batch with another input's trigger, label kept
//   lr               0.001   Adam learning rate (all networks)
//   generatorSha256  ""      digest of the trained generator and mask network; set by poisoning
import { F, cat, manualSeed, noGrad, tensor, tidy, type Tensor } from "../engine/index.js";
import { Conv2d, Module } from "../nn/index.js";
import { Adam } from "../optim/index.js";
import { CompactCNN } from "../models/compact-cnn.js";
import type { ImageDataset } from "../data/dataset.js";
import { gatherImages, imagesToTensor } from "../data/batch.js";
import { Rng } from "../util/rng.js";
import type { AttackContext, AttackParams, ImageSpec } from "./attack.js";
import { loadModuleArtifacts, moduleArtifacts, type AttackArtifacts } from "./artifacts.js";
import type { AlterStep, PoisonPlan } from "./base.js";
import { GeneratorAttack, NETWORK_BATCH, networkTrainingParams, type TrainedNetwork } from "./generator-attack.js";
import { TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const DYNAMIC_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003),
  coverRate: rateParam(
    0.003,
    "fraction of the training set carrying another input's trigger with its true label (cross samples)",
  ),
  maskDensity: {
    type: "number",
    default: 0.032,
    above: 0,
    max: 1,
    description: "mask area above which the mask network is penalised",
  },
  maskSteps: {
    type: "integer",
    default: 300,
    min: 1,
    max: 1000000,
    description: "Adam steps of the mask network alone (batch 32)",
  },
  backdoorShare: {
    type: "number",
    default: 0.1,
    above: 0,
    max: 0.5,
    description: "fraction of each joint batch with its own trigger and the target label",
  },
  crossShare: {
    type: "number",
    default: 0.1,
    min: 0,
    max: 0.5,
    description: "fraction of each joint batch with another input's trigger and its true label",
  },
  // steps: the joint training of the generator and the surrogate classifier (after maskSteps).
  ...networkTrainingParams({
    count: 5000,
    minCount: 64,
    steps: 800,
    lr: 0.001,
    what: "the generator, mask network and surrogate classifier",
  }),
};

const LAMBDA_DIV = 1;
const LAMBDA_NORM = 100;
const EPS = 0.01;
/** Joint training steps between two progress lines. */
const LOG_EVERY = 100;
// Random streams of the poisoning seed (1-3: plan, poison, cover; 11-12 used by ISSBA).
const TRAIN_STREAM = 21;
const INIT_STREAM = 22;

/**
 * Image [N, C, H, W] in [0, 1] → map [N, out, H, W] in [0, 1]: two convolutions at full and half
 * resolution, a third at half, upsampled bilinearly (smooth patterns, cheap on a CPU).
 */
export class TriggerNet extends Module {
  readonly conv1: Conv2d;
  readonly down: Conv2d;
  readonly mid: Conv2d;
  readonly out: Conv2d;
  readonly #size: [number, number];

  constructor(spec: ImageSpec, outChannels: number) {
    super();
    this.#size = [spec.height, spec.width];
    this.conv1 = this.registerModule("conv1", new Conv2d(spec.channels, 16, 3, { padding: 1 }));
    this.down = this.registerModule("down", new Conv2d(16, 32, 3, { padding: 1, stride: 2 }));
    this.mid = this.registerModule("mid", new Conv2d(32, 32, 3, { padding: 1 }));
    this.out = this.registerModule("out", new Conv2d(32, outChannels, 3, { padding: 1 }));
  }

  forward(x: Tensor): Tensor {
    const f = this.mid.forward(this.down.forward(this.conv1.forward(x.mul(2).sub(1)).relu()).relu()).relu();
    // tanh/2 + 1/2, as the original networks squash their outputs.
    return F.interpolate(this.out.forward(f), this.#size, "bilinear").tanh().mul(0.5).add(0.5);
  }
}

/** x + m·(p − x): pattern p blended in under mask m. */
function blendIn(x: Tensor, pattern: Tensor, mask: Tensor): Tensor {
  return x.add(pattern.sub(x).mul(mask));
}

/**
 * Mean over the batch of ‖x1 − x2‖ / ‖f1 − f2‖ (per-sample RMS distances): small when different
 * inputs give different outputs. The square root is taken of mean + EPS² and the ratio's
 * denominator is at least EPS: when the outputs of two inputs coincide (a saturated tanh), the
 * plain √ has an infinite gradient at 0 and the ratio is unbounded, and training turns to NaN.
 */
export function diversityLoss(x1: Tensor, x2: Tensor, f1: Tensor, f2: Tensor): Tensor {
  const d = (a: Tensor, b: Tensor) =>
    a
      .sub(b)
      .square()
      .flatten(1)
      .mean([1])
      .add(EPS * EPS)
      .sqrt();
  return d(x1, x2).div(d(f1, f2).add(EPS)).mean();
}

export class Dynamic extends GeneratorAttack {
  constructor(params: AttackParams, spec: ImageSpec, artifacts?: AttackArtifacts) {
    super(
      {
        name: "dynamic",
        description:
          "input-aware trigger: a generator and a mask network give each input its own pattern; cross samples keep their label",
        kind: "sample-specific",
        targeting: "all-to-one",
      },
      params,
      spec,
      artifacts,
    );
  }

  private nets(): { gen: TriggerNet; mask: TriggerNet } {
    return { gen: new TriggerNet(this.spec, this.spec.channels), mask: new TriggerNet(this.spec, 1) };
  }

  private withNets<T>(a: AttackArtifacts, fn: (gen: TriggerNet, mask: TriggerNet) => T): T {
    const { gen, mask } = this.nets();
    try {
      loadModuleArtifacts(gen, a, "generator.", `attack '${this.name}'`);
      loadModuleArtifacts(mask, a, "mask.", `attack '${this.name}'`);
      return fn(gen, mask);
    } finally {
      gen.dispose();
      mask.dispose();
    }
  }

  protected checkArtifacts(a: AttackArtifacts): void {
    this.withNets(a, () => undefined);
  }

  protected triggerWith(a: AttackArtifacts, x: Tensor): Tensor {
    return this.withNets(a, (gen, mask) => noGrad(() => blendIn(x, gen.forward(x), mask.forward(x))));
  }

  /** Cross samples: each image gets the trigger made for another training image (drawn with the cover stream). */
  protected override coverImages(x: Tensor, { rng, train }: AlterStep): Tensor {
    const a = this.artifacts;
    if (!a) throw new Error(`attack '${this.name}': cover samples need the trained networks`);
    const n = x.shape[0] as number;
    const others = Int32Array.from({ length: n }, () => rng.int(0, train.count));
    const { channels: c, height: h, width: w } = this.spec;
    return this.withNets(a, (gen, mask) =>
      noGrad(() => {
        const o = imagesToTensor(gatherImages(train, others), n, h, w, c);
        return blendIn(x, gen.forward(o), mask.forward(o)).clamp(0, 1);
      }),
    );
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return this.planWithCovers(train, rng);
  }

  protected async trainNetwork(data: ImageDataset, seed: number, ctx: AttackContext): Promise<TrainedNetwork> {
    const p = (n: string) => numberParam(this.params, n);
    const { channels: c, height: h, width: w, numClasses } = this.spec;
    manualSeed(Rng.derive(seed, INIT_STREAM).nextUint32() & 0x7fffffff);
    const { gen, mask } = this.nets();
    const clf = new CompactCNN({ numClasses, inChannels: c, imageSize: [h, w] });
    const rng = Rng.derive(seed, TRAIN_STREAM);
    const batch = (): { x: Tensor; y: Tensor; x2: Tensor } => {
      const rows = Int32Array.from({ length: NETWORK_BATCH }, () => rng.int(0, data.count));
      const rows2 = Int32Array.from({ length: NETWORK_BATCH }, () => rng.int(0, data.count));
      return {
        x: imagesToTensor(gatherImages(data, rows), NETWORK_BATCH, h, w, c),
        y: tensor(BigInt64Array.from(rows, (i) => BigInt(data.labels[i] as number))),
        x2: imagesToTensor(gatherImages(data, rows2), NETWORK_BATCH, h, w, c),
      };
    };
    const details: Record<string, number> = {};
    const t0 = Date.now();
    try {
      // Stage 1: the mask network alone.
      const maskOpt = new Adam(mask.parameters(), { lr: p("lr") });
      try {
        for (let step = 0; step < p("maskSteps"); step++) {
          tidy(() => {
            const { x, x2 } = batch();
            const m1 = mask.forward(x);
            const m2 = mask.forward(x2);
            const area = m1.mean().sub(p("maskDensity")).relu();
            const loss = diversityLoss(x, x2, m1, m2).mul(LAMBDA_DIV).add(area.mul(LAMBDA_NORM));
            maskOpt.zeroGrad();
            loss.backward();
            maskOpt.step();
          });
        }
      } finally {
        maskOpt.dispose();
      }
      mask.eval();
      gen.train();
      clf.train();
      // Stage 2: generator and surrogate classifier together, the mask network fixed.
      const opt = new Adam([...gen.parameters(), ...clf.parameters()], { lr: p("lr") });
      const nb = Math.max(1, Math.round(p("backdoorShare") * NETWORK_BATCH));
      const nc = Math.round(p("crossShare") * NETWORK_BATCH);
      const target = this.targetClass;
      try {
        for (let step = 0; step < p("steps"); step++) {
          tidy(() => {
            const { x, y, x2 } = batch();
            const m = noGrad(() => mask.forward(x));
            const m2 = noGrad(() => mask.forward(x2));
            const g = gen.forward(x);
            const g2 = gen.forward(x2);
            const bd = blendIn(x.slice(0, 0, nb), g.slice(0, 0, nb), m.slice(0, 0, nb));
            const cross = blendIn(x.slice(0, nb, nb + nc), g2.slice(0, nb, nb + nc), m2.slice(0, nb, nb + nc));
            const inputs = cat([bd, cross, x.slice(0, nb + nc)], 0);
            const labels = cat([tensor(BigInt64Array.from({ length: nb }, () => BigInt(target))), y.slice(0, nb)], 0);
            const logits = clf.forward(inputs.mul(2).sub(1));
            const ce = F.crossEntropy(logits, labels);
            const loss = ce.add(diversityLoss(x, x2, g, g2).mul(LAMBDA_DIV));
            opt.zeroGrad();
            loss.backward();
            opt.step();
            if ((step + 1) % LOG_EVERY === 0 || step + 1 === p("steps"))
              ctx.log?.(
                `${this.name}: joint step ${step + 1}/${p("steps")} loss ${loss.item().toFixed(4)} [${Math.round((Date.now() - t0) / 1000)} s]`,
              );
          });
        }
      } finally {
        opt.dispose();
      }
      Object.assign(details, this.#measure(gen, mask, clf, data, rng));
      ctx.log?.(`${this.name}: trigger networks trained ${JSON.stringify(details)}`);
      return await Promise.resolve({
        artifacts: new Map([...moduleArtifacts(gen, "generator."), ...moduleArtifacts(mask, "mask.")]),
        details,
      });
    } finally {
      gen.dispose();
      mask.dispose();
      clf.dispose();
    }
  }

  /** On up to 512 attacker images: the surrogate's clean accuracy, backdoor and cross accuracy, and the mask's mean area. */
  #measure(gen: TriggerNet, mask: TriggerNet, clf: CompactCNN, data: ImageDataset, rng: Rng): Record<string, number> {
    const n = Math.min(512, data.count);
    const rows = Int32Array.from({ length: n }, () => rng.int(0, data.count));
    const rows2 = Int32Array.from({ length: n }, () => rng.int(0, data.count));
    const { channels: c, height: h, width: w } = this.spec;
    clf.eval();
    gen.eval();
    return noGrad(() =>
      tidy(() => {
        const x = imagesToTensor(gatherImages(data, rows), n, h, w, c);
        const x2 = imagesToTensor(gatherImages(data, rows2), n, h, w, c);
        const y = tensor(BigInt64Array.from(rows, (i) => BigInt(data.labels[i] as number)));
        const pred = (t: Tensor) => clf.forward(t.clamp(0, 1).mul(2).sub(1)).argmax(1);
        const m = mask.forward(x);
        const own = blendIn(x, gen.forward(x), m);
        const cross = blendIn(x, gen.forward(x2), mask.forward(x2));
        const notTarget = y.ne(this.targetClass).float();
        return {
          surrogateCleanAccuracy: pred(x).eq(y).float().mean().item(),
          surrogateBackdoorRate:
            pred(own).eq(this.targetClass).float().mul(notTarget).sum().item() / Math.max(1, notTarget.sum().item()),
          surrogateCrossAccuracy: pred(cross).eq(y).float().mean().item(),
          maskArea: m.mean().item(),
        };
      }),
    );
  }
}
