// A list of child modules (torch.nn.ModuleList) for models that loop over blocks themselves;
// it registers them (names "0", "1", ...) but, having no single way to chain them, no forward.
import type { Tensor } from "../engine/index.js";
import { type AnyModule, Module } from "./module.js";

export class ModuleList<M extends AnyModule = Module> extends Module {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    this.extend(modules);
  }

  append(module: M): this {
    this.registerModule(String(this.#items.length), module);
    this.#items.push(module);
    return this;
  }

  extend(modules: Iterable<M>): this {
    for (const m of modules) this.append(m);
    return this;
  }

  get length(): number {
    return this.#items.length;
  }

  /** The module at `index` (negative counts from the end). */
  at(index: number): M {
    const m = Number.isInteger(index) ? this.#items.at(index) : undefined;
    if (m === undefined)
      throw new RangeError(`ModuleList.at: index ${index} out of range for ${this.#items.length} module(s)`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }

  forward(_x: Tensor): never {
    throw new Error("ModuleList has no forward: iterate over it and call each module's forward");
  }
}
