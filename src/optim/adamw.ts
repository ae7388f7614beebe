// AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, i.e. the
// parameter is multiplied by 1 - lr * weightDecay each step (PyTorch's torch.optim.AdamW).
import { type Tensor } from "../engine/index.js";
import {
  adamDefaults,
  adamUpdate,
  restoreAdamState,
  validateAdam,
  type AdamHyper,
  type AdamOptions,
  type AdamState,
} from "./adam.js";
import { Optimizer, type ParamGroup, type ParamGroupInput, type StateValue } from "./optimizer.js";

export class AdamW extends Optimizer<AdamHyper, AdamState> {
  /** Same options as Adam; weightDecay defaults to 1e-2. */
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamHyper>[], options: AdamOptions = {}) {
    super("AdamW", params, adamDefaults(options, 1e-2));
  }

  protected override validate(h: Readonly<AdamHyper>, where: string): void {
    validateAdam(h, where);
  }

  protected override update(
    param: Tensor,
    grad: Tensor,
    group: ParamGroup<AdamHyper>,
    state: AdamState | undefined,
  ): AdamState {
    return adamUpdate(param, grad, state, group, true);
  }

  protected override restoreState(raw: Readonly<Record<string, StateValue>>, param: Tensor, where: string): AdamState {
    return restoreAdamState(raw, param, where);
  }
}
