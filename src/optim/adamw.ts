// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, i.e. the
// parameter is multiplied by 1 - lr * weightDecay each step (PyTorch's torch.optim.AdamW).
import { type Tensor } from "../engine/index.js";
import { AdamFamily, adamDefaults, type AdamHyper, type AdamOptions } from "./adam.js";
import type { ParamGroupInput } from "./optimizer.js";

export class AdamW extends AdamFamily {
  /** Same options as Adam; weightDecay defaults to 1e-2. */
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamHyper>[], options: AdamOptions = {}) {
    super("AdamW", params, adamDefaults(options, 1e-2), true);
  }
}
