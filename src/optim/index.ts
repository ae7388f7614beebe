// Optimizers and learning-rate schedules.
export {
  Optimizer,
  restoreStateTensor,
  restoreStateNumber,
  type BaseHyper,
  type ParamGroup,
  type ParamGroupInput,
  type ParamState,
  type StateValue,
  type SavedParamGroup,
  type OptimizerStateDict,
} from "./optimizer.js";
export { SGD, sgdUpdate, type SgdHyper, type SgdOptions, type SgdState } from "./sgd.js";
export { Adam, adamUpdate, type AdamHyper, type AdamOptions, type AdamState } from "./adam.js";
export { AdamW } from "./adamw.js";
export { LRScheduler, bisectRight, type LrSchedule, type LRSchedulerState, type Schedulable } from "./lr-scheduler.js";
export { MultiStepLR } from "./multi-step-lr.js";
export { StepLR } from "./step-lr.js";
export { CosineAnnealingLR } from "./cosine-annealing-lr.js";
export { OneCycleLR, annealCos, annealLinear, type AnnealStrategy, type OneCycleLROptions } from "./one-cycle-lr.js";
export { LinearLR, type LinearLROptions } from "./linear-lr.js";
export { SequentialLR } from "./sequential-lr.js";
