// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay
// (PyTorch's torch.optim.SGD).
import { type Tensor } from "../engine/index.js";
import { Optimizer, restoreStateTensor, type ParamGroup, type ParamGroupInput, type StateValue } from "./optimizer.js";
import { checkBoolean, checkFiniteNumber, checkNonNegative } from "./validate.js";

export interface SgdHyper {
  lr: number;
  initialLr?: number;
  momentum: number;
  dampening: number;
  /** L2 penalty: added to the gradient as weightDecay * param. */
  weightDecay: number;
  nesterov: boolean;
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export type SgdState = { momentumBuffer: Tensor };

/**
 * One SGD update of `param` in place. The momentum buffer starts as a copy of the first
 * (decayed) gradient, without dampening, as in PyTorch; returns the state to keep.
 */
export function sgdUpdate(param: Tensor, grad: Tensor, state: SgdState | undefined, h: SgdHyper): SgdState | undefined {
  let d = h.weightDecay !== 0 ? grad.add(param, h.weightDecay) : grad;
  let next = state;
  if (h.momentum !== 0) {
    if (next === undefined) next = { momentumBuffer: d.clone() };
    else next.momentumBuffer.mul_(h.momentum).add_(d, 1 - h.dampening);
    d = h.nesterov ? d.add(next.momentumBuffer, h.momentum) : next.momentumBuffer;
  }
  param.add_(d, -h.lr);
  return next;
}

export class SGD extends Optimizer<SgdHyper, SgdState> {
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<SgdHyper>[], options: SgdOptions) {
    if (options === null || typeof options !== "object")
      throw new TypeError(`SGD: expected an options object with lr, got ${String(options)}`);
    super("SGD", params, {
      lr: options.lr,
      momentum: options.momentum ?? 0,
      dampening: options.dampening ?? 0,
      weightDecay: options.weightDecay ?? 0,
      nesterov: options.nesterov ?? false,
    });
  }

  protected override validate(h: Readonly<SgdHyper>, where: string): void {
    checkNonNegative(where, "momentum", h.momentum);
    checkFiniteNumber(where, "dampening", h.dampening);
    checkNonNegative(where, "weightDecay", h.weightDecay);
    checkBoolean(where, "nesterov", h.nesterov);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new RangeError(
        `${where}: nesterov requires momentum > 0 and dampening = 0, got momentum=${h.momentum}, dampening=${h.dampening}`,
      );
    }
  }

  protected override update(
    param: Tensor,
    grad: Tensor,
    group: ParamGroup<SgdHyper>,
    state: SgdState | undefined,
  ): SgdState | undefined {
    return sgdUpdate(param, grad, state, group);
  }

  protected override restoreState(raw: Readonly<Record<string, StateValue>>, param: Tensor, where: string): SgdState {
    return { momentumBuffer: restoreStateTensor(raw, "momentumBuffer", param, where) };
  }
}
