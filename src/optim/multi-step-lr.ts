// MultiStepLR: the lr is multiplied by gamma at each milestone epoch (the BaDExpert recipe
// uses milestones [2, 4, 6, 8] with gamma 0.1). A milestone listed twice applies gamma twice.
import { LRScheduler, bisectRight, type Schedulable } from "./lr-scheduler.js";
import { checkFiniteNumber } from "./validate.js";

export class MultiStepLR extends LRScheduler {
  readonly milestones: readonly number[];
  readonly gamma: number;

  constructor(optimizer: Schedulable, milestones: readonly number[], gamma = 0.1) {
    const name = "MultiStepLR";
    if (!Array.isArray(milestones))
      throw new TypeError(`${name}: milestones must be an array of epochs, got ${String(milestones)}`);
    milestones.forEach((m, i) => {
      if (!Number.isInteger(m) || m < 0)
        throw new RangeError(`${name}: milestones[${i}] must be a non-negative integer, got ${String(m)}`);
    });
    checkFiniteNumber(name, "gamma", gamma);
    const sorted = [...milestones].sort((a, b) => a - b);
    super(optimizer, (epoch, base) => base * gamma ** bisectRight(sorted, epoch), { name });
    this.milestones = sorted;
    this.gamma = gamma;
  }
}
