// Fully connected layer: y = x W^T + b (torch.nn.Linear).
import { F, type Tensor, zeros } from "../engine/index.js";
import { kaimingUniform_, uniform_, calculateFanInAndFanOut } from "./init.js";
import { Module } from "./module.js";
import { positiveInt } from "./options.js";
import { pyBool } from "./repr.js";

export interface LinearOptions {
  /** Learn an additive bias. Default true. */
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = positiveInt("Linear", "inFeatures", inFeatures);
    this.outFeatures = positiveInt("Linear", "outFeatures", outFeatures);
    this.registerParameter("weight", zeros([outFeatures, inFeatures]));
    this.registerParameter("bias", (opts.bias ?? true) ? zeros([outFeatures]) : null);
    this.resetParameters();
  }

  /** [outFeatures, inFeatures] */
  get weight(): Tensor {
    return this.requireParameter("weight");
  }

  /** [outFeatures], or null without bias. */
  get bias(): Tensor | null {
    return this.getParameter("bias");
  }

  /** PyTorch's default: kaiming_uniform(a=sqrt 5), i.e. U(+-1/sqrt(fan_in)) for weight and bias. */
  resetParameters(): void {
    resetAffine(this.weight, this.bias);
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
