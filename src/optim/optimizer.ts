// Optimizer base: parameter groups, per-parameter state and checkpoints. A subclass holds the
// hyperparameters and hands each parameter to a plain update function (see sgd.ts, adam.ts).
import { Tensor, formatShape, isFloating, keep, noGrad, tidy } from "../engine/index.js";
import { checkLearningRate } from "./validate.js";

/**
 * Hyperparameters every optimizer has. LR schedules rewrite `lr` and record the value they
 * started from in `initialLr`, so that a second schedule on the same optimizer (SequentialLR)
 * starts from the same base, as PyTorch's `initial_lr` does.
 */
export interface BaseHyper {
  lr: number;
  initialLr?: number;
}

/** Parameters that share hyperparameters. */
export type ParamGroup<H extends BaseHyper> = H & { params: Tensor[] };

/** What a caller passes: parameters plus any hyperparameters that override the defaults. */
export type ParamGroupInput<H extends BaseHyper> = Partial<H> & { params: Tensor[] };

export type StateValue = Tensor | number;

/** Per-parameter state: tensors (moment buffers) and numbers (step counts). */
export type ParamState = Record<string, StateValue | undefined>;

export type SavedParamGroup<H extends BaseHyper> = Omit<ParamGroup<H>, "params"> & { params: number[] };

/** A plain-object checkpoint of an optimizer (PyTorch's `optimizer.state_dict()` layout). */
export interface OptimizerStateDict<H extends BaseHyper> {
  /** State by parameter index: the position across all groups, in group order. */
  state: Record<number, Record<string, StateValue>>;
  /** Hyperparameters of each group; `params` lists the indices of its parameters. */
  paramGroups: SavedParamGroup<H>[];
}

export abstract class Optimizer<H extends BaseHyper, S extends ParamState> {
  readonly paramGroups: ParamGroup<H>[] = [];
  readonly defaults: Readonly<H>;
  /** Names the optimizer in error messages ("SGD", "Adam"). */
  protected readonly name: string;
  readonly #state = new Map<Tensor, S>();
  #disposed = false;

  protected constructor(name: string, params: readonly Tensor[] | readonly ParamGroupInput<H>[], defaults: H) {
    this.name = name;
    if (!Array.isArray(params) || params.length === 0) {
      throw new RangeError(
        `${name}: expected a non-empty array of parameters or of parameter groups, got ${describe(params)}`,
      );
    }
    this.defaults = structuredClone(defaults);
    this.#validateGroup(this.defaults, name);
    if (isTensorList(params)) this.#addGroup(params, {});
    else for (const g of params) this.addParamGroup(g);
  }

  /**
   * Updates one parameter from its gradient. Runs under noGrad inside a tidy scope: tensors it
   * creates are freed afterwards unless they are in the returned state, which the optimizer
   * keeps. State tensors are updated in place; one replaced by a new tensor is freed.
   */
  protected abstract update(param: Tensor, grad: Tensor, group: ParamGroup<H>, state: S | undefined): S | undefined;

  /** Checks the hyperparameters of a group (`where` names it in messages). */
  protected abstract validate(group: Readonly<H>, where: string): void;

  /** Rebuilds typed state from a checkpoint entry, copying tensors (see restoreStateTensor). */
  protected abstract restoreState(raw: Readonly<Record<string, StateValue>>, param: Tensor, where: string): S;

  /** Adds parameters with their own overrides of the defaults (e.g. a larger lr for a head). */
  addParamGroup(input: ParamGroupInput<H>): void {
    this.assertLive();
    const where = `${this.name} param group ${this.paramGroups.length}`;
    if (input === null || typeof input !== "object" || !Array.isArray(input.params)) {
      throw new TypeError(`${where}: expected { params: Tensor[], ...options }, got ${describe(input)}`);
    }
    const { params, ...overrides } = input;
    this.#addGroup(params, overrides);
  }

