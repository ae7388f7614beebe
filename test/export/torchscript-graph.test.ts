// The TorchScript translator on small hand-written graphs (the shape jitGraph reports): branches
// on values known when exporting are followed, branches on run-time values and outputs the
// exporter does not write are refused with the node's place, and the pooling paths the fixtures
// do not reach (adaptive bins of unequal size, ceil_mode windows) compute what PyTorch does.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ScriptBlock, ScriptConstant, ScriptNode, ScriptValue } from "../../src/engine/jit.js";
import { GraphBuilder } from "../../src/export/graph-builder.js";
import { DataType, encodeModel } from "../../src/export/onnx-proto.js";
import { floatTensor, openSession } from "../../src/export/onnx-runtime.js";
import { supportedTorchScriptOps, translateScriptGraph } from "../../src/export/torchscript-export.js";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fixtureDir } from "../helpers/pytorch-fixtures.js";

/** Builds a forward() graph node by node: self and x are its inputs. */
class Program {
  #id = 0;
  readonly self = this.value("__torch__.Net");
  readonly x = this.value("Tensor");
  readonly nodes: ScriptNode[] = [];

  value(type = "Tensor"): ScriptValue {
    return { id: ++this.#id, name: "", type };
  }

  node(kind: string, inputs: number[], outputs = 1, extra: Partial<ScriptNode> = {}, into = this.nodes): number[] {
    const outs = Array.from({ length: outputs }, () => this.value());
    into.push({ kind, inputs, outputs: outs, scope: "block.3", source: "net.py:7", code: "y = net(x)", ...extra });
    return outs.map((o) => o.id);
  }

  constant(value: ScriptConstant, into = this.nodes): number {
    return this.node("prim::Constant", [], 1, { value }, into)[0] as number;
  }

  graph(output: number): ScriptBlock {
    return { inputs: [this.self, this.x], nodes: this.nodes, outputs: [output] };
  }
}

/** Translates the program for x of dims [batch, ...dims] and runs it on onnxruntime. */
async function runProgram(
  p: Program,
  out: number,
  dims: number[],
  data: Float32Array,
): Promise<{ dims: readonly number[]; data: Float32Array }> {
  const g = new GraphBuilder();
  const x = g.input({ name: "x", type: DataType.FLOAT, dims: ["batch", ...dims] });
  const y = translateScriptGraph(g, p.graph(out), { name: x, rank: dims.length + 1, dims: ["batch", ...dims] }, "net");
  g.output(y.name, {
    name: "y",
    type: DataType.FLOAT,
    dims: (y.dims ?? []).map((d) => (typeof d === "number" ? d : "batch")),
  });
  const session = await openSession(
    encodeModel(g.build({ graphName: "t", doc: "", producerVersion: "0", metadata: {} })),
    { threads: 1 },
  );
  try {
    const r = (await session.run({ x: floatTensor(data, [1, ...dims]) })).y;
    assert.ok(r !== undefined && r.data instanceof Float32Array);
    return { dims: r.dims, data: r.data };
  } finally {
    await session.release();
  }
}

function translate(p: Program, out: number): void {
  const g = new GraphBuilder();
  const x = g.input({ name: "x", type: DataType.FLOAT, dims: ["batch", 2, 5, 5] });
  translateScriptGraph(g, p.graph(out), { name: x, rank: 4, dims: ["batch", 2, 5, 5] }, "net");
}

test("a branch on a value known when exporting is followed; the dead branch's exception is not", async () => {
  const p = new Program();
  const four = p.constant(4);
  const [rank] = p.node("aten::dim", [p.x.id]);
  const [isFour] = p.node("aten::eq", [rank as number, four]);
  const thenBlock: ScriptNode[] = [];
  const elseBlock: ScriptNode[] = [];
  const [relu] = p.node("aten::relu", [p.x.id], 1, {}, thenBlock);
  const msg = p.constant("expected 4D input", elseBlock);
  p.node("prim::RaiseException", [msg], 0, {}, elseBlock);
  const [neg] = p.node("aten::neg", [p.x.id], 1, {}, elseBlock);
  const [y] = p.node("prim::If", [isFour as number], 1, {
    blocks: [
      { inputs: [], nodes: thenBlock, outputs: [relu as number] },
      { inputs: [], nodes: elseBlock, outputs: [neg as number] },
    ],
  });
  const r = await runProgram(p, y as number, [1, 2, 2], Float32Array.from([-1, 2, -3, 4]));
  assert.deepEqual(Array.from(r.data), [0, 2, 0, 4]);
});

test("a branch on a value computed from the input is refused, naming the operator and where it is", () => {
  const p = new Program();
  const [sum] = p.node("aten::sum", [p.x.id, p.constant(null)]);
  const [positive] = p.node("aten::gt", [sum as number, p.constant(0)]);
  const [flag] = p.node("aten::Bool", [positive as number]);
  const [y] = p.node("prim::If", [flag as number], 1, {
    blocks: [
      { inputs: [], nodes: [], outputs: [p.x.id] },
      { inputs: [], nodes: [], outputs: [p.x.id] },
    ],
  });
  assert.throws(
    () => translate(p, y as number),
    /^Error: onnx export: net \(TorchScript\): aten::gt in block\.3 \(net\.py:7: y = net\(x\)\): the comparison > of a tensor computed from the input \(control flow on the input's values is not supported\)/,
  );
});

test("the indices of adaptive max pooling, batch norm in training mode and a transposed convolution are refused with the reason", () => {
  const p = new Program();
  const [, indices] = p.node("aten::adaptive_max_pool2d", [p.x.id, p.constant([2, 2])], 2);
  const [y] = p.node("aten::relu", [indices as number]);
  assert.throws(
    () => translate(p, y as number),
    /aten::relu in block\.3 \(net\.py:7: y = net\(x\)\): input must be a tensor, got the indices of adaptive_max_pool2d \(not exported\)/,
  );

  const q = new Program();
  const [bn] = q.node("aten::batch_norm", [
    q.x.id,
    q.constant(null),
    q.constant(null),
    q.constant(null),
    q.constant(null),
    q.constant(true),
    q.constant(0.1),
    q.constant(1e-5),
    q.constant(true),
  ]);
  assert.throws(() => translate(q, bn as number), /aten::batch_norm in block\.3 .*: batch_norm runs in training mode/);

  const t = new Program();
  const none = t.constant(null);
  const pairs = t.constant([1, 1]);
  const zeros = t.constant([0, 0]);
  const w = t.constant({ tensor: null as never, name: "up.weight" });
  const [up] = t.node("aten::_convolution", [
    t.x.id,
    w,
    none,
    pairs,
    zeros,
    pairs,
    t.constant(true),
    zeros,
    t.constant(1),
    t.constant(false),
    t.constant(false),
    t.constant(true),
    t.constant(true),
  ]);
  assert.throws(
    () => translate(t, up as number),
    /aten::_convolution in block\.3 .*: transposed convolutions are not supported/,
  );
});

test("adaptive average pooling with bins of unequal size (5 → 3) and ceil_mode max pooling compute PyTorch's values", async () => {
  const x = Float32Array.from({ length: 25 }, (_, i) => i);
  const p = new Program();
  const [avg] = p.node("aten::adaptive_avg_pool2d", [p.x.id, p.constant([3, 3])]);
  const r = await runProgram(p, avg as number, [1, 5, 5], x);
  assert.deepEqual(r.dims, [1, 1, 3, 3]);
  // PyTorch's bins on 5 → 3: rows/columns [0, 2), [1, 4), [3, 5).
  const bins = [
    [0, 2],
    [1, 4],
    [3, 5],
  ] as const;
  const want: number[] = [];
  for (const [r0, r1] of bins) {
    for (const [c0, c1] of bins) {
      let s = 0;
      for (let i = r0; i < r1; i++) for (let j = c0; j < c1; j++) s += i * 5 + j;
      want.push(s / ((r1 - r0) * (c1 - c0)));
    }
  }
  for (const [i, w] of want.entries())
    assert.ok(Math.abs((r.data[i] as number) - w) < 1e-5, `bin ${i}: ${r.data[i]} vs ${w}`);

  // max_pool2d(kernel 2, stride 2, ceil_mode) on 5x5: 3x3 windows, the last ones hold one row/column.
  const q = new Program();
  const [mp] = q.node("aten::max_pool2d", [
    q.x.id,
    q.constant([2, 2]),
    q.constant([2, 2]),
    q.constant([0, 0]),
    q.constant([1, 1]),
    q.constant(true),
  ]);
  const m = await runProgram(q, mp as number, [1, 5, 5], x);
  assert.deepEqual(m.dims, [1, 1, 3, 3]);
  assert.deepEqual(Array.from(m.data), [6, 8, 9, 16, 18, 19, 21, 23, 24]);
});

test("docs/export.md lists every operator the exporter translates, and no other", async () => {
  const doc = await readFile(join(fixtureDir(), "..", "..", "..", "docs", "export.md"), "utf8");
  const table = doc.slice(doc.indexOf("## Supported operators"), doc.indexOf("## What the model must be"));
  const listed = new Set([...table.matchAll(/`((?:aten|prim)::\w+)`/g)].map((m) => m[1]));
  assert.deepEqual([...listed].sort(), supportedTorchScriptOps());
});
