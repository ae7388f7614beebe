// The base of every layer and model, after PyTorch's nn.Module: ordered parameters, buffers
// and children, registered explicitly, walked recursively for state dicts, modes and memory.
import { Tensor, checkDevice, keep, noGrad } from "../engine/index.js";
import { StateDictError, type ShapeMismatch } from "./state-dict-error.js";

/** Any module, whatever its forward signature (the common type of children). */
export type AnyModule = Module<unknown[], unknown>;

export type StateDict = Map<string, Tensor>;

export interface LoadStateDictResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

/**
 * A network layer or model. `In`/`Out` type the forward pass: most modules map one tensor to
 * one tensor; modules with several inputs (MultiheadAttention) declare their own.
 *
 * The module owns its parameters and buffers: they are `keep()`-ed so that no `tidy` scope
 * frees them, and live until `dispose()`. Registering under a name already in use replaces
 * the entry without disposing the tensor it held (the caller may still own it).
 */
export abstract class Module<In extends unknown[] = [x: Tensor], Out = Tensor> {
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, Tensor | null>();
  readonly #nonPersistent = new Set<string>();
  readonly #children = new Map<string, AnyModule>();
  #training = true;

  abstract forward(...args: In): Out;

  /** Extra text inside this module's printed form, e.g. `3, 64, kernel_size=(3, 3)`. */
  extraRepr(): string {
    return "";
  }

  /** The name printed for this module and used in error messages. */
  get typeName(): string {
    return this.constructor.name;
  }

  // ---- registration ----

  /**
   * Adds (or replaces) a trainable tensor. It must be a floating-point leaf; it is marked as
   * requiring gradients and kept alive past every scope. `null` records an absent parameter
   * (PyTorch's `bias=None`), which is skipped by state dicts and iteration.
   */
  registerParameter<T extends Tensor | null>(name: string, tensor: T): T {
    this.#checkName(name, this.#parameters);
    if (tensor !== null) {
      if (!tensor.isLeaf) {
        throw new TypeError(`${this.typeName}.registerParameter: '${name}' must be a leaf tensor (detach() it first)`);
      }
      tensor.requiresGrad_(true);
      keep(tensor);
    }
    this.#parameters.set(name, tensor);
    return tensor;
  }

  /**
   * Adds (or replaces) a state tensor that is not trained (running statistics, counters).
   * Persistent buffers appear in state dicts; non-persistent ones do not.
   */
  registerBuffer<T extends Tensor | null>(name: string, tensor: T, opts: { persistent?: boolean } = {}): T {
    this.#checkName(name, this.#buffers);
    if (tensor !== null) keep(tensor);
    this.#buffers.set(name, tensor);
    if (opts.persistent ?? true) this.#nonPersistent.delete(name);
    else this.#nonPersistent.add(name);
    return tensor;
  }

  /** Adds (or replaces) a child module; its state appears under `name.`. */
  registerModule<M extends AnyModule>(name: string, module: M): M {
    this.#checkName(name, this.#children);
    if (module.modules().includes(this)) {
      throw new RangeError(`${this.typeName}: registering '${name}' would make the module its own descendant`);
    }
    this.#children.set(name, module);
    return module;
  }

