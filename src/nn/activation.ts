// Elementwise activations as modules, so that they appear in Sequential models and printouts.
import type { Tensor } from "../engine/index.js";
import { Module } from "./module.js";
import { oneOf } from "./options.js";
import { pyStr } from "./repr.js";

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}

/** min(max(x, 0), 6), as in MobileNet. */
export class ReLU6 extends Module {
  forward(x: Tensor): Tensor {
    return x.relu6();
  }
}

export type GELUApproximation = "none" | "tanh";

export class GELU extends Module {
  /** "none": exact x*Phi(x); "tanh": the tanh approximation. */
  readonly approximate: GELUApproximation;

  constructor(opts: { approximate?: GELUApproximation } = {}) {
    super();
    this.approximate = oneOf("GELU", "approximate", opts.approximate ?? "none", ["none", "tanh"]);
  }

  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }

  override extraRepr(): string {
    return `approximate=${pyStr(this.approximate)}`;
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}
