// TrojanNN (Liu et al., NDSS 2018): pick the most connected neurons of a hidden layer (largest
// summed |outgoing weight|), optimise a trigger inside a fixed square mask so that it drives
// those neurons to a high activation (Adam, lr 0.1, on a black image), then retrain the model
// briefly on a small clean slice of which a fraction carries the trigger and the target label.
// The hidden layer: the compact CNN's hidden linear layer (before its ReLU); ResNet-18's pooled
// features. The trigger is parameterised as sigmoid(w) so it stays in [0, 1]; it is recorded as
// the `trigger` parameter (bytes, channel-major), so the test-time attack can be rebuilt from a
// checkpoint's record.
//
// Parameters:
//   targetClass  0      the class triggered inputs are mapped to
//   rate         0.1    fraction of the retraining slice triggered and relabelled
//   count        6000   clean training images in the retraining slice
//   epochs       1      retraining epochs (SGD, momentum 0.9)
//   lr           0.01   retraining learning rate
//   size         8      side of the square mask, in cells (one cell is one pixel up to 32-pixel images)
//   margin       1      distance of the mask from the bottom and right edges, in cells
//   neurons      2      how many of the most connected neurons the trigger excites
//   steps        1000   Adam steps of the trigger optimisation
//   stepSize     0.1    Adam learning rate of the trigger optimisation
//   activation   100    the activation the selected neurons are driven towards (squared error)
//   trigger      ""     the optimised trigger (C·S·S bytes); empty until `attack apply` sets it
import { F, gradients, keep, noGrad, tensor, tidy, type Tensor } from "../engine/index.js";
import { CompactCNN } from "../models/compact-cnn.js";
import { ResNet18 } from "../models/resnet.js";
import type { Module } from "../nn/index.js";
import { Adam } from "../optim/index.js";
import { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { TriggerCanvas, triggerScale } from "./canvas.js";
import { AttackParamError, TARGET_CLASS, numberListParam, numberParam, type ParamTable } from "./params.js";
import {
  TamperingBase,
  WeightEditor,
  absSums,
  finetuneParams,
  type TamperContext,
  type TamperResult,
} from "./tampering.js";

export const TROJANNN_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  ...finetuneParams({ rate: 0.1, count: 6000, epochs: 1, lr: 0.01 }),
  size: { type: "integer", default: 8, min: 1, max: 64, description: "side of the square trigger mask, in cells" },
  margin: {
    type: "integer",
    default: 1,
    min: 0,
    max: 64,
    description: "distance of the mask from the bottom and right edges, in cells",
  },
  neurons: {
    type: "integer",
    default: 2,
    min: 1,
    max: 64,
    description: "most connected hidden neurons the trigger is optimised to excite",
  },
  steps: { type: "integer", default: 1000, min: 1, max: 100000, description: "Adam steps of the trigger optimisation" },
  stepSize: {
    type: "number",
    default: 0.1,
    above: 0,
    max: 10,
    description: "Adam learning rate of the trigger optimisation",
  },
  activation: {
    type: "number",
    default: 100,
    above: 0,
    max: 1e6,
    description: "activation the selected neurons are driven towards",
  },
  trigger: {
    type: "integers",
    default: "",
    min: 0,
    max: 255,
    emptyAllowed: true,
    description: "the optimised trigger, channel-major bytes (set by `attack apply`)",
  },
};

interface HiddenLayer {
  /** Hidden activations [N, units] for normalised inputs. */
  forward(x: Tensor): Tensor;
  /** State key of the weight [out, units] that reads the hidden layer. */
  outgoing: string;
}

function hiddenLayer(model: Module, what: string): HiddenLayer {
  if (model instanceof CompactCNN) {
    return {
      forward: (x) => model.classifier.at(1).forward(model.classifier.at(0).forward(model.features.forward(x))),
      outgoing: "classifier.4.weight",
    };
  }
  if (model instanceof ResNet18) {
    return {
      forward: (x) => {
        let out = model.bn1.forward(model.conv1.forward(x)).relu();
        for (const stage of model.layers) out = stage.forward(out);
        return F.adaptiveAvgPool2d(out, 1).flatten(1);
      },
      outgoing: "linear.weight",
    };
  }
  throw new Error(
    `${what}: the trigger optimisation is implemented for compact-cnn and resnet18; the model is a ${model.typeName}`,
  );
}