  #checkName(name: string, own: Map<string, unknown>): void {
    const where = `${this.typeName}: name ${JSON.stringify(name)}`;
    if (name === "") throw new RangeError(`${where} must not be empty`);
    if (name.includes(".")) throw new RangeError(`${where} must not contain "."`);
    for (const [kind, map] of [
      ["parameter", this.#parameters],
      ["buffer", this.#buffers],
      ["module", this.#children],
    ] as const) {
      if (map !== own && map.has(name)) throw new RangeError(`${where} is already used by a ${kind}`);
    }
  }

  // ---- access ----

  /** The parameter called `name` (null when registered as absent). */
  getParameter(name: string): Tensor | null {
    const t = this.#parameters.get(name);
    if (t === undefined) throw new RangeError(`${this.typeName} has no parameter '${name}'`);
    return t;
  }

  getBuffer(name: string): Tensor | null {
    const t = this.#buffers.get(name);
    if (t === undefined) throw new RangeError(`${this.typeName} has no buffer '${name}'`);
    return t;
  }

  getModule(name: string): AnyModule {
    const m = this.#children.get(name);
    if (m === undefined) throw new RangeError(`${this.typeName} has no child module '${name}'`);
    return m;
  }

  /** A parameter that the layer cannot work without. */
  protected requireParameter(name: string): Tensor {
    const t = this.getParameter(name);
    if (t === null) throw new Error(`${this.typeName}: parameter '${name}' is absent`);
    return t;
  }

  protected requireBuffer(name: string): Tensor {
    const t = this.getBuffer(name);
    if (t === null) throw new Error(`${this.typeName}: buffer '${name}' is absent`);
    return t;
  }

  // ---- iteration (PyTorch order: own entries first, then children depth-first) ----

  namedChildren(): [string, AnyModule][] {
    return [...this.#children];
  }

  children(): AnyModule[] {
    return [...this.#children.values()];
  }

  /** This module (named `prefix`) and all its descendants, each once, in pre-order. */
  namedModules(prefix = ""): [string, AnyModule][] {
    const out: [string, AnyModule][] = [];
    const seen = new Set<AnyModule>();
    const visit = (m: AnyModule, p: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([p, m]);
      for (const [name, child] of m.#children) visit(child, join(p, name));
    };
    visit(this, prefix);
    return out;
  }

  modules(): AnyModule[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** Parameters with dotted names; a tensor shared by two modules is listed once. */
  namedParameters(prefix = "", recurse = true): [string, Tensor][] {
    return this.#namedTensors(prefix, recurse, (m) => [...m.#parameters]);
  }

  parameters(recurse = true): Tensor[] {
    return this.namedParameters("", recurse).map(([, t]) => t);
  }

  /** Buffers (persistent or not) with dotted names. */
  namedBuffers(prefix = "", recurse = true): [string, Tensor][] {
    return this.#namedTensors(prefix, recurse, (m) => [...m.#buffers]);
  }

  buffers(recurse = true): Tensor[] {
    return this.namedBuffers("", recurse).map(([, t]) => t);
  }

  #namedTensors(
    prefix: string,
    recurse: boolean,
    entries: (m: AnyModule) => [string, Tensor | null][],
  ): [string, Tensor][] {
    const modules: [string, AnyModule][] = recurse ? this.namedModules(prefix) : [[prefix, this]];
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [p, m] of modules) {
      for (const [name, t] of entries(m)) {
        if (t === null || seen.has(t)) continue;
        seen.add(t);
        out.push([join(p, name), t]);
      }
    }
    return out;
  }

  /** Total number of parameter elements. */
  numParameters(opts: { trainableOnly?: boolean } = {}): number {
    const ps = this.parameters().filter((p) => !opts.trainableOnly || p.requiresGrad);
    return ps.reduce((n, p) => n + p.size, 0);
  }

  /** Calls fn on every descendant, then on this module (as PyTorch's apply). */
  apply(fn: (m: AnyModule) => void): this {
    for (const child of this.#children.values()) child.apply(fn);
    fn(this);
    return this;
  }

  // ---- modes and gradients ----

  get training(): boolean {
    return this.#training;
  }

  /** Sets training mode (dropout active, batch statistics) on this module and all descendants. */
  train(mode = true): this {
    this.#training = mode;
    for (const child of this.#children.values()) child.train(mode);
    return this;
  }

  /** Evaluation mode: `train(false)`. */
  eval(): this {
    return this.train(false);
  }

  /** Clears every parameter's gradient (PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.setGrad(null);
  }

  /** Freezes (false) or unfreezes (true) every parameter. */
  requiresGrad_(value = true): this {
    for (const p of this.parameters()) p.requiresGrad_(value);
    return this;
  }

  // ---- state dicts ----

  /**
   * Parameters and persistent buffers under PyTorch's dotted keys (`layer1.0.conv1.weight`),
   * in PyTorch's order. The values are the module's own tensors, not copies: do not dispose
   * them, and clone them if they must outlive the module or stay unchanged by training.
   */
  stateDict(prefix = ""): StateDict {
    const out: StateDict = new Map();
    for (const [p, m] of this.#statePaths(prefix)) {
      for (const [name, t] of m.#parameters) if (t !== null) out.set(join(p, name), t);
      for (const [name, t] of m.#buffers) if (t !== null && !m.#nonPersistent.has(name)) out.set(join(p, name), t);
    }
    return out;
  }

  /**
   * Every path to every module: unlike namedModules(), a module registered under two names
   * appears under both, so its state is saved (and must be loaded) under both keys, as in PyTorch.
   */
  #statePaths(prefix: string): [string, AnyModule][] {
    const out: [string, AnyModule][] = [[prefix, this]];
    for (const [name, child] of this.#children) out.push(...child.#statePaths(join(prefix, name)));
    return out;
  }

  /**
   * Buffer names that old checkpoints may lack without error (BatchNorm's
   * `num_batches_tracked`, absent before PyTorch 0.4.1); such buffers keep their value.
   */
  protected optionalStateKeys(): readonly string[] {
    return [];
  }

  /**
   * Copies `sd` into this module's tensors in place (converting dtype and device as needed).
   * Every missing, unexpected and mis-shaped key is collected and reported in one
   * StateDictError. Nothing is copied when that error is thrown. With `strict: false`, missing
   * and unexpected keys are tolerated and returned, but shape mismatches still throw.
   */
  loadStateDict(
    sd: Map<string, Tensor> | Record<string, Tensor>,
    opts: { strict?: boolean } = {},
  ): LoadStateDictResult {
    const strict = opts.strict ?? true;
    const given: Map<string, unknown> = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const own = this.stateDict();
    const optional = new Set<string>();
    for (const [p, m] of this.#statePaths("")) for (const k of m.optionalStateKeys()) optional.add(join(p, k));

    const missingKeys: string[] = [];
    const mismatches: ShapeMismatch[] = [];
    const copies: [Tensor, Tensor][] = [];
    for (const [key, target] of own) {
      const source = given.get(key);
      if (source === undefined) {
        if (!optional.has(key)) missingKeys.push(key);
        continue;
      }
      if (!(source instanceof Tensor))
        throw new TypeError(`${this.typeName}.loadStateDict: value for '${key}' is not a Tensor`);
      const expected = target.shape;
      const actual = source.shape;
      if (expected.length !== actual.length || expected.some((d, i) => d !== actual[i])) {
        mismatches.push({ key, expected, actual });
      } else {
        copies.push([target, source]);
      }
    }
    const unexpectedKeys = [...given.keys()].filter((k) => !own.has(k));

    const keyErrors = strict && (missingKeys.length > 0 || unexpectedKeys.length > 0);
    if (keyErrors || mismatches.length > 0) {
      throw new StateDictError(this.typeName, strict ? missingKeys : [], strict ? unexpectedKeys : [], mismatches);
    }
    noGrad(() => {
      for (const [target, source] of copies) if (target !== source) target.copy_(source);
    });
    return { missingKeys, unexpectedKeys };
  }

  // ---- devices and memory ----

  /**
   * Moves every parameter and buffer to `device`. The module's tensors are replaced (old
   * handles are disposed), so take `parameters()` for an optimizer only after moving.
   */
  to(device: string): this {
    checkDevice(device);
    const moved = new Map<Tensor, Tensor>();
    const move = (t: Tensor, isParameter: boolean): Tensor => {
      let m = moved.get(t);
      if (m === undefined) {
        m = keep(t.to({ device }));
        if (isParameter && t.requiresGrad) m.requiresGrad_(true);
        moved.set(t, m);
      }
      return m;
    };
    noGrad(() => {
      for (const [, m] of this.namedModules()) {
        for (const [name, t] of m.#parameters)
          if (t !== null && t.device !== device) m.#parameters.set(name, move(t, true));
        for (const [name, t] of m.#buffers) if (t !== null && t.device !== device) m.#buffers.set(name, move(t, false));
      }
    });
    for (const old of moved.keys()) old.dispose();
    return this;
  }

  /** Frees every parameter and buffer of this module and its descendants. */
  dispose(): void {
    for (const t of this.parameters()) t.dispose();
    for (const t of this.buffers()) t.dispose();
  }

  // ---- printing ----

  /** The module tree as PyTorch prints it. */
  toString(): string {
    const extra = this.extraRepr();
    const extraLines = extra === "" ? [] : extra.split("\n");
    const childLines = [...this.#children].map(([name, child]) => `(${name}): ${indent(child.toString(), 2)}`);
    const lines = [...extraLines, ...childLines];
    let body = "";
    if (extraLines.length === 1 && childLines.length === 0) body = extra;
    else if (lines.length > 0) body = `\n  ${lines.join("\n  ")}\n`;
    return `${this.typeName}(${body})`;
  }
}

function join(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}

/** Indents every line but the first (the first follows a `(name): ` label). */
function indent(s: string, spaces: number): string {
  const pad = " ".repeat(spaces);
  return s
    .split("\n")
    .map((line, i) => (i === 0 ? line : pad + line))
    .join("\n");
}
