// Frequency (Zeng et al., "Rethinking the Backdoor Attacks' Triggers: A Frequency Perspective",
// ICCV 2021). Backdoor triggers leave high-frequency artifacts, so a small binary CNN trained on
// the 2-D DCT of images tells clean inputs from triggered ones — without knowing the attack: the
// defender makes its own "poisoned" examples from its reserved clean set with generic random
// triggers (frequency-triggers.ts), drawn afresh every epoch as the authors redraw them every
// round. The score is the detector network's log-odds of "poisoned" (a monotone function of its
// probability, so the same ranking and the same flags, without float32 saturating at p = 1).
//
// Differences from the authors' code, all documented in docs/baselines.md: the network is their
// six-convolution design (widths w, w, 2w, 2w, 4w, 4w; ELU, BatchNorm, 2x2 max-pool and dropout
// 0.2/0.3/0.4 after each pair) at w = 16 by default instead of 32 (4x cheaper on 2 CPU cores);
// Adam (lr 1e-3, weight decay 1e-4) instead of Adadelta; the DCT is of [0, 1] images (theirs is
// of 0–255 values, a constant factor); `epochs` passes over clean + synthetic pairs instead of
// 5 rounds of 10 epochs.
import { F, inferenceMode, manualSeed, tensor, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, Sequential } from "../nn/index.js";
import { Adam } from "../optim/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { imagesToTensor } from "../data/batch.js";
import { numberParam, type ParamTable } from "../attacks/params.js";
import type { ParamValue } from "../attacks/attack.js";
import { Rng } from "../util/rng.js";
import { dct2 } from "./dct.js";
import {
  checkBatch,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
} from "./detector.js";
import { predictionOf } from "./model-forward.js";
import { synthesiseTriggered } from "./frequency-triggers.js";

export const FREQUENCY_PARAMS: ParamTable = {
  width: {
    type: "integer",
    default: 16,
    min: 1,
    max: 256,
    description: "channels of the first convolution pair (the paper's network: 32); the others are 2x and 4x",
  },
  epochs: {
    type: "integer",
    default: 4,
    min: 1,
    max: 1000,
    description: "passes over the reserved set and its synthetic triggered copies (fresh triggers each epoch)",
  },
  batchSize: {
    type: "integer",
    default: 64,
    min: 2,
    description: "examples per step (clean and triggered mixed, as the authors shuffle them)",
  },
  lr: {
    type: "number",
    default: 1e-3,
    above: 0,
    max: 10,
    description: "Adam learning rate (the authors: Adadelta, lr 0.05)",
  },
  weightDecay: { type: "number", default: 1e-4, min: 0, description: "L2 weight decay (the authors' 1e-4)" },
  seed: {
    type: "integer",
    default: 0,
    min: 0,
    description: "seed of the synthetic triggers, the shuffling and the network's initialisation",
  },
};

/** ELU(x) = x for x > 0, exp(x) − 1 otherwise (alpha 1), as the authors' network uses. */
class Elu extends Module<[Tensor], Tensor> {
  forward(x: Tensor): Tensor {
    return tidy(() => x.relu().add(x.clamp(null, 0).exp().sub(1)));
  }
}

/** The authors' six-convolution binary classifier at width w, for [N, C, H, W] DCT inputs. */
export class FrequencyNet extends Module<[Tensor], Tensor> {
  readonly body: Sequential;

  constructor(channels: number, height: number, width: number, w: number) {
    super();
    if (height < 8 || width < 8)
      throw new RangeError(
        `frequency: the detector network pools three times; images must be at least 8x8, got ${height}x${width}`,
      );
    const block = (cin: number, cout: number): Module[] => [
      new Conv2d(cin, cout, 3, { padding: 1 }),
      new Elu(),
      new BatchNorm2d(cout),
    ];
    const flat = 4 * w * Math.floor(height / 8) * Math.floor(width / 8);
    this.body = this.registerModule(
      "body",
      new Sequential(
        ...block(channels, w),
        ...block(w, w),
        new MaxPool2d(2),
        new Dropout(0.2),
        ...block(w, 2 * w),
        ...block(2 * w, 2 * w),
        new MaxPool2d(2),
        new Dropout(0.3),
        ...block(2 * w, 4 * w),
        ...block(4 * w, 4 * w),
        new MaxPool2d(2),
        new Dropout(0.4),
        new Flatten(),
        new Linear(flat, 2),
      ),
    );
  }

  forward(x: Tensor): Tensor {
    return this.body.forward(x);
  }
}

/** Log-odds of "poisoned" (class 1) from the network's two logits: z1 − z0. */
function poisonedLogOdds(net: FrequencyNet, x: Tensor): Float64Array {
  const z = tidy(() => {
    const logits = net.forward(dct2(x));
    return logits.select(1, 1).sub(logits.select(1, 0)).data() as Float32Array;
  });
  return Float64Array.from(z);
}

