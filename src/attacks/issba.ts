// ISSBA (Li et al., ICCV 2021, "Invisible Backdoor Attack with Sample-Specific Triggers"): a
// StegaStamp-style encoder hides a fixed bit string in an image as a small residual that depends
// on the image; a decoder trained with it recovers the bits, which is what forces the residual to
// carry information. The attacker trains the pair on its own images (random bit strings), then
// poisons a fraction of the training set with encoder(x, secret) and relabels it to the target.
// Here the pair is small (it trains in minutes on a CPU); the residual is bounded by
// `bound`·tanh(·) and penalised by its mean square; the poisoned images are stored as bytes, so
// the decoder's bit accuracy is measured after rounding to 8 bits.
//
// Parameters:
//   targetClass      0       the target class
//   rate             0.02    fraction of the training set poisoned (drawn outside the target class)
//   bits             16      length of the hidden bit string
//   patternSeed      0       seed of the fixed bit string
//   bound            0.05    largest |residual| per pixel (in [0, 1] units)
//   imageWeight      1       weight of the residual's mean square in the encoder's loss (off for
//                            the first 30% of the steps, ramped up to full weight at 70%)
//   count            5000    attacker images the encoder/decoder pair trains on (seeded slice)
//   steps            1000    Adam steps of the pair's training (batch 32)
//   lr               0.003   Adam learning rate
//   generatorSha256  ""      digest of the trained encoder (attack.safetensors); set by poisoning
import { F, cat, manualSeed, noGrad, tensor, tidy, type Tensor } from "../engine/index.js";
import { Conv2d, Linear, Module } from "../nn/index.js";
import { Adam } from "../optim/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { gatherImages, imagesToTensor } from "../data/batch.js";
import { Rng } from "../util/rng.js";
import type { AttackContext, AttackParams, ImageSpec } from "./attack.js";
import { loadModuleArtifacts, moduleArtifacts, type AttackArtifacts } from "./artifacts.js";
import type { PoisonPlan } from "./base.js";
import { GeneratorAttack, NETWORK_BATCH, networkTrainingParams, type TrainedNetwork } from "./generator-attack.js";
import { PATTERN_SEED, TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const ISSBA_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.02),
  bits: { type: "integer", default: 16, min: 1, max: 256, description: "length of the hidden bit string" },
  patternSeed: { ...PATTERN_SEED, description: "seed of the fixed bit string hidden in poisoned images" },
  bound: {
    type: "number",
    default: 0.05,
    above: 0,
    max: 1,
    description: "largest |residual| per pixel, in [0, 1] units",
  },
  imageWeight: {
    type: "number",
    default: 1,
    min: 0,
    max: 1e4,
    description: "weight of the residual's mean square in the encoder's loss",
  },
  ...networkTrainingParams({ count: 5000, minCount: 32, steps: 1000, lr: 0.003, what: "the encoder/decoder pair" }),
};

// The secret enters as full-resolution maps with this many channels (a linear layer of the bits).
const SECRET_CHANNELS = 2;
// Separate random streams of the poisoning seed (the plan, poison and cover streams are 1-3).
const TRAIN_STREAM = 11;
const INIT_STREAM = 12;

/** A small U-Net: image + secret maps → residual, bounded by `bound`·tanh. */
export class IssbaEncoder extends Module<[x: Tensor, s: Tensor]> {
  readonly secret: Linear;
  readonly conv1: Conv2d;
  readonly down: Conv2d;
  readonly mid: Conv2d;
  readonly up: Conv2d;
  readonly out: Conv2d;
  readonly #size: [number, number];
  readonly #bound: number;

  constructor(spec: ImageSpec, bits: number, bound: number) {
    super();
    const c = spec.channels;
    this.#size = [spec.height, spec.width];
    this.#bound = bound;
    this.secret = this.registerModule("secret", new Linear(bits, SECRET_CHANNELS * spec.height * spec.width));
    this.conv1 = this.registerModule("conv1", new Conv2d(c + SECRET_CHANNELS, 16, 3, { padding: 1 }));
    this.down = this.registerModule("down", new Conv2d(16, 32, 3, { padding: 1, stride: 2 }));
    this.mid = this.registerModule("mid", new Conv2d(32, 32, 3, { padding: 1 }));
    this.up = this.registerModule("up", new Conv2d(48, 16, 3, { padding: 1 }));
    this.out = this.registerModule("out", new Conv2d(16, c, 1));
  }

