// Adam (Kingma & Ba) with bias correction and optional AMSGrad (PyTorch's torch.optim.Adam).
// AdamW shares the class below (AdamFamily) and differs only in how weight decay is applied.
import { type Tensor, zerosLike } from "../engine/index.js";
import {
  Optimizer,
  restoreStateNumber,
  restoreStateTensor,
  type ParamGroup,
  type ParamGroupInput,
  type StateValue,
} from "./optimizer.js";
import { checkBoolean, checkHalfOpenUnit, checkNonNegative } from "./validate.js";

export interface AdamHyper {
  lr: number;
  initialLr?: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}

export type AdamState = {
  /** Updates applied so far to this parameter (drives the bias corrections). */
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** Running maximum of expAvgSq; only with amsgrad. */
  maxExpAvgSq?: Tensor;
};

/**
 * One Adam update of `param` in place. With `decoupledWeightDecay` (AdamW) the parameter is
 * shrunk by lr * weightDecay before the moment update; otherwise weightDecay * param is added
 * to the gradient (L2), as PyTorch's Adam does.
 */
export function adamUpdate(
  param: Tensor,
  grad: Tensor,
  state: AdamState | undefined,
  h: AdamHyper,
  decoupledWeightDecay: boolean,
): AdamState {
  const [beta1, beta2] = h.betas;
  const s = state ?? { step: 0, expAvg: zerosLike(param), expAvgSq: zerosLike(param) };
  // The group may have switched amsgrad on after earlier steps; the maximum then starts at 0.
  if (h.amsgrad && s.maxExpAvgSq === undefined) s.maxExpAvgSq = zerosLike(param);
  s.step += 1;
  let g = grad;
  if (h.weightDecay !== 0) {
    if (decoupledWeightDecay) param.mul_(1 - h.lr * h.weightDecay);
    else g = grad.add(param, h.weightDecay);
  }
  s.expAvg.lerp_(g, 1 - beta1);
  s.expAvgSq.mul_(beta2).addcmul_(g, g, 1 - beta2);
  const biasCorrection1 = 1 - beta1 ** s.step;
  const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** s.step);
  const second = h.amsgrad && s.maxExpAvgSq !== undefined ? s.maxExpAvgSq.maximum_(s.expAvgSq) : s.expAvgSq;
  const denom = second.sqrt().div_(biasCorrection2Sqrt).add_(h.eps);
  param.addcdiv_(s.expAvg, denom, -h.lr / biasCorrection1);
  return s;
}

/** Defaults from options, shared by Adam and AdamW. */
export function adamDefaults(options: AdamOptions, weightDecay: number): AdamHyper {
  return {
    lr: options.lr ?? 1e-3,
    betas: options.betas ?? [0.9, 0.999],
    eps: options.eps ?? 1e-8,
    weightDecay: options.weightDecay ?? weightDecay,
    amsgrad: options.amsgrad ?? false,
  };
}

export function validateAdam(h: Readonly<AdamHyper>, where: string): void {
  if (!Array.isArray(h.betas) || h.betas.length !== 2) {
    throw new TypeError(`${where}: betas must be a pair [beta1, beta2], got ${JSON.stringify(h.betas)}`);
  }
  checkHalfOpenUnit(where, "betas[0]", h.betas[0]);
  checkHalfOpenUnit(where, "betas[1]", h.betas[1]);
  checkNonNegative(where, "eps", h.eps);
  checkNonNegative(where, "weightDecay", h.weightDecay);
  checkBoolean(where, "amsgrad", h.amsgrad);
}

export function restoreAdamState(raw: Readonly<Record<string, StateValue>>, param: Tensor, where: string): AdamState {
  const s: AdamState = {
    step: restoreStateNumber(raw, "step", where),
    expAvg: restoreStateTensor(raw, "expAvg", param, where),
    expAvgSq: restoreStateTensor(raw, "expAvgSq", param, where),
  };
  if (raw["maxExpAvgSq"] !== undefined) s.maxExpAvgSq = restoreStateTensor(raw, "maxExpAvgSq", param, where);
  return s;
}

/** Adam and AdamW: the same hyperparameters, state and update; only the weight decay differs. */
export abstract class AdamFamily extends Optimizer<AdamHyper, AdamState> {
  protected constructor(
    name: string,
    params: readonly Tensor[] | readonly ParamGroupInput<AdamHyper>[],
    defaults: AdamHyper,
    private readonly decoupledWeightDecay: boolean,
  ) {
    super(name, params, defaults);
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
    return adamUpdate(param, grad, state, group, this.decoupledWeightDecay);
  }

  protected override restoreState(raw: Readonly<Record<string, StateValue>>, param: Tensor, where: string): AdamState {
    return restoreAdamState(raw, param, where);
  }
}

export class Adam extends AdamFamily {
  constructor(params: readonly Tensor[] | readonly ParamGroupInput<AdamHyper>[], options: AdamOptions = {}) {
    super("Adam", params, adamDefaults(options, 0), false);
  }
}
