// CosineAnnealingLR (SGDR without restarts), closed form:
// lr = etaMin + (base - etaMin) * (1 + cos(pi * epoch / tMax)) / 2.
// Past tMax the cosine keeps going (back up towards base), as PyTorch's does.
import { LRScheduler, type Schedulable } from "./lr-scheduler.js";
import { checkFiniteNumber, checkPositive } from "./validate.js";

export class CosineAnnealingLR extends LRScheduler {
  readonly tMax: number;
  readonly etaMin: number;

  constructor(optimizer: Schedulable, tMax: number, etaMin = 0) {
    const name = "CosineAnnealingLR";
    checkPositive(name, "tMax", tMax);
    checkFiniteNumber(name, "etaMin", etaMin);
    super(optimizer, (epoch, base) => etaMin + ((base - etaMin) * (1 + Math.cos((Math.PI * epoch) / tMax))) / 2, {
      name,
    });
    this.tMax = tMax;
    this.etaMin = etaMin;
  }
}