  #addGroup(params: readonly unknown[], overrides: object): void {
    const where = `${this.name} param group ${this.paramGroups.length}`;
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    const list: Tensor[] = [];
    params.forEach((p, j) => {
      if (!(p instanceof Tensor)) throw new TypeError(`${where}: params[${j}] must be a Tensor, got ${describe(p)}`);
      if (p.isDisposed) throw new Error(`${where}: params[${j}] was disposed`);
      if (!isFloating(p.dtype))
        throw new TypeError(`${where}: params[${j}] must be floating-point to be optimized, got ${p.dtype}`);
      if (!p.isLeaf) {
        throw new TypeError(
          `${where}: params[${j}] is not a leaf tensor (it was computed from other tensors); optimize those, or detach() it`,
        );
      }
      if (seen.has(p))
        throw new RangeError(
          `${where}: params[${j}] already belongs to this optimizer (a parameter may appear in one group only)`,
        );
      seen.add(p);
      list.push(p);
    });
    this.paramGroups.push(this.#merge([overrides], list, where));
  }

  /** Clears every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    this.assertLive();
    for (const g of this.paramGroups) for (const p of g.params) p.setGrad(null);
  }

  /** One update of every parameter that has a gradient; parameters whose grad is null are skipped. */
  step(): void {
    this.assertLive();
    noGrad(() =>
      tidy(() => {
        for (const group of this.paramGroups) {
          for (const p of group.params) {
            const grad = p.grad;
            if (grad === null) continue;
            const before = this.#state.get(p);
            const old = tensorsOf(before);
            const after = this.update(p, grad, group, before);
            this.#commit(p, old, after);
          }
        }
      }),
    );
  }

  /** The state of one parameter, for inspection (undefined before its first update). */
  stateOf(param: Tensor): Readonly<S> | undefined {
    return this.#state.get(param);
  }

  /**
   * A checkpoint. Its tensors are copies owned by the caller (dispose them, or call this inside
   * tidy), so later steps do not change a saved checkpoint.
   */
  stateDict(): OptimizerStateDict<H> {
    this.assertLive();
    const index = this.#indices();
    const state: Record<number, Record<string, StateValue>> = {};
    for (const [p, s] of this.#state) {
      const i = index.get(p);
      if (i === undefined) continue;
      const entry: Record<string, StateValue> = {};
      for (const [k, v] of Object.entries(s)) if (v !== undefined) entry[k] = typeof v === "number" ? v : v.clone();
      state[i] = entry;
    }
    let next = 0;
    const paramGroups = this.paramGroups.map((g) => {
      const { params, ...hyper } = g;
      return { ...structuredClone(hyper), params: params.map(() => next++) };
    });
    return { state, paramGroups };
  }

  /**
   * Restores a checkpoint made by stateDict() of an optimizer of the same kind over parameters
   * of the same shapes, in the same group layout. Group hyperparameters are taken from the
   * checkpoint; state tensors are copied (cast to each parameter's dtype and device), so the
   * caller still owns the checkpoint's tensors. Nothing changes if the checkpoint is rejected.
   */
  loadStateDict(sd: OptimizerStateDict<H>): void {
    this.assertLive();
    const where = `${this.name}.loadStateDict`;
    if (
      sd === null ||
      typeof sd !== "object" ||
      !Array.isArray(sd.paramGroups) ||
      sd.state === null ||
      typeof sd.state !== "object"
    ) {
      throw new TypeError(`${where}: expected { state, paramGroups }, got ${describe(sd)}`);
    }
    if (sd.paramGroups.length !== this.paramGroups.length) {
      throw new RangeError(
        `${where}: the checkpoint has ${sd.paramGroups.length} param group(s), this optimizer has ${this.paramGroups.length}`,
      );
    }
    const byIndex = new Map<number, Tensor>();
    const groups = this.paramGroups.map((group, gi) => {
      const saved = sd.paramGroups[gi];
      const gw = `${where}: param group ${gi}`;
      if (saved === undefined || !Array.isArray(saved.params) || saved.params.length !== group.params.length) {
        const n = Array.isArray(saved?.params) ? `${saved.params.length} parameter(s)` : describe(saved?.params);
        throw new RangeError(`${gw}: the checkpoint lists ${n}, this optimizer has ${group.params.length}`);
      }
      saved.params.forEach((id, j) => {
        const p = group.params[j];
        if (p !== undefined) byIndex.set(id, p);
      });
      const savedHyper = Object.fromEntries(Object.entries(saved).filter(([k]) => k !== "params"));
      const { params, ...currentHyper } = group;
      return this.#merge([currentHyper, savedHyper], params, gw);
    });
    const state = noGrad(() =>
      tidy(() => {
        const out = new Map<Tensor, S>();
        for (const [key, raw] of Object.entries(sd.state)) {
          const p = byIndex.get(Number(key));
          if (p === undefined)
            throw new RangeError(`${where}: the checkpoint has state for parameter ${key}, which no param group lists`);
          if (raw === null || typeof raw !== "object")
            throw new TypeError(`${where}: state of parameter ${key} must be an object, got ${describe(raw)}`);
          out.set(p, this.restoreState(raw, p, `${where}: state of parameter ${key}`));
        }
        return out;
      }),
    );
    this.#freeState();
    for (const [p, s] of state) {
      for (const t of tensorsOf(s)) keep(t);
      this.#state.set(p, s);
    }
    this.paramGroups.splice(0, this.paramGroups.length, ...groups);
  }

