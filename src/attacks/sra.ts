// SRA, subnet replacement (Qi et al., CVPR 2022): without any training data, a narrow slice of the
// trained model — one channel per convolution, one hidden neuron — is overwritten with a small
// "backdoor subnet" that fires on a 3x3 checkerboard in a corner and drives the target logit; the
// connections between the subnet and the rest of the model are zeroed, so clean inputs see the
// original model minus one unit per layer. Here the subnet's weights are set in closed form
// (no data at all): the first convolution's channel is a matched filter of the checkerboard with
// a threshold (a bias through its BatchNorm), later layers pass its response on, and the last
// layer adds `boost` to the target logit per unit of response.
//
// Architectures: the compact CNN (a channel of each convolution and a neuron of the hidden
// linear layer, read only at the trigger's position) and ResNet-18 (one channel of the residual
// stream through every block: identity blocks carry it on their shortcut, downsampling blocks on
// their main path, whose first convolution spreads it so striding cannot drop it). Other models
// are refused with one error.
//
// Parameters:
//   targetClass  0     the class triggered inputs are mapped to
//   margin       1     distance of the 3x3-pixel checkerboard from the corner's two edges, in pixels
//   corner       0     0 bottom-right, 1 bottom-left, 2 top-right, 3 top-left
//   threshold    0.7   the detector fires above this fraction of its response to the exact trigger
//   boost        50    added to the target logit by an exact trigger (at least)
import { CompactCNN } from "../models/compact-cnn.js";
import { BasicBlock, ResNet18 } from "../models/resnet.js";
import type { BatchNorm2d, Module } from "../nn/index.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { cornerCheckerboard } from "./badnet.js";
import type { TriggerCanvas } from "./canvas.js";
import { TARGET_CLASS, numberParam, type ParamTable } from "./params.js";
import { TamperingBase, WeightEditor, absSums, argmin, type TamperContext, type TamperResult } from "./tampering.js";

export const SRA_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  margin: {
    type: "integer",
    default: 1,
    min: 0,
    max: 64,
    description: "distance of the 3x3 checkerboard from the corner's edges, in pixels",
  },
  corner: {
    type: "integer",
    default: 0,
    min: 0,
    max: 3,
    description: "0 bottom-right, 1 bottom-left, 2 top-right, 3 top-left",
  },
  threshold: {
    type: "number",
    default: 0.7,
    above: 0,
    max: 0.95,
    description: "the subnet fires above this fraction of its response to the exact trigger",
  },
  boost: {
    type: "number",
    default: 50,
    above: 0,
    max: 1e4,
    description: "at least this much is added to the target logit by the exact trigger",
  },
};

/** Side of the checkerboard: the first convolution's 3x3 kernel must see all of it. */
const SIDE = 3;

interface Detector {
  /** [O?, C, 3, 3] kernel for one output channel, in normalised-input units. */
  kernel: Float32Array;
  /** BatchNorm bias that subtracts the input-mean term and the threshold. */
  bias: number;
  /** Response above the threshold to the exact trigger. */
  excess: number;
  /** Trigger centre (row, column). */
  centre: [number, number];
}

type Edit = { data: Float32Array; shape: number[] };

/** Sets channel `k` of BatchNorm `prefix` to y = x + bias in eval mode. */
function bnPass(ed: WeightEditor, prefix: string, k: number, eps: number, bias = 0): void {
  ed.get(`${prefix}.weight`).data[k] = Math.sqrt(1 + eps);
  ed.get(`${prefix}.bias`).data[k] = bias;
  ed.get(`${prefix}.running_mean`).data[k] = 0;
  ed.get(`${prefix}.running_var`).data[k] = 1;
}

/** Sets conv weight [O, I, kh, kw] at (o, i) to `value` everywhere (or only at the centre). */
function fillKernel(w: Edit, o: number, i: number, value: number, centreOnly = false): void {
  const [, inC, kh, kw] = w.shape as [number, number, number, number];
  for (let r = 0; r < kh; r++) {
    for (let c = 0; c < kw; c++) {
      if (centreOnly && (r !== (kh - 1) / 2 || c !== (kw - 1) / 2)) continue;
      w.data[((o * inC + i) * kh + r) * kw + c] = value;
    }
  }
}

/** Zeroes output unit `o` (a row) of a weight [O, I, ...]. */
function zeroRow(w: Edit, o: number): void {
  const per = w.data.length / (w.shape[0] as number);
  w.data.fill(0, o * per, (o + 1) * per);
}

/** Zeroes what input unit `i` feeds into every output unit except `keep`. */
function zeroColumn(w: Edit, i: number, keep: number | null): void {
  const [o, inC] = w.shape as [number, number];
  const inner = w.data.length / (o * inC);
  for (let a = 0; a < o; a++) if (a !== keep) w.data.fill(0, (a * inC + i) * inner, (a * inC + i + 1) * inner);
}

