// A chain of modules applied in order (torch.nn.Sequential); children are named "0", "1", ...
// so state-dict keys read `0.weight`, `1.running_mean`, as in PyTorch.
import { type Tensor, tidy } from "../engine/index.js";
import { Module } from "./module.js";

export class Sequential extends Module {
  readonly #layers: Module[] = [];

  constructor(...modules: Module[]) {
    super();
    for (const m of modules) this.append(m);
  }

  static from(modules: Iterable<Module>): Sequential {
    return new Sequential(...modules);
  }

  /** Adds a module at the end, named by its position. */
  append(module: Module): this {
    this.registerModule(String(this.#layers.length), module);
    this.#layers.push(module);
    return this;
  }

  get length(): number {
    return this.#layers.length;
  }

  /** The module at `index` (negative counts from the end). */
  at(index: number): Module {
    const m = Number.isInteger(index) ? this.#layers.at(index) : undefined;
    if (m === undefined)
      throw new RangeError(`Sequential.at: index ${index} out of range for ${this.#layers.length} module(s)`);
    return m;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.#layers[Symbol.iterator]();
  }

  /** Only the final output survives: every intermediate activation is freed on return. */
  forward(x: Tensor): Tensor {
    if (this.#layers.length === 0) return x.alias();
    return tidy(() => {
      let y = x;
      for (const m of this.#layers) y = m.forward(y);
      return y;
    });
  }
}