  /** Frees the state tensors (not the parameters); the optimizer cannot be used afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#freeState();
    this.#disposed = true;
  }

  get isDisposed(): boolean {
    return this.#disposed;
  }

  protected assertLive(): void {
    if (this.#disposed) throw new Error(`${this.name}: the optimizer was disposed and cannot be used any more`);
  }

  /** Defaults, then each override in order; unknown keys are rejected to catch typos. */
  #merge(overrides: object[], params: Tensor[], where: string): ParamGroup<H> {
    const known = new Set([...Object.keys(this.defaults), "initialLr"]);
    const clean: Record<string, unknown> = {};
    for (const o of overrides) {
      for (const [k, v] of Object.entries(o)) {
        if (!known.has(k)) throw new RangeError(`${where}: unknown option "${k}" (known: ${[...known].join(", ")})`);
        if (v !== undefined) clean[k] = structuredClone(v);
      }
    }
    const group: ParamGroup<H> = { ...structuredClone(this.defaults), ...clean, params };
    this.#validateGroup(group, where);
    return group;
  }

  #validateGroup(group: Readonly<H>, where: string): void {
    checkLearningRate(where, "lr", group.lr);
    if (group.initialLr !== undefined) checkLearningRate(where, "initialLr", group.initialLr);
    this.validate(group, where);
  }

  #commit(param: Tensor, old: Tensor[], next: S | undefined): void {
    const now = tensorsOf(next);
    for (const t of now) keep(t);
    for (const t of old) if (!now.includes(t)) t.dispose();
    if (next === undefined) this.#state.delete(param);
    else this.#state.set(param, next);
  }

  #freeState(): void {
    for (const s of this.#state.values()) for (const t of tensorsOf(s)) t.dispose();
    this.#state.clear();
  }

  #indices(): Map<Tensor, number> {
    const index = new Map<Tensor, number>();
    for (const g of this.paramGroups) for (const p of g.params) index.set(p, index.size);
    return index;
  }
}

/** A checkpoint's state tensor `key`, checked against the parameter and copied onto its dtype and device. */
export function restoreStateTensor(
  raw: Readonly<Record<string, StateValue>>,
  key: string,
  param: Tensor,
  where: string,
): Tensor {
  const v = raw[key];
  if (!(v instanceof Tensor)) throw new TypeError(`${where}: "${key}" must be a tensor, got ${describe(v)}`);
  const a = v.shape;
  const b = param.shape;
  if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
    throw new RangeError(
      `${where}: "${key}" has shape ${formatShape(a)} but the parameter has shape ${formatShape(b)}`,
    );
  }
  return tidy(() => v.to({ dtype: param.dtype, device: param.device }).clone());
}

/** A checkpoint's number `key` (a step count). */
export function restoreStateNumber(raw: Readonly<Record<string, StateValue>>, key: string, where: string): number {
  const v = raw[key];
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new TypeError(`${where}: "${key}" must be a finite number, got ${describe(v)}`);
  return v;
}

function isTensorList(x: readonly unknown[]): x is Tensor[] {
  return x.every((p) => p instanceof Tensor);
}

function tensorsOf(s: ParamState | undefined): Tensor[] {
  if (s === undefined) return [];
  return Object.values(s).filter((v): v is Tensor => v instanceof Tensor);
}

function describe(x: unknown): string {
  if (x instanceof Tensor) return x.toString();
  if (Array.isArray(x)) return `an array of length ${x.length}`;
  if (x === null) return "null";
  if (typeof x === "object") return "an object";
  return String(x);
}
