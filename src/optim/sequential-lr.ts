// SequentialLR: runs schedules one after another, switching at milestone epochs; each
// schedule restarts its own epoch count at its milestone (e.g. LinearLR warm-up, then cosine).
import { LRScheduler, bisectRight, type Schedulable } from "./lr-scheduler.js";

export class SequentialLR extends LRScheduler {
  readonly schedulers: readonly LRScheduler[];
  readonly milestones: readonly number[];

  constructor(optimizer: Schedulable, schedulers: readonly LRScheduler[], milestones: readonly number[]) {
    const name = "SequentialLR";
    if (!Array.isArray(schedulers) || schedulers.length === 0)
      throw new RangeError(`${name}: expected at least one schedule`);
    schedulers.forEach((s, i) => {
      if (!(s instanceof LRScheduler)) throw new TypeError(`${name}: schedulers[${i}] is not an LRScheduler`);
      if (s.optimizer !== optimizer) throw new RangeError(`${name}: schedulers[${i}] belongs to a different optimizer`);
    });
    if (!Array.isArray(milestones) || milestones.length !== schedulers.length - 1) {
      throw new RangeError(
        `${name}: expected ${schedulers.length - 1} milestone(s) for ${schedulers.length} schedules, got ${String(milestones)}`,
      );
    }
    milestones.forEach((m, i) => {
      const prev = i === 0 ? 0 : (milestones[i - 1] ?? 0);
      if (!Number.isInteger(m) || m < prev)
        throw new RangeError(
          `${name}: milestones must be increasing non-negative integers, got ${milestones.join(", ")}`,
        );
    });
    const list = [...schedulers];
    const ms = [...milestones];
    super(
      optimizer,
      (epoch, base, group) => {
        // bisectRight gives at most ms.length = list.length - 1, so list[k] exists.
        const k = bisectRight(ms, epoch);
        const local = k === 0 ? epoch : epoch - (ms[k - 1] ?? 0);
        return list[k]?.lrAt(local)[group] ?? base;
      },
      { name },
    );
    this.schedulers = list;
    this.milestones = ms;
  }
}
