// StepLR: the lr is multiplied by gamma every stepSize epochs.
import { LRScheduler, type Schedulable } from "./lr-scheduler.js";
import { checkFiniteNumber, checkPositiveInteger } from "./validate.js";

export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(optimizer: Schedulable, stepSize: number, gamma = 0.1) {
    const name = "StepLR";
    checkPositiveInteger(name, "stepSize", stepSize);
    checkFiniteNumber(name, "gamma", gamma);
    super(optimizer, (epoch, base) => base * gamma ** Math.floor(epoch / stepSize), { name });
    this.stepSize = stepSize;
    this.gamma = gamma;
  }
}
