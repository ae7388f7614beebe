// Flattens a range of dimensions into one (torch.nn.Flatten), e.g. feature maps into vectors.
import { type Tensor, formatShape } from "../engine/index.js";
import { Module } from "./module.js";

export class Flatten extends Module {
  readonly startDim: number;
  readonly endDim: number;

  /** Defaults keep the batch dimension: [N, C, H, W] becomes [N, C*H*W]. */
  constructor(startDim = 1, endDim = -1) {
    super();
    for (const [name, v] of [
      ["startDim", startDim],
      ["endDim", endDim],
    ] as const) {
      if (!Number.isInteger(v)) throw new RangeError(`Flatten: ${name} must be an integer, got ${String(v)}`);
    }
    this.startDim = startDim;
    this.endDim = endDim;
  }

  forward(x: Tensor): Tensor {
    const r = Math.max(x.rank, 1);
    const start = this.startDim < 0 ? this.startDim + r : this.startDim;
    const end = this.endDim < 0 ? this.endDim + r : this.endDim;
    if (start < 0 || start >= r || end < 0 || end >= r || start > end) {
      throw new RangeError(
        `Flatten: dims ${this.startDim}..${this.endDim} are not a valid range for input shape ${formatShape(x.shape)}`,
      );
    }
    return x.flatten(this.startDim, this.endDim);
  }

  override extraRepr(): string {
    return `start_dim=${this.startDim}, end_dim=${this.endDim}`;
  }
}
