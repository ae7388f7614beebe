// A TorchScript model (a torch.jit.script or torch.jit.trace save, imported with `badexpert
// import --torchscript`) as ONNX nodes. libtorch gives the program of forward() frozen in
// evaluation mode (src/engine/jit.ts: calls inlined, parameters and flags as constants); this file
// walks its nodes in order and hands each operator to its translation (torchscript-nn-ops.ts,
// torchscript-arith-ops.ts, torchscript-shape-ops.ts). Branches on values known when exporting
// (shape checks, flags) are followed; an operator outside the supported set, or control flow
// that depends on the input, is refused with one error naming the operator and where it occurs
// in the model, rather than a graph that computes something else.
import type { Tensor } from "../engine/index.js";
import type { ScriptBlock, ScriptConstant, ScriptNode } from "../engine/jit.js";
import type { TorchScriptModule } from "../nn/torchscript-module.js";
import type { GraphBuilder, Value } from "./graph-builder.js";
import { DataType } from "./onnx-proto.js";
import { ARITH_OPS } from "./torchscript-arith-ops.js";
import { NN_OPS } from "./torchscript-nn-ops.js";
import { SHAPE_OPS, listOf } from "./torchscript-shape-ops.js";
import {
  ONNX_TYPES,
  OpRefusal,
  describe,
  refuse,
  staticValue,
  type Dim,
  type ElementType,
  type OpContext,
  type OpFn,
  type TensorValue,
  type TsValue,
} from "./torchscript-values.js";

const OPS: Record<string, OpFn> = { ...NN_OPS, ...ARITH_OPS, ...SHAPE_OPS };

/** Nodes the walker handles itself: constants, branches on known values, and what only dead branches or diagnostics use. */
const STRUCTURAL = [
  "prim::Constant",
  "prim::If",
  "prim::RaiseException",
  "aten::warn",
  "prim::Uninitialized",
  "prim::unchecked_cast",
  "aten::format",
];

/** The TorchScript operators the exporter translates (for docs and `export --help`). */
export function supportedTorchScriptOps(): string[] {
  return [...Object.keys(OPS), ...STRUCTURAL].sort();
}

/** Where a node sits: its submodule path and the line of the program it was compiled from. */
function whereIs(n: ScriptNode): string {
  const at = n.scope ? `in ${n.scope}` : "in forward()";
  if (n.source === undefined) return at;
  return `${at} (${n.source}${n.code ? `: ${n.code.trim()}` : ""})`;
}

function constant(v: ScriptConstant): TsValue {
  if (v === null || typeof v !== "object") return staticValue(v);
  if (Array.isArray(v)) return listOf(v.map(constant));
  if ("tuple" in v) return { kind: "tuple", items: v.tuple.map(constant) };
  if ("tensor" in v) return { kind: "const-tensor", tensor: v.tensor, name: v.name };
  return { kind: "unavailable", why: `a constant of type ${v.unsupported}` };
}

const ELEMENT_TYPES: Partial<Record<string, ElementType>> = { float32: "float32", int64: "int64", bool: "bool" };

class Translator implements OpContext {
  readonly g: GraphBuilder;
  readonly #prefix: string;
  readonly #values = new Map<number, TsValue>();
  readonly #initializers = new Map<Tensor, TensorValue>();
  #unknown = 0;

  constructor(g: GraphBuilder, prefix: string) {
    this.g = g;
    this.#prefix = prefix;
  }

  unknownDim(): string {
    return `${this.#prefix}_size_${++this.#unknown}`;
  }

