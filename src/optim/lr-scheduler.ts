// Learning-rate schedules: the base class. Each schedule is a closed form lr(epoch, baseLr), so
// the lr after n steps depends only on n (not on the path), which makes resuming from a
// checkpoint and composing schedules (SequentialLR) exact. PyTorch's chainable forms give the
// same values up to floating-point rounding when nothing else edits the lr.
import { checkFiniteNumber } from "./validate.js";

/** What a schedule needs from an optimizer: its groups' learning rates. */
export interface Schedulable {
  readonly paramGroups: { lr: number; initialLr?: number }[];
}

/** The lr of group `group` at `epoch`, given that group's base lr. */
export type LrSchedule = (epoch: number, baseLr: number, group: number) => number;

export interface LRSchedulerState {
  lastEpoch: number;
  baseLrs: number[];
  lastLr: number[];
}

export class LRScheduler {
  readonly optimizer: Schedulable;
  /** Names the schedule in error messages. */
  protected readonly name: string;
  #schedule: LrSchedule;
  #baseLrs: number[];
  #lastEpoch = -1;
  #lastLr: number[] = [];

  /**
   * Records each group's starting lr (its `initialLr`, set here from `lr` the first time any
   * schedule sees the group) as the base lr, then applies epoch 0, as PyTorch's constructor
   * does. `initialLrs` replaces the groups' initialLr (OneCycleLR starts below the given lr).
   */
  constructor(optimizer: Schedulable, schedule: LrSchedule, opts: { name?: string; initialLrs?: number[] } = {}) {
    this.name = opts.name ?? "LRScheduler";
    if (optimizer === null || typeof optimizer !== "object" || !Array.isArray(optimizer.paramGroups)) {
      throw new TypeError(`${this.name}: expected an optimizer, got ${String(optimizer)}`);
    }
    this.optimizer = optimizer;
    this.#schedule = schedule;
    optimizer.paramGroups.forEach((g, i) => {
      const init = opts.initialLrs?.[i];
      if (init !== undefined) g.initialLr = init;
      g.initialLr ??= g.lr;
    });
    this.#baseLrs = optimizer.paramGroups.map((g) => g.initialLr ?? g.lr);
    this.step();
  }

  /** Steps taken since construction: 0 right after it. */
  get lastEpoch(): number {
    return this.#lastEpoch;
  }

  get baseLrs(): number[] {
    return [...this.#baseLrs];
  }

  /** The lr of every group at `epoch`, without changing anything. */
  lrAt(epoch: number): number[] {
    return this.#baseLrs.map((base, i) => this.#schedule(epoch, base, i));
  }

  /** Advances one epoch (one batch for OneCycleLR) and writes the new lrs into the optimizer. */
  step(): void {
    const lrs = this.lrAt(this.#lastEpoch + 1);
    this.#lastEpoch += 1;
    this.#apply(lrs);
  }

  /** The lrs set by the latest step, one per group. */
  getLastLr(): number[] {
    return [...this.#lastLr];
  }

  stateDict(): LRSchedulerState {
    return { lastEpoch: this.#lastEpoch, baseLrs: [...this.#baseLrs], lastLr: [...this.#lastLr] };
  }

  /**
   * Resumes at a saved epoch. Unlike PyTorch, the saved lrs are also written into the
   * optimizer, so the schedule is right even if the optimizer was not restored.
   */
  loadStateDict(sd: LRSchedulerState): void {
    const where = `${this.name}.loadStateDict`;
    const n = this.optimizer.paramGroups.length;
    if (sd === null || typeof sd !== "object")
      throw new TypeError(`${where}: expected { lastEpoch, baseLrs, lastLr }, got ${String(sd)}`);
    const epoch = checkFiniteNumber(where, "lastEpoch", sd.lastEpoch);
    if (!Number.isInteger(epoch) || epoch < 0)
      throw new RangeError(`${where}: lastEpoch must be a non-negative integer, got ${epoch}`);
    for (const key of ["baseLrs", "lastLr"] as const) {
      const v = sd[key];
      if (!Array.isArray(v) || v.length !== n) {
        throw new RangeError(
          `${where}: ${key} must have one lr per param group (${n}), got ${Array.isArray(v) ? `${v.length}` : String(v)}`,
        );
      }
      v.forEach((x, i) => checkFiniteNumber(where, `${key}[${i}]`, x));
    }
    this.#lastEpoch = epoch;
    this.#baseLrs = [...sd.baseLrs];
    this.#apply([...sd.lastLr]);
  }

  #apply(lrs: number[]): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      const lr = lrs[i];
      if (lr !== undefined) g.lr = lr;
    });
    this.#lastLr = lrs;
  }
}

/** How many sorted milestones are <= x (Python's bisect_right). */
export function bisectRight(sorted: readonly number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x < (sorted[mid] ?? Infinity)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
