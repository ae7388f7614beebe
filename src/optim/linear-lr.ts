// LinearLR: the lr factor moves linearly from startFactor to endFactor over totalIters epochs,
// then stays at endFactor (a warm-up when followed by another schedule in SequentialLR).
import { LRScheduler, type Schedulable } from "./lr-scheduler.js";
import { checkFiniteNumber, checkPositiveInteger } from "./validate.js";

export interface LinearLROptions {
  startFactor?: number;
  endFactor?: number;
  totalIters?: number;
}

export class LinearLR extends LRScheduler {
  readonly startFactor: number;
  readonly endFactor: number;
  readonly totalIters: number;

  /** Defaults as PyTorch: startFactor 1/3, endFactor 1, totalIters 5. */
  constructor(optimizer: Schedulable, options: LinearLROptions = {}) {
    const name = "LinearLR";
    const start = checkFiniteNumber(name, "startFactor", options.startFactor ?? 1 / 3);
    const end = checkFiniteNumber(name, "endFactor", options.endFactor ?? 1);
    const total = checkPositiveInteger(name, "totalIters", options.totalIters ?? 5);
    // A zero start factor would make PyTorch's chainable form divide by zero.
    if (start <= 0 || start > 1) throw new RangeError(`${name}: startFactor must be in (0, 1], got ${start}`);
    if (end < 0 || end > 1) throw new RangeError(`${name}: endFactor must be in [0, 1], got ${end}`);
    super(optimizer, (epoch, base) => base * (start + ((end - start) * Math.min(total, epoch)) / total), { name });
    this.startFactor = start;
    this.endFactor = end;
    this.totalIters = total;
  }
}
