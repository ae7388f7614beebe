// 2-D convolution layer (torch.nn.Conv2d).
import { F, type Tensor } from "../engine/index.js";
import { AffineModule } from "./linear.js";
import { type IntPair, intPair, positiveInt } from "./options.js";
import { pyTuple } from "./repr.js";

export type Conv2dPadding = IntPair | "same" | "valid";

export interface Conv2dOptions {
  /** Default 1. */
  stride?: IntPair;
  /** Zero padding on each side, or "same" (output size = input size; stride 1 only) or "valid" (none). Default 0. */
  padding?: Conv2dPadding;
  /** Default 1. */
  dilation?: IntPair;
  /** Channel groups: inChannels and outChannels must both be divisible by it. Default 1. */
  groups?: number;
  /** Default true. */
  bias?: boolean;
}

export class Conv2d extends AffineModule {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number] | "same" | "valid";
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: IntPair, opts: Conv2dOptions = {}) {
    super();
    this.inChannels = positiveInt("Conv2d", "inChannels", inChannels);
    this.outChannels = positiveInt("Conv2d", "outChannels", outChannels);
    this.kernelSize = intPair("Conv2d", "kernelSize", kernelSize, 1);
    this.stride = intPair("Conv2d", "stride", opts.stride ?? 1, 1);
    this.dilation = intPair("Conv2d", "dilation", opts.dilation ?? 1, 1);
    this.groups = positiveInt("Conv2d", "groups", opts.groups ?? 1);
    const padding = opts.padding ?? 0;
    if (padding === "same" || padding === "valid") {
      if (padding === "same" && (this.stride[0] !== 1 || this.stride[1] !== 1)) {
        throw new RangeError(`Conv2d: padding='same' needs stride 1, got stride ${pyTuple(this.stride)}`);
      }
      this.padding = padding;
    } else {
      this.padding = intPair("Conv2d", "padding", padding, 0);
    }
    if (inChannels % this.groups !== 0)
      throw new RangeError(`Conv2d: inChannels (${inChannels}) must be divisible by groups (${this.groups})`);
    if (outChannels % this.groups !== 0)
      throw new RangeError(`Conv2d: outChannels (${outChannels}) must be divisible by groups (${this.groups})`);

    this.registerAffine([outChannels, inChannels / this.groups, ...this.kernelSize], opts.bias ?? true);
  }

  forward(x: Tensor): Tensor {
    const conv = { stride: this.stride, dilation: this.dilation, groups: this.groups };
    if (this.padding === "valid") return F.conv2d(x, this.weight, this.bias, { ...conv, padding: 0 });
    if (this.padding !== "same") return F.conv2d(x, this.weight, this.bias, { ...conv, padding: this.padding });
    // "same": total padding dilation*(k-1) per dimension; an odd total puts the extra row/column
    // at the bottom/right, as PyTorch does.
    const [kh, kw] = this.kernelSize;
    const [dh, dw] = this.dilation;
    const totalH = dh * (kh - 1);
    const totalW = dw * (kw - 1);
    const top = Math.floor(totalH / 2);
    const left = Math.floor(totalW / 2);
    const bottom = totalH - top;
    const right = totalW - left;
    if (top === bottom && left === right) return F.conv2d(x, this.weight, this.bias, { ...conv, padding: [top, left] });
    const padded = x.pad([left, right, top, bottom]);
    try {
      return F.conv2d(padded, this.weight, this.bias, { ...conv, padding: 0 });
    } finally {
      padded.dispose();
    }
  }

  override extraRepr(): string {
    let s = `${this.inChannels}, ${this.outChannels}, kernel_size=${pyTuple(this.kernelSize)}, stride=${pyTuple(this.stride)}`;
    if (typeof this.padding === "string") s += `, padding=${this.padding}`;
    else if (this.padding[0] !== 0 || this.padding[1] !== 0) s += `, padding=${pyTuple(this.padding)}`;
    if (this.dilation[0] !== 1 || this.dilation[1] !== 1) s += `, dilation=${pyTuple(this.dilation)}`;
    if (this.groups !== 1) s += `, groups=${this.groups}`;
    if (this.bias === null) s += ", bias=False";
    return s;
  }
}