  /** Residual for images x [N, C, H, W] in [0, 1] and bit strings s [N, bits] of 0/1. */
  forward(x: Tensor, s: Tensor): Tensor {
    const n = x.shape[0] as number;
    const map = this.secret.forward(s.mul(2).sub(1)).reshape([n, SECRET_CHANNELS, ...this.#size]);
    const e1 = this.conv1.forward(cat([x.mul(2).sub(1), map], 1)).relu();
    const e2 = this.mid.forward(this.down.forward(e1).relu()).relu();
    const u = F.interpolate(e2, this.#size, "nearest");
    return this.out
      .forward(this.up.forward(cat([u, e1], 1)).relu())
      .tanh()
      .mul(this.#bound);
  }
}

/** Image → bit logits [N, bits]. */
export class IssbaDecoder extends Module {
  readonly conv1: Conv2d;
  readonly conv2: Conv2d;
  readonly conv3: Conv2d;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(spec: ImageSpec, bits: number) {
    super();
    const h = Math.ceil(Math.ceil(spec.height / 2) / 2);
    const w = Math.ceil(Math.ceil(spec.width / 2) / 2);
    this.conv1 = this.registerModule("conv1", new Conv2d(spec.channels, 16, 3, { padding: 1, stride: 2 }));
    this.conv2 = this.registerModule("conv2", new Conv2d(16, 32, 3, { padding: 1, stride: 2 }));
    this.conv3 = this.registerModule("conv3", new Conv2d(32, 32, 3, { padding: 1 }));
    this.fc1 = this.registerModule("fc1", new Linear(32 * h * w, 128));
    this.fc2 = this.registerModule("fc2", new Linear(128, bits));
  }

  forward(x: Tensor): Tensor {
    const f = this.conv3.forward(this.conv2.forward(this.conv1.forward(x.mul(2).sub(1)).relu()).relu()).relu();
    return this.fc2.forward(this.fc1.forward(f.flatten(1)).relu());
  }
}

/** The fixed bit string (0/1) of `bits` bits from `seed`. */
export function secretBits(bits: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: bits }, () => (rng.next() < 0.5 ? 0 : 1));
}

export class Issba extends GeneratorAttack {
  readonly secret: Float32Array;

  constructor(params: AttackParams, spec: ImageSpec, artifacts?: AttackArtifacts) {
    super(
      {
        name: "issba",
        description:
          "sample-specific invisible residual from a steganographic encoder hiding a fixed bit string; dirty label",
        kind: "sample-specific",
        targeting: "all-to-one",
      },
      params,
      spec,
      artifacts,
    );
    this.secret = secretBits(numberParam(params, "bits"), numberParam(params, "patternSeed"));
  }

  private encoder(): IssbaEncoder {
    return new IssbaEncoder(this.spec, numberParam(this.params, "bits"), numberParam(this.params, "bound"));
  }

  protected checkArtifacts(a: AttackArtifacts): void {
    const enc = this.encoder();
    try {
      loadModuleArtifacts(enc, a, "encoder.", `attack '${this.name}'`);
    } finally {
      enc.dispose();
    }
  }

  /** The encoder's residual for x with the fixed secret. */
  #residual(enc: IssbaEncoder, x: Tensor): Tensor {
    const n = x.shape[0] as number;
    const s = tensor(this.secret, { shape: [1, this.secret.length] }).expand([n, this.secret.length]);
    return enc.forward(x, s);
  }

  protected triggerWith(a: AttackArtifacts, x: Tensor): Tensor {
    const enc = this.encoder();
    try {
      loadModuleArtifacts(enc, a, "encoder.", `attack '${this.name}'`);
      return noGrad(() => x.add(this.#residual(enc, x)));
    } finally {
      enc.dispose();
    }
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    const t = this.targetClass;
    return {
      poison: this.choosePoisonOutsideTarget(train, numberParam(this.params, "rate"), rng),
      cover: new Int32Array(0),
      poisonLabel: () => t,
    };
  }

  protected trainNetwork(data: ImageDataset, seed: number, _ctx: AttackContext): Promise<TrainedNetwork> {
    const p = (n: string) => numberParam(this.params, n);
    const bits = p("bits");
    const { channels: c, height: h, width: w } = this.spec;
    manualSeed(Rng.derive(seed, INIT_STREAM).nextUint32() & 0x7fffffff);
    const enc = this.encoder();
    const dec = new IssbaDecoder(this.spec, bits);
    const opt = new Adam([...enc.parameters(), ...dec.parameters()], { lr: p("lr") });
    const rng = Rng.derive(seed, TRAIN_STREAM);
    const batchOf = (size: number): Int32Array => Int32Array.from({ length: size }, () => rng.int(0, data.count));
    try {
      let loss = 0;
      for (let step = 0; step < p("steps"); step++) {
        loss = tidy(() => {
          const rows = batchOf(NETWORK_BATCH);
          const x = imagesToTensor(gatherImages(data, rows), NETWORK_BATCH, h, w, c);
          const s = tensor(
            Float32Array.from({ length: NETWORK_BATCH * bits }, () => (rng.next() < 0.5 ? 0 : 1)),
            { shape: [NETWORK_BATCH, bits] },
          );
          const r = enc.forward(x, s);
          // Uniform noise of one rounding step: the poisoned images are stored as bytes.
          const noise = tensor(
            Float32Array.from({ length: NETWORK_BATCH * c * h * w }, () => rng.uniform(-0.5, 0.5) / 255),
            { shape: [NETWORK_BATCH, c, h, w] },
          );
          const logits = dec.forward(x.add(r).clamp(0, 1).add(noise));
          // The residual's penalty is off for the first 30% of the steps, then ramps up to full
          // weight at 70% (StegaStamp ramps its image loss too): from the start, Adam would shrink
          // the residual to nothing before the decoder learns to read it.
          const ramp = Math.min(1, Math.max(0, (step / p("steps") - 0.3) / 0.4));
          const l = F.binaryCrossEntropyWithLogits(logits, s).add(
            r
              .square()
              .mean()
              .mul(p("imageWeight") * ramp),
          );
          opt.zeroGrad();
          l.backward();
          opt.step();
          return l.item();
        });
      }
      const details = this.#measure(enc, dec, data, rng);
      return Promise.resolve({ artifacts: moduleArtifacts(enc, "encoder."), details: { ...details, finalLoss: loss } });
    } finally {
      opt.dispose();
      enc.dispose();
      dec.dispose();
    }
  }

  /** Decoder bit accuracy on up to 512 attacker images carrying the fixed secret (after rounding to bytes), and the residual's size. */
  #measure(enc: IssbaEncoder, dec: IssbaDecoder, data: ImageDataset, rng: Rng): Record<string, number> {
    const n = Math.min(512, data.count);
    const rows = Int32Array.from({ length: n }, () => rng.int(0, data.count));
    const { channels: c, height: h, width: w } = this.spec;
    return noGrad(() =>
      tidy(() => {
        const x = imagesToTensor(gatherImages(data, rows), n, h, w, c);
        const poisoned = x.add(this.#residual(enc, x)).clamp(0, 1).mul(255).round().div(255);
        const r = poisoned.sub(x);
        const secret = tensor(this.secret, { shape: [1, this.secret.length] });
        const bitAccuracy = dec.forward(poisoned).gt(0).float().eq(secret).float().mean().item();
        // How much the residual differs between images (0 would be one fixed pattern).
        const spread = r.std(0).mean().item();
        return {
          bitAccuracy,
          residualMaxAbs: r.abs().max().item(),
          residualRms: r.square().mean().sqrt().item(),
          residualSpreadAcrossImages: spread,
        };
      }),
    );
  }
}
