// OneCycleLR (Smith & Topin, "super-convergence"): the lr rises from maxLr / divFactor to maxLr
// over the first pctStart of the run, then anneals to initialLr / finalDivFactor; stepped once
// per batch. Phase ends and annealing follow PyTorch's formulas exactly. PyTorch's optional
// momentum cycling (inverse to the lr) is not implemented: momentum / betas stay as configured.
import { LRScheduler, type Schedulable } from "./lr-scheduler.js";
import { checkFiniteNumber, checkPositive, checkPositiveInteger } from "./validate.js";

export type AnnealStrategy = "cos" | "linear";

export interface OneCycleLROptions {
  /** Peak lr: one for all groups, or one per group. */
  maxLr: number | number[];
  /** Total number of steps; or give epochs and stepsPerEpoch. */
  totalSteps?: number;
  epochs?: number;
  stepsPerEpoch?: number;
  pctStart?: number;
  annealStrategy?: AnnealStrategy;
  divFactor?: number;
  finalDivFactor?: number;
  threePhase?: boolean;
}

interface Phase {
  endStep: number;
  from: "initial" | "max" | "min";
  to: "initial" | "max" | "min";
}

/** Cosine from start (pct 0) to end (pct 1). */
export function annealCos(start: number, end: number, pct: number): number {
  return end + ((start - end) / 2) * (Math.cos(Math.PI * pct) + 1);
}

export function annealLinear(start: number, end: number, pct: number): number {
  return (end - start) * pct + start;
}

export class OneCycleLR extends LRScheduler {
  readonly totalSteps: number;
  readonly maxLrs: readonly number[];
  readonly minLrs: readonly number[];

  constructor(optimizer: Schedulable, options: OneCycleLROptions) {
    const name = "OneCycleLR";
    if (options === null || typeof options !== "object")
      throw new TypeError(`${name}: expected an options object with maxLr, got ${String(options)}`);
    const totalSteps = resolveTotalSteps(name, options);
    const pctStart = checkFiniteNumber(name, "pctStart", options.pctStart ?? 0.3);
    if (pctStart < 0 || pctStart > 1) throw new RangeError(`${name}: pctStart must be in [0, 1], got ${pctStart}`);
    const strategy = options.annealStrategy ?? "cos";
    if (strategy !== "cos" && strategy !== "linear") {
      throw new RangeError(`${name}: annealStrategy must be "cos" or "linear", got ${JSON.stringify(strategy)}`);
    }
    const divFactor = checkPositive(name, "divFactor", options.divFactor ?? 25);
    const finalDivFactor = checkPositive(name, "finalDivFactor", options.finalDivFactor ?? 1e4);
    const n = optimizer.paramGroups.length;
    const maxLrs = Array.isArray(options.maxLr) ? [...options.maxLr] : Array.from({ length: n }, () => options.maxLr);
    if (maxLrs.length !== n)
      throw new RangeError(`${name}: maxLr has ${maxLrs.length} values but the optimizer has ${n} param group(s)`);
    maxLrs.forEach((v, i) => checkPositive(name, `maxLr[${i}]`, v));
    const maxes = maxLrs.map(Number);
    const initials = maxes.map((m) => m / divFactor);
    const mins = initials.map((v) => v / finalDivFactor);
    const phases: Phase[] = options.threePhase
      ? [
          { endStep: pctStart * totalSteps - 1, from: "initial", to: "max" },
          { endStep: 2 * pctStart * totalSteps - 2, from: "max", to: "initial" },
          { endStep: totalSteps - 1, from: "initial", to: "min" },
        ]
      : [
          { endStep: pctStart * totalSteps - 1, from: "initial", to: "max" },
          { endStep: totalSteps - 1, from: "max", to: "min" },
        ];
    const anneal = strategy === "cos" ? annealCos : annealLinear;
    const schedule = (step: number, initial: number, group: number): number => {
      // PyTorch allows step == totalSteps (one past the last) and refuses beyond it.
      if (step > totalSteps) {
        throw new RangeError(
          `${name}: tried to step ${step} times; the specified number of total steps is ${totalSteps}`,
        );
      }
      const lrs = { initial, max: maxes[group] ?? initial, min: mins[group] ?? initial };
      let start = 0;
      for (let i = 0; i < phases.length; i++) {
        const phase = phases[i];
        if (phase === undefined) break;
        if (step <= phase.endStep || i === phases.length - 1) {
          // A phase of zero length (pctStart * totalSteps == 1) would divide 0 by 0 (PyTorch
          // raises ZeroDivisionError); its end value is the only sensible lr.
          const width = phase.endStep - start;
          const pct = width === 0 ? 1 : (step - start) / width;
          return anneal(lrs[phase.from], lrs[phase.to], pct);
        }
        start = phase.endStep;
      }
      return initial;
    };
    super(optimizer, schedule, { name, initialLrs: initials });
    this.totalSteps = totalSteps;
    this.maxLrs = maxes;
    this.minLrs = mins;
  }
}

function resolveTotalSteps(name: string, o: OneCycleLROptions): number {
  if (o.totalSteps !== undefined) return checkPositiveInteger(name, "totalSteps", o.totalSteps);
  if (o.epochs === undefined || o.stepsPerEpoch === undefined) {
    throw new RangeError(`${name}: give totalSteps, or both epochs and stepsPerEpoch`);
  }
  return checkPositiveInteger(name, "epochs", o.epochs) * checkPositiveInteger(name, "stepsPerEpoch", o.stepsPerEpoch);
}