export interface FrequencyFitRecord {
  epochs: { epoch: number; loss: number; accuracy: number }[];
  trainImages: number;
}

/** Trains `net` in place on the reserved images [N, C, H, W] and their synthetic triggered copies. */
function trainNet(
  net: FrequencyNet,
  clean: Float32Array,
  shape: [number, number, number, number],
  p: Readonly<Record<string, ParamValue>>,
): FrequencyFitRecord {
  const [n, c, h, w] = shape;
  const per = c * h * w;
  const epochs = numberParam(p, "epochs");
  const batchSize = numberParam(p, "batchSize");
  const seed = numberParam(p, "seed");
  const opt = new Adam(net.parameters(), { lr: numberParam(p, "lr"), weightDecay: numberParam(p, "weightDecay") });
  const record: FrequencyFitRecord = { epochs: [], trainImages: n };
  try {
    for (let e = 0; e < epochs; e++) {
      manualSeed(seed * 1009 + e);
      const rng = Rng.derive(seed, e);
      const triggered = synthesiseTriggered(clean, shape, rng);
      const order = rng.permutation(2 * n);
      net.train();
      let lossSum = 0;
      let right = 0;
      for (let at = 0; at < order.length; at += batchSize) {
        const idx = order.subarray(at, Math.min(at + batchSize, order.length));
        const xb = new Float32Array(idx.length * per);
        const yb = new BigInt64Array(idx.length);
        idx.forEach((j, k) => {
          const src = j < n ? clean : triggered;
          const i = j < n ? j : j - n;
          xb.set(src.subarray(i * per, (i + 1) * per), k * per);
          yb[k] = j < n ? 0n : 1n;
        });
        const [loss, correct] = tidy(() => {
          const y = tensor(yb);
          opt.zeroGrad();
          const logits = net.forward(dct2(tensor(xb, { shape: [idx.length, c, h, w] })));
          const l = F.crossEntropy(logits, y);
          l.backward();
          opt.step();
          return [l.item(), logits.argmax(1).eq(y).sum().item()] as const;
        });
        lossSum += loss * idx.length;
        right += correct;
      }
      record.epochs.push({ epoch: e + 1, loss: lossSum / order.length, accuracy: right / order.length });
    }
  } finally {
    opt.dispose();
    net.eval();
  }
  return record;
}

export class FrequencyDetector implements InputDetector {
  readonly name = "frequency";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly #ctx: DetectorContext;
  readonly #net: FrequencyNet;

  /** Trained on the reserved clean set, or rebuilt from saved weights (copied in; the caller keeps the tensors). */
  constructor(
    ctx: DetectorContext,
    source: ImageDataset | { weights: Map<string, Tensor> },
    params: Readonly<Record<string, ParamValue>>,
  ) {
    this.#ctx = ctx;
    this.params = params;
    const { channels } = ctx.preprocessing;
    const [h, w] = ctx.preprocessing.imageSize;
    manualSeed(numberParam(params, "seed"));
    this.#net = new FrequencyNet(channels, h, w, numberParam(params, "width"));
    try {
      if ("weights" in source) {
        this.#net.loadStateDict(source.weights);
        this.#net.eval();
        this.fitted = { restored: true };
        return;
      }
      if (source.count < 2)
        throw new RangeError(`frequency: needs at least 2 reserved clean images to train on, got ${source.count}`);
      if (source.height !== h || source.width !== w || source.channels !== channels) {
        throw new RangeError(
          `frequency: reserved images are ${source.height}x${source.width}x${source.channels}, the model reads ${h}x${w}x${channels}`,
        );
      }
      const clean = tidy(
        () =>
          imagesToTensor(source.images.subarray(0, source.count * h * w * channels), source.count, h, w, channels)
            .contiguous()
            .data() as Float32Array,
      );
      const t0 = process.hrtime.bigint();
      const record = trainNet(this.#net, clean, [source.count, channels, h, w], params);
      this.fitted = { ...record, trainSeconds: Number(process.hrtime.bigint() - t0) / 1e9 };
    } catch (e) {
      this.#net.dispose();
      throw e;
    }
  }

  scoreBatch(x: Tensor): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    return inferenceMode(() => ({
      pred: predictionOf(this.#ctx.model, this.#ctx.preprocessing, x),
      score: poisonedLogOdds(this.#net, x),
    }));
  }

  state(): DetectorState {
    return { json: {}, tensors: this.#net.stateDict("net") };
  }

  dispose(): void {
    this.#net.dispose();
  }
}

/** The saved weights under "net." with the prefix taken off, for FrequencyNet.loadStateDict. */
export function frequencyWeights(tensors: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, t] of tensors) {
    if (!k.startsWith("net."))
      throw new RangeError(`detector bundle: frequency state tensor '${k}' is not under 'net.'`);
    out.set(k.slice(4), t);
  }
  return out;
}