export class TrojanNN extends TamperingBase {
  readonly needsData = true;
  /** Mask position and side, in pixels. */
  readonly #top: number;
  readonly #left: number;
  readonly #side: number;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      "trojannn",
      "trigger optimised to excite the most connected hidden neurons, then brief retraining on triggered data",
      params,
      spec,
    );
    const what = `attack '${this.name}'`;
    const s = triggerScale(spec.height, spec.width);
    this.#side = numberParam(params, "size") * s;
    const margin = numberParam(params, "margin") * s;
    this.#top = spec.height - this.#side - margin;
    this.#left = spec.width - this.#side - margin;
    if (this.#top < 0 || this.#left < 0) {
      throw new AttackParamError(
        `${what}: a ${this.#side}x${this.#side} mask ${margin} pixels from the edges does not fit a ${spec.height}x${spec.width} image (parameters 'size' and 'margin')`,
      );
    }
    const bytes = numberListParam(params, "trigger");
    const want = spec.channels * this.#side * this.#side;
    if (bytes.length > 0 && bytes.length !== want) {
      throw new AttackParamError(
        `${what}: parameter 'trigger' must list ${want} bytes (${spec.channels} channels x ${this.#side} x ${this.#side}), got ${bytes.length}`,
      );
    }
    if (bytes.length > 0) this.canvas = this.#canvasOf(Float32Array.from(bytes, (b) => b / 255));
  }

  protected override missingTrigger(): string {
    return (
      `attack '${this.name}': the trigger is optimised against a model by \`badexpert attack apply\`; ` +
      "use the parameters recorded in the tampered checkpoint (evaluate-defense and `attack preview --checkpoint` read them) or give --attack-param trigger=..."
    );
  }

  /** The square mask filled with `values` ([C, S, S], in [0, 1]). */
  #canvasOf(values: Float32Array): TriggerCanvas {
    const canvas = new TriggerCanvas(this.spec);
    const s = this.#side;
    canvas.drawCells(`attack '${this.name}'`, this.#top, this.#left, s, s, 1, (i, j) =>
      Array.from({ length: this.spec.channels }, (_, c) => values[(c * s + i) * s + j] as number),
    );
    return canvas;
  }

  /** The most connected hidden units: largest summed |outgoing weight|, best first. */
  static selectNeurons(model: Module, count: number, what = "attack 'trojannn'"): number[] {
    const layer = hiddenLayer(model, what);
    const sums = absSums(new WeightEditor(model).get(layer.outgoing), 1);
    if (count > sums.length)
      throw new RangeError(
        `${what}: parameter 'neurons' asks for ${count} neurons, the hidden layer has ${sums.length}`,
      );
    return sums
      .map((v, i) => [v, i] as const)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1])
      .slice(0, count)
      .map(([, i]) => i);
  }

  /**
   * Optimises the trigger for `neurons` of `model` (left unchanged, in eval mode): returns
   * [C, S, S] values in [0, 1] and the selected neurons' mean activation before and after.
   */
  optimiseTrigger(
    model: Module,
    normalization: TamperContext["normalization"],
    neurons: number[],
    seed: number,
  ): { values: Float32Array; before: number; after: number } {
    const layer = hiddenLayer(model, `attack '${this.name}'`);
    const { channels: c, height: h, width: w } = this.spec;
    const s = this.#side;
    const p = (n: string) => numberParam(this.params, n);
    const rng = new Rng(seed);
    // The variable covers the whole image; only the square under the mask reaches the model (a
    // black image elsewhere), so Adam never moves the rest.
    const init = Float32Array.from({ length: c * h * w }, () => rng.uniform(-1, 1));
    const maskData = new Float32Array(h * w);
    for (let i = 0; i < s; i++)
      maskData.fill(1, (this.#top + i) * w + this.#left, (this.#top + i) * w + this.#left + s);
    const param = keep(tensor(init, { shape: [1, c, h, w] }).requiresGrad_(true));
    const opt = new Adam([param], { lr: p("stepSize") });
    const pick = keep(tensor(BigInt64Array.from(neurons, (v) => BigInt(v))));
    const mask = keep(tensor(maskData, { shape: [1, 1, h, w] }));
    const mean = keep(tensor(Float32Array.from(normalization.mean), { shape: [1, c, 1, 1] }));
    const std = keep(tensor(Float32Array.from(normalization.std), { shape: [1, c, 1, 1] }));
    const activation = (t: Tensor) => layer.forward(t.mul(mask).sub(mean).div(std)).indexSelect(1, pick);
    model.eval();
    try {
      const before = noGrad(() => tidy(() => activation(param.sigmoid()).mean().item()));
      for (let step = 0; step < p("steps"); step++) {
        tidy(() => {
          const loss = activation(param.sigmoid()).sub(p("activation")).square().mean();
          // Gradients for the trigger only: the model's parameters must not accumulate any.
          const [g] = gradients([loss], [param]);
          if (!g) throw new Error(`attack '${this.name}': no gradient reached the trigger`);
          param.setGrad(g);
          opt.step();
          param.setGrad(null);
        });
      }
      return noGrad(() =>
        tidy(() => {
          // The trigger is pasted as bytes: measure the activation of what will be used.
          const t = param.sigmoid().mul(255).round().div(255);
          const square = t
            .slice(2, this.#top, this.#top + s)
            .slice(3, this.#left, this.#left + s)
            .contiguous();
          return {
            values: Float32Array.from(square.data() as Float32Array),
            before,
            after: activation(t).mean().item(),
          };
        }),
      );
    } finally {
      opt.dispose();
      for (const t of [param, pick, mask, mean, std]) t.dispose();
    }
  }

  async tamper(ctx: TamperContext, seed: number): Promise<TamperResult> {
    this.requireData(ctx);
    const neurons = TrojanNN.selectNeurons(ctx.model, numberParam(this.params, "neurons"));
    const device = ctx.device ?? "cpu";
    if (device !== "cpu") ctx.model.to("cpu");
    const opt = this.optimiseTrigger(ctx.model, ctx.normalization, neurons, seed);
    if (device !== "cpu") ctx.model.to(device);
    this.canvas = this.#canvasOf(opt.values);
    const trigger = Array.from(opt.values, (v) => Math.round(v * 255)).join(",");
    const poisonCount = await this.finetuneOnPoison(ctx, seed);
    return {
      params: { ...this.params, trigger },
      poisonCount,
      details: { neurons, activationBefore: opt.before, activationAfter: opt.after },
    };
  }
}