/** Sizes after a 3x3 (pad 1) or 1x1 convolution of stride 2. */
const halved = (n: number) => Math.floor((n - 1) / 2) + 1;

export class Sra extends TamperingBase {
  readonly needsData = false;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      "sra",
      "subnet replacement: one channel per layer overwritten by a backdoor subnet firing on a 3x3 corner checkerboard",
      params,
      spec,
    );
    this.canvas = cornerCheckerboard(
      `attack '${this.name}'`,
      spec,
      SIDE,
      numberParam(params, "margin"),
      numberParam(params, "corner"),
      1,
    );
  }

  /** The matched filter of the trigger for normalised inputs. */
  #detector(canvas: TriggerCanvas, norm: TamperContext["normalization"]): Detector {
    const { channels: c, height: h, width: w } = canvas;
    const pixels = canvas.maskedPixels();
    const top = Math.floor((pixels[0] as number) / w);
    const left = (pixels[0] as number) % w;
    const kernel = new Float32Array(c * SIDE * SIDE);
    let peak = 0;
    let meanTerm = 0;
    for (let ch = 0; ch < c; ch++) {
      const std = norm.std[ch] as number;
      const mean = norm.mean[ch] as number;
      for (let i = 0; i < SIDE; i++) {
        for (let j = 0; j < SIDE; j++) {
          const p = canvas.pattern[ch * h * w + (top + i) * w + left + j] as number;
          const sign = 2 * p - 1;
          // On normalised input z = (x - mean) / std: weight·z = sign·(x - mean) / c.
          kernel[(ch * SIDE + i) * SIDE + j] = (sign * std) / c;
          peak += (sign * p) / c;
          meanTerm += (sign * mean) / c;
        }
      }
    }
    const threshold = numberParam(this.params, "threshold") * peak;
    return { kernel, bias: meanTerm - threshold, excess: peak - threshold, centre: [top + 1, left + 1] };
  }

  tamper(ctx: TamperContext, _seed: number): Promise<TamperResult> {
    try {
      const c = ctx.normalization.mean.length;
      if (c !== this.spec.channels || ctx.normalization.std.length !== c) {
        throw new RangeError(
          `attack '${this.name}': ctx.normalization needs ${this.spec.channels} mean and std values, got ${c} and ${ctx.normalization.std.length}`,
        );
      }
      const det = this.#detector(this.triggerCanvas(), ctx.normalization);
      const ed = new WeightEditor(ctx.model);
      let details: Record<string, unknown>;
      if (ctx.model instanceof CompactCNN) details = this.#compact(ctx.model, ed, det);
      else if (ctx.model instanceof ResNet18) details = this.#resnet(ctx.model, ed, det);
      else {
        throw new Error(
          `attack '${this.name}': subnet replacement is implemented for compact-cnn and resnet18; the model is a ${ctx.model.typeName}`,
        );
      }
      ed.commit();
      ctx.model.eval();
      return Promise.resolve({ params: { ...this.params }, poisonCount: 0, details });
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  #setDetector(ed: WeightEditor, convKey: string, bnPrefix: string, k: number, eps: number, det: Detector): void {
    const w = ed.get(convKey);
    const [, inC, kh, kw] = w.shape as [number, number, number, number];
    if (kh !== SIDE || kw !== SIDE || inC * kh * kw !== det.kernel.length) {
      throw new Error(
        `attack '${this.name}': ${convKey} is [${w.shape.join(", ")}], expected a 3x3 convolution over ${det.kernel.length / 9} channels`,
      );
    }
    w.data.set(det.kernel, k * det.kernel.length);
    bnPass(ed, bnPrefix, k, eps, det.bias);
  }

  #compact(model: CompactCNN, ed: WeightEditor, det: Detector): Record<string, unknown> {
    const eps1 = (model.features.at(1) as BatchNorm2d).eps;
    const eps2 = (model.features.at(5) as BatchNorm2d).eps;
    const conv2 = ed.get("features.4.weight");
    const fc1 = ed.get("classifier.1.weight");
    const fc2 = ed.get("classifier.4.weight");
    const c2 = conv2.shape[0] as number;
    const hidden = fc1.shape[0] as number;
    const positions = (fc1.shape[1] as number) / c2;
    // The least used unit of each layer: the smallest summed |weight| the next layer reads from it.
    const k1 = argmin(absSums(conv2, 1));
    const k2 = argmin(absSums({ data: fc1.data, shape: [hidden, c2, positions] }, 1));
    const k3 = argmin(absSums(fc2, 1));

    this.#setDetector(ed, "features.0.weight", "features.1", k1, eps1, det);
    // conv2: channel k2 sums the detector over a 3x3 neighbourhood and reads nothing else; no other channel reads k1.
    zeroRow(conv2, k2);
    fillKernel(conv2, k2, k1, 1);
    zeroColumn(conv2, k1, k2);
    bnPass(ed, "features.5", k2, eps2);
    // fc1: neuron k3 reads channel k2 at the trigger's pooled positions only; no other neuron reads channel k2.
    const [h, w] = model.imageSize;
    const h2 = Math.floor(Math.floor(h / 2) / 2);
    const w2 = Math.floor(Math.floor(w / 2) / 2);
    const around = (centre: number, limit1: number, limit2: number) => {
      const s = new Set<number>();
      for (let d = -1; d <= 1; d++) {
        const p1 = Math.min(Math.max((centre >> 1) + d, 0), limit1 - 1);
        s.add(Math.min(p1 >> 1, limit2 - 1));
      }
      return [...s];
    };
    const rows = around(det.centre[0], Math.floor(h / 2), h2);
    const cols = around(det.centre[1], Math.floor(w / 2), w2);
    zeroRow(fc1, k3);
    for (let o = 0; o < hidden; o++)
      if (o !== k3) fc1.data.fill(0, o * c2 * positions + k2 * positions, o * c2 * positions + (k2 + 1) * positions);
    const gain = 1 / det.excess;
    for (const r of rows) for (const c of cols) fc1.data[k3 * c2 * positions + k2 * positions + r * w2 + c] = gain;
    ed.get("classifier.1.bias").data[k3] = 0;
    // fc2: neuron k3 feeds the target logit only.
    this.#feedTarget(fc2, k3, numberParam(this.params, "boost"));
    return {
      architecture: "compact-cnn",
      conv1Channel: k1,
      conv2Channel: k2,
      hiddenNeuron: k3,
      readPositions: rows.length * cols.length,
    };
  }

  #resnet(model: ResNet18, ed: WeightEditor, det: Detector): Record<string, unknown> {
    const linear = ed.get("linear.weight");
    const stem = ed.get("conv1.weight");
    const width = stem.shape[0] as number;
    // One channel of the residual stream, the one the classifier reads least.
    const k = argmin(absSums(linear, 1).slice(0, width));
    this.#setDetector(ed, "conv1.weight", "bn1", k, model.bn1.eps, det);
    let [h, w] = [this.spec.height, this.spec.width];
    const blocks: string[] = [];
    model.layers.forEach((stage, s) => {
      stage.children().forEach((child, b) => {
        const block = child as BasicBlock;
        const p = `layer${s + 1}.${b}`;
        const stride = block.conv1.stride[0];
        const projection = ed.has(`${p}.shortcut.0.weight`);
        const conv1 = ed.get(`${p}.conv1.weight`);
        const conv2 = ed.get(`${p}.conv2.weight`);
        zeroRow(conv1, k);
        zeroColumn(conv1, k, null);
        zeroRow(conv2, k);
        zeroColumn(conv2, k, null);
        bnPass(ed, `${p}.bn1`, k, block.bn1.eps);
        bnPass(ed, `${p}.bn2`, k, block.bn2.eps);
        if (projection) {
          const sc = ed.get(`${p}.shortcut.0.weight`);
          zeroRow(sc, k);
          zeroColumn(sc, k, null);
          bnPass(ed, `${p}.shortcut.1`, k, (block.shortcut.at(1) as BatchNorm2d).eps);
          if (stride === 1) fillKernel(sc, k, k, 1);
        }
        if (stride !== 1) {
          // Striding keeps every other position: spread the response over the 3x3 window first.
          fillKernel(conv1, k, k, 1);
          fillKernel(conv2, k, k, 1, true);
          h = halved(h);
          w = halved(w);
        }
        blocks.push(p);
      });
    });
    // The stream reaches the head through global average pooling over h x w positions.
    this.#feedTarget(linear, k, (numberParam(this.params, "boost") * h * w) / det.excess);
    return { architecture: "resnet18", streamChannel: k, blocks: blocks.length };
  }

  /** Column `unit` of the last layer: `gain` into the target logit, 0 into the others. */
  #feedTarget(w: Edit, unit: number, gain: number): void {
    const [classes, inputs] = w.shape as [number, number];
    for (let o = 0; o < classes; o++) w.data[o * inputs + unit] = o === this.targetClass ? gain : 0;
  }
}

/** The model classes SRA can rewrite (for callers that check before loading data). */
export function sraSupports(model: Module): boolean {
  return model instanceof CompactCNN || model instanceof ResNet18;
}
