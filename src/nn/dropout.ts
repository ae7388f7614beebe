// Dropout (torch.nn.Dropout): zeroes elements with probability p while training and scales the
// rest by 1/(1-p); the identity in evaluation mode.
import { F, type Tensor } from "../engine/index.js";
import { Module } from "./module.js";
import { probability } from "./options.js";
import { pyFloat } from "./repr.js";

export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    this.p = probability("Dropout", "p", p);
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }

  override extraRepr(): string {
    return `p=${pyFloat(this.p)}, inplace=False`;
  }
}