  tensor(v: TsValue, what: string, like: ElementType = "float32"): TensorValue {
    switch (v.kind) {
      case "tensor":
        return v;
      case "const-tensor":
        // A traced program records Python numbers as 0-d float64/int64 tensors; like numbers, they take the other operand's type.
        if (v.tensor.shape.length === 0 && (v.tensor.dtype === "float64" || v.tensor.dtype === "int64"))
          return this.tensor(staticValue(Number(v.tensor.item())), what, like);
        return this.#initializer(v.tensor, v.name);
      case "static":
        if (typeof v.value === "number" || typeof v.value === "boolean") {
          const x = Number(v.value);
          return {
            kind: "tensor",
            name: like === "float32" ? this.g.constFloat([x], []) : this.g.constInt64([x], []),
            dims: [],
            dtype: like === "float32" ? "float32" : "int64",
          };
        }
        break;
      case "int":
        if (like === "float32")
          return {
            kind: "tensor",
            name: this.g.op("Cast", [v.name], { to: DataType.FLOAT }),
            dims: [],
            dtype: "float32",
          };
        return { kind: "tensor", name: v.name, dims: [], dtype: "int64" };
      default:
        break;
    }
    return refuse(`${what} must be a tensor, got ${describe(v)}`);
  }

  /** A constant tensor as an initializer named `<prefix>.<state-dict name>` (written once, however often it is read). */
  #initializer(t: Tensor, name: string | null): TensorValue {
    const done = this.#initializers.get(t);
    if (done !== undefined) return done;
    const dtype =
      ELEMENT_TYPES[t.dtype] ??
      refuse(
        `the constant tensor ${name ?? `[${t.shape.join(", ")}]`} is ${t.dtype}; the exporter writes float32, int64 and bool constants`,
      );
    let base = `${this.#prefix}.${name ?? "constant"}`;
    for (let i = 2; this.g.has(base); i++) base = `${this.#prefix}.${name ?? "constant"}_${i}`;
    const data = t.data();
    const type = ONNX_TYPES[dtype];
    if (!(data instanceof Float32Array || data instanceof BigInt64Array || data instanceof Uint8Array))
      return refuse(`the constant tensor ${name ?? `[${t.shape.join(", ")}]`} has no readable data`);
    const out: TensorValue = {
      kind: "tensor",
      name: this.g.initializer(base, type, t.shape, data),
      dims: t.shape,
      dtype,
    };
    this.#initializers.set(t, out);
    return out;
  }

  set(id: number, v: TsValue): void {
    this.#values.set(id, v);
  }

  get(id: number): TsValue {
    return this.#values.get(id) ?? refuse(`value %${id} is used before it is defined`);
  }

  block(b: ScriptBlock): void {
    for (const [i, n] of b.nodes.entries()) {
      try {
        this.#node(n);
      } catch (e) {
        if (e instanceof NodeError) throw e;
        throw new NodeError(
          n,
          (e as Error).message,
          OPS[n.kind] === undefined && !STRUCTURAL.includes(n.kind)
            ? otherUnsupported(b.nodes.slice(i + 1), n.kind)
            : [],
        );
      }
    }
  }

  #node(n: ScriptNode): void {
    const args = (): TsValue[] => n.inputs.map((id) => this.get(id));
    const outputs = (vs: TsValue[]): void => {
      if (vs.length !== n.outputs.length)
        refuse(`gives ${vs.length} values where the program expects ${n.outputs.length}`);
      n.outputs.forEach((o, i) => this.set(o.id, vs[i] as TsValue));
    };
    switch (n.kind) {
      case "prim::Constant":
        return outputs([n.value === undefined ? staticValue(null) : constant(n.value)]);
      case "prim::If": {
        const cond = this.get(n.inputs[0] as number);
        if (cond.kind !== "static" || typeof cond.value !== "boolean")
          return refuse(
            `branches on ${describe(cond)}: control flow that depends on the input's values is not supported`,
          );
        const taken = n.blocks?.[cond.value ? 0 : 1] ?? refuse("has no block for the branch taken");
        this.block(taken);
        return outputs(taken.outputs.map((id) => this.get(id)));
      }
      case "prim::RaiseException": {
        const message = this.get(n.inputs[0] as number);
        return refuse(
          `the program raises an exception here for the exported input shape${message.kind === "static" ? `: ${String(message.value)}` : ""}`,
        );
      }
      case "aten::warn":
        return outputs([]);
      case "prim::Uninitialized":
        return outputs([{ kind: "unavailable", why: "an uninitialized value" }]);
      case "prim::unchecked_cast":
        return outputs(args());
      case "aten::format": {
        const a = args();
        return outputs([
          a.every((x) => x.kind === "static")
            ? staticValue(a.map((x) => String((x as { value: unknown }).value)).join(" "))
            : { kind: "unavailable", why: "a formatted message" },
        ]);
      }
      default:
        break;
    }
    const op = OPS[n.kind];
    if (op === undefined) refuse(UNSUPPORTED);
    const result = this.g.scoped(n.scope || "forward", () => op(this, args()));
    outputs(Array.isArray(result) ? result : [result]);
  }
}

