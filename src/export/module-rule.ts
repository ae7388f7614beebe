// How a module becomes ONNX nodes: an exporter per module class, and the context it works in
// (the graph, and the state-dict path that names the module's weights). The table of rules is
// in module-export.ts.
import type { Tensor } from "../engine/index.js";
import type { AnyModule } from "../nn/index.js";
import type { GraphBuilder, Value } from "./graph-builder.js";

export interface ExportContext {
  readonly g: GraphBuilder;
  /** Exports a child module registered under `name` (its state-dict path segment). */
  child(m: AnyModule, name: string, x: Value): Value;
  /** The module's tensor `key` (e.g. "weight") as an initializer named by its state-dict path. */
  param(t: Tensor, key: string, dims?: number[]): string;
}

export interface ModuleRule {
  /** The class name, for messages. */
  readonly name: string;
  /** Exactly this class: a subclass may override forward(), so it must have its own rule. */
  matches(m: AnyModule): boolean;
  run(c: ExportContext, m: AnyModule, x: Value): Value;
}

type Class<M> = abstract new (...args: never[]) => M;

export function rule<M extends AnyModule>(type: Class<M>, fn: (c: ExportContext, m: M, x: Value) => Value): ModuleRule {
  const matches = (m: AnyModule): m is M => Object.getPrototypeOf(m) === type.prototype;
  return {
    name: type.name,
    matches,
    run(c, m, x) {
      if (!matches(m)) throw new TypeError(`onnx export: the ${type.name} rule got a ${m.constructor.name}`);
      return fn(c, m, x);
    },
  };
}
