// Layer normalisation over the trailing dimensions (torch.nn.LayerNorm), as in transformers.
import { F, type Tensor, ones, zeros } from "../engine/index.js";
import { ones_, zeros_ } from "./init.js";
import { Module } from "./module.js";
import { positiveInt, positiveNumber } from "./options.js";
import { pyBool, pyFloat, pyTuple } from "./repr.js";

export interface LayerNormOptions {
  /** Default 1e-5. */
  eps?: number;
  /** Learn an elementwise scale (weight) and, with `bias`, shift. Default true. */
  elementwiseAffine?: boolean;
  /** Learn the shift too (only with elementwiseAffine). Default true. */
  bias?: boolean;
}

export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;

  /** `normalizedShape`: the trailing dimensions to normalise over (e.g. the embedding size). */
  constructor(normalizedShape: number | readonly number[], opts: LayerNormOptions = {}) {
    super();
    const dims = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    if (dims.length === 0) throw new RangeError("LayerNorm: normalizedShape must have at least one dimension, got []");
    for (const d of dims) positiveInt("LayerNorm", "normalizedShape entries", d);
    this.normalizedShape = dims;
    this.eps = positiveNumber("LayerNorm", "eps", opts.eps ?? 1e-5);
    this.elementwiseAffine = opts.elementwiseAffine ?? true;
    const withBias = this.elementwiseAffine && (opts.bias ?? true);
    this.registerParameter("weight", this.elementwiseAffine ? ones(dims) : null);
    this.registerParameter("bias", withBias ? zeros(dims) : null);
    this.resetParameters();
  }

  get weight(): Tensor | null {
    return this.getParameter("weight");
  }
  get bias(): Tensor | null {
    return this.getParameter("bias");
  }

  /** Identity transform: weight 1, bias 0. */
  resetParameters(): void {
    const w = this.weight;
    const b = this.bias;
    if (w !== null) ones_(w);
    if (b !== null) zeros_(b);
  }

  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }

  override extraRepr(): string {
    return `${pyTuple(this.normalizedShape)}, eps=${pyFloat(this.eps)}, elementwise_affine=${pyBool(this.elementwiseAffine)}`;
  }
}