/** Other unsupported operators further on, for one error that names them all (first place of each). */
function otherUnsupported(rest: ScriptNode[], seen: string): string[] {
  const found = new Map<string, string>();
  const visit = (nodes: ScriptNode[]): void => {
    for (const n of nodes) {
      if (OPS[n.kind] === undefined && !STRUCTURAL.includes(n.kind) && n.kind !== seen && !found.has(n.kind))
        found.set(n.kind, `${n.kind} ${whereIs(n)}`);
    }
  };
  visit(rest);
  return [...found.values()];
}

const UNSUPPORTED = "is not supported";

class NodeError extends Error {
  constructor(n: ScriptNode, message: string, others: string[]) {
    super(
      `${n.kind} ${whereIs(n)}${message === UNSUPPORTED ? " " : ": "}${message}${others.length > 0 ? `; also not supported: ${others.slice(0, 5).join(", ")}${others.length > 5 ? ", ..." : ""}` : ""}`,
    );
  }
}

export const TORCHSCRIPT_OPS_DOC = "docs/export.md";

/**
 * Adds the nodes of a TorchScript graph (forward() as jitGraph reports it: self, then the image
 * tensor) applied to x. x's dims (when the caller knows them: the detector's images) let sizes
 * fold into constants; the batch stays a run-time size.
 */
export function translateScriptGraph(g: GraphBuilder, graph: ScriptBlock, x: Value, prefix: string): Value {
  try {
    const t = new Translator(g, prefix);
    const [self, input, ...extra] = graph.inputs;
    if (self === undefined || input === undefined || extra.length > 0 || input.type !== "Tensor") {
      throw new OpRefusal(
        `forward() takes ${graph.inputs.length - 1} argument(s) (${graph.inputs
          .slice(1)
          .map((v) => v.type)
          .join(", ")}); an exported model takes one image tensor`,
      );
    }
    const dims: Dim[] = x.dims ?? Array.from({ length: x.rank }, (_, i) => (i === 0 ? "batch" : t.unknownDim()));
    t.set(input.id, { kind: "tensor", name: x.name, dims, dtype: "float32" });
    t.block(graph);
    if (graph.outputs.length !== 1)
      throw new OpRefusal(
        `forward() returns ${graph.outputs.length} values; an exported model returns one tensor of logits`,
      );
    const out = t.get(graph.outputs[0] as number);
    if (out.kind !== "tensor" || out.dtype !== "float32")
      throw new OpRefusal(`forward() returns ${describe(out)}, not a float32 tensor of logits`);
    return { name: out.name, rank: out.dims.length, dims: out.dims };
  } catch (e) {
    throw new Error(
      `onnx export: ${prefix} (TorchScript): ${(e as Error).message}; the supported operators are listed in ${TORCHSCRIPT_OPS_DOC} and \`badexpert export --help\``,
      { cause: e },
    );
  }
}

/** Adds the nodes of model(x) to g. Weights become initializers named `<prefix>.<state-dict key>`. */
export function exportTorchScript(g: GraphBuilder, model: TorchScriptModule, x: Value, prefix: string): Value {
  let program: ReturnType<TorchScriptModule["scriptGraph"]>;
  try {
    program = model.scriptGraph();
  } catch (e) {
    throw new Error(
      `onnx export: ${prefix} (TorchScript): libtorch cannot freeze forward() to read its operators: ${(e as Error).message.split("\n")[0] ?? ""}`,
      { cause: e },
    );
  }
  const { graph, tensors } = program;
  try {
    return translateScriptGraph(g, graph, x, prefix);
  } finally {
    for (const t of tensors) t.dispose();
  }
}
