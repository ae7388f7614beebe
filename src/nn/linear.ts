// Fully connected layer: y = x W^T + b (torch.nn.Linear), and the weight-and-bias base it shares with Conv2d.
import { F, type Tensor, zeros } from "../engine/index.js";
import { kaimingUniform_, uniform_, calculateFanInAndFanOut } from "./init.js";
import { Module } from "./module.js";
import { positiveInt } from "./options.js";
import { pyBool } from "./repr.js";

export interface LinearOptions {
  /** Learn an additive bias. Default true. */
  bias?: boolean;
}

/**
 * A layer with a weight and an optional bias of the weight's first dimension, initialised as
 * PyTorch initialises Linear and Conv layers.
 */
export abstract class AffineModule extends Module {
  /** Registers the weight (of `shape`) and, unless `bias` is false, the bias; then initialises them. */
  protected registerAffine(shape: readonly number[], bias: boolean): void {
    this.registerParameter("weight", zeros([...shape]));
    this.registerParameter("bias", bias ? zeros([shape[0] as number]) : null);
    this.resetParameters();
  }

  /** Linear: [outFeatures, inFeatures]; Conv2d: [outChannels, inChannels / groups, kh, kw]. */
  get weight(): Tensor {
    return this.requireParameter("weight");
  }

  /** [out], or null without bias. */
  get bias(): Tensor | null {
    return this.getParameter("bias");
  }

  /** PyTorch's default: kaiming_uniform(a=sqrt 5), i.e. U(+-1/sqrt(fan_in)) for weight and bias. */
  resetParameters(): void {
    resetAffine(this.weight, this.bias);
  }
}

export class Linear extends AffineModule {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = positiveInt("Linear", "inFeatures", inFeatures);
    this.outFeatures = positiveInt("Linear", "outFeatures", outFeatures);
    this.registerAffine([outFeatures, inFeatures], opts.bias ?? true);
  }

  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }

  override extraRepr(): string {
    return `in_features=${this.inFeatures}, out_features=${this.outFeatures}, bias=${pyBool(this.bias !== null)}`;
  }
}

/**
 * The default initialisation PyTorch gives Linear and Conv layers. a = sqrt(5) makes the
 * kaiming bound gain*sqrt(3/fan_in) equal 1/sqrt(fan_in), the bias range too.
 */
export function resetAffine(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias !== null) {
    const { fanIn } = calculateFanInAndFanOut(weight);
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    uniform_(bias, -bound, bound);
  }
}
