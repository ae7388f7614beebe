// Walks a model and writes its evaluation-mode forward pass into a graph: each module goes to
// the exporter of its exact class (layers.ts, zoo.ts), an imported TorchScript model to the
// translator of its program (torchscript-export.ts); a class without one is a clear error naming
// it and where it sits, rather than a graph that computes something else.
import type { AnyModule } from "../nn/index.js";
import { TorchScriptModule } from "../nn/torchscript-module.js";
import type { Tensor } from "../engine/index.js";
import type { GraphBuilder, Value } from "./graph-builder.js";
import { LAYER_RULES } from "./layers.js";
import { exportTorchScript } from "./torchscript-export.js";
import type { ExportContext, ModuleRule } from "./module-rule.js";
import { ZOO_RULES } from "./zoo.js";

const RULES: readonly ModuleRule[] = [...LAYER_RULES, ...ZOO_RULES];

/** Class names the exporter knows (for messages and docs). */
export function exportableModules(): string[] {
  return RULES.map((r) => r.name);
}

class Walker implements ExportContext {
  readonly g: GraphBuilder;
  readonly #path: string[];

  constructor(g: GraphBuilder, path: string[]) {
    this.g = g;
    this.#path = path;
  }

  run(m: AnyModule, x: Value): Value {
    const where = this.#path.join(".");
    if (m.training)
      throw new Error(
        `onnx export: ${where} (${m.constructor.name}) is in training mode; call eval() first so that BatchNorm and Dropout behave as at inference`,
      );
    // An imported model's computation is its TorchScript program: translated operator by operator.
    if (m instanceof TorchScriptModule)
      return this.g.scoped(this.#path.at(-1) ?? "", () => exportTorchScript(this.g, m, x, where));
    const r = RULES.find((candidate) => candidate.matches(m));
    if (r === undefined) {
      throw new TypeError(
        `onnx export: ${where} is a ${m.constructor.name}, which the exporter does not know; exportable modules: ${exportableModules().join(", ")}`,
      );
    }
    return this.g.scoped(this.#path.at(-1) ?? "", () => r.run(this, m, x));
  }

  child(m: AnyModule, name: string, x: Value): Value {
    return new Walker(this.g, [...this.#path, name]).run(m, x);
  }

  param(t: Tensor, key: string, dims?: number[]): string {
    return this.g.weight([...this.#path, key].join("."), t, dims);
  }
}

/**
 * Adds the nodes of model(x) to g. Weights become initializers named `<prefix>.<state-dict key>`,
 * so a graph holding several networks keeps them apart (prefix "model", "expert", ...).
 */
export function exportModule(g: GraphBuilder, model: AnyModule, x: Value, prefix: string): Value {
  return new Walker(g, [prefix]).run(model, x);
}
