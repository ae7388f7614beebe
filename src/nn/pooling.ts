// 2-D pooling layers (torch.nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d).
import { F, type Tensor } from "../engine/index.js";
import { Module } from "./module.js";
import { type IntPair, intPair } from "./options.js";
import { pyBool, pyIntOrTuple } from "./repr.js";

export interface MaxPool2dOptions {
  /** Default: kernelSize. */
  stride?: IntPair;
  /** Implicit -inf padding; at most half the kernel. Default 0. */
  padding?: IntPair;
  /** Default 1. */
  dilation?: IntPair;
  /** Round the output size up instead of down. Default false. */
  ceilMode?: boolean;
}

/** Checks the pooling arguments as PyTorch does, but up front and naming the layer. */
function checkPool(layer: string, kernelSize: IntPair, stride: IntPair, padding: IntPair, dilation: IntPair): void {
  const [kh, kw] = intPair(layer, "kernelSize", kernelSize, 1);
  intPair(layer, "stride", stride, 1);
  const [ph, pw] = intPair(layer, "padding", padding, 0);
  const [dh, dw] = intPair(layer, "dilation", dilation, 1);
  // Padding beyond half the (dilated) kernel would make windows that see only padding.
  const halfH = Math.floor((dh * (kh - 1) + 1) / 2);
  const halfW = Math.floor((dw * (kw - 1) + 1) / 2);
  if (ph > halfH || pw > halfW) {
    throw new RangeError(
      `${layer}: padding (${JSON.stringify(padding)}) must be at most half the kernel size (${JSON.stringify(kernelSize)})`,
    );
  }
}

/** A copy of an int-or-pair argument, kept in the user's form for printing. */
function own(v: IntPair): IntPair {
  return typeof v === "number" ? v : [v[0], v[1]];
}

export class MaxPool2d extends Module {
  readonly kernelSize: IntPair;
  readonly stride: IntPair;
  readonly padding: IntPair;
  readonly dilation: IntPair;
  readonly ceilMode: boolean;

  constructor(kernelSize: IntPair, opts: MaxPool2dOptions = {}) {
    super();
    this.kernelSize = own(kernelSize);
    this.stride = own(opts.stride ?? kernelSize);
    this.padding = own(opts.padding ?? 0);
    this.dilation = own(opts.dilation ?? 1);
    this.ceilMode = opts.ceilMode ?? false;
    checkPool("MaxPool2d", this.kernelSize, this.stride, this.padding, this.dilation);
  }

  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, pair(this.kernelSize), {
      stride: pair(this.stride),
      padding: pair(this.padding),
      dilation: pair(this.dilation),
      ceilMode: this.ceilMode,
    });
  }

  override extraRepr(): string {
    return (
      `kernel_size=${pyIntOrTuple(this.kernelSize)}, stride=${pyIntOrTuple(this.stride)}, padding=${pyIntOrTuple(this.padding)}, ` +
      `dilation=${pyIntOrTuple(this.dilation)}, ceil_mode=${pyBool(this.ceilMode)}`
    );
  }
}

export interface AvgPool2dOptions {
  /** Default: kernelSize. */
  stride?: IntPair;
  /** Implicit zero padding; at most half the kernel. Default 0. */
  padding?: IntPair;
  /** Default false. */
  ceilMode?: boolean;
  /** Count padded zeros in the average's denominator. Default true. */
  countIncludePad?: boolean;
}

export class AvgPool2d extends Module {
  readonly kernelSize: IntPair;
  readonly stride: IntPair;
  readonly padding: IntPair;
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;

  constructor(kernelSize: IntPair, opts: AvgPool2dOptions = {}) {
    super();
    this.kernelSize = own(kernelSize);
    this.stride = own(opts.stride ?? kernelSize);
    this.padding = own(opts.padding ?? 0);
    this.ceilMode = opts.ceilMode ?? false;
    this.countIncludePad = opts.countIncludePad ?? true;
    checkPool("AvgPool2d", this.kernelSize, this.stride, this.padding, 1);
  }

  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, pair(this.kernelSize), {
      stride: pair(this.stride),
      padding: pair(this.padding),
      ceilMode: this.ceilMode,
      countIncludePad: this.countIncludePad,
    });
  }

  override extraRepr(): string {
    return `kernel_size=${pyIntOrTuple(this.kernelSize)}, stride=${pyIntOrTuple(this.stride)}, padding=${pyIntOrTuple(this.padding)}`;
  }
}

/** Averages each channel down to a fixed output size, whatever the input size. */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: IntPair;

  constructor(outputSize: IntPair) {
    super();
    intPair("AdaptiveAvgPool2d", "outputSize", outputSize, 1);
    this.outputSize = own(outputSize);
  }

  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, pair(this.outputSize));
  }

  override extraRepr(): string {
    return `output_size=${pyIntOrTuple(this.outputSize)}`;
  }
}

/** The engine's functionals take mutable pairs; the options were validated at construction. */
function pair(v: IntPair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}
