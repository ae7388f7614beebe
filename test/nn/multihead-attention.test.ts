// MultiheadAttention against a plain-JS reference with the same weights: layouts, masks,
// returned weights, PyTorch's parameter names and initialisation.
import { test } from "node:test";
import assert from "node:assert/strict";

import { type Tensor, tensor, tidy } from "../../src/engine/index.js";
import * as nn from "../../src/nn/index.js";
import { assertClose, assign, noLeaks, take } from "./helpers.js";

type Mat = number[][];

/** Deterministic, irregular test values. */
function values(rows: number, cols: number, phase: number): Mat {
  return Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => Math.sin(phase + 1.3 * i + 0.7 * j + 0.1 * i * j)),
  );
}

/** x W^T + b for x [n, in], W [out, in]. */
function affine(x: Mat, w: Mat, b: number[]): Mat {
  return x.map((row) => w.map((wr, o) => wr.reduce((s, wv, i) => s + wv * (row[i] ?? NaN), b[o] ?? NaN)));
}

interface Weights {
  inW: Mat; // [3E, E]
  inB: number[]; // [3E]
  outW: Mat; // [E, E]
  outB: number[]; // [E]
}

/**
 * Attention for one batch element: q [L, E], k/v [S, E]; `blocked(i, j)` hides key j from
 * query i. Returns the output [L, E] and the head-averaged weights [L, S].
 */
function reference(
  q: Mat,
  k: Mat,
  v: Mat,
  w: Weights,
  heads: number,
  blocked: (i: number, j: number) => boolean = () => false,
) {
  const e = w.outW.length;
  const d = e / heads;
  const qp = affine(q, w.inW.slice(0, e), w.inB.slice(0, e));
  const kp = affine(k, w.inW.slice(e, 2 * e), w.inB.slice(e, 2 * e));
  const vp = affine(v, w.inW.slice(2 * e), w.inB.slice(2 * e));
  const context: Mat = q.map(() => new Array<number>(e).fill(0));
  const avg: Mat = q.map(() => new Array<number>(k.length).fill(0));
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < q.length; i++) {
      const scores = kp.map((kr, j) => {
        if (blocked(i, j)) return -Infinity;
        let s = 0;
        for (let c = h * d; c < (h + 1) * d; c++) s += (qp[i]?.[c] ?? NaN) * (kr[c] ?? NaN);
        return s / Math.sqrt(d);
      });
      const m = Math.max(...scores);
      const ex = scores.map((s) => Math.exp(s - m));
      const z = ex.reduce((a, b) => a + b, 0);
      const a = ex.map((x) => x / z);
      for (let j = 0; j < a.length; j++) {
        const row = avg[i];
        if (row) row[j] = (row[j] ?? 0) + (a[j] ?? 0) / heads;
        for (let c = h * d; c < (h + 1) * d; c++) {
          const ctx = context[i];
          if (ctx) ctx[c] = (ctx[c] ?? 0) + (a[j] ?? 0) * (vp[j]?.[c] ?? NaN);
        }
      }
    }
  }
  return { output: affine(context, w.outW, w.outB), weights: avg };
}

const E = 4;
const H = 2;
const WEIGHTS: Weights = {
  inW: values(3 * E, E, 0.3).map((r) => r.map((x) => 0.6 * x)),
  inB: values(1, 3 * E, 2.1)[0]?.map((x) => 0.2 * x) ?? [],
  outW: values(E, E, 1.7).map((r) => r.map((x) => 0.5 * x)),
  outB: values(1, E, 0.9)[0]?.map((x) => 0.1 * x) ?? [],
};

function withWeights(opts: nn.MultiheadAttentionOptions = {}): nn.MultiheadAttention {
  const mha = new nn.MultiheadAttention(E, H, opts);
  assign(mha.inProjWeight, WEIGHTS.inW.flat());
  const inB = mha.inProjBias;
  const outB = mha.outProj.bias;
  assert.ok(inB !== null && outB !== null);
  assign(inB, WEIGHTS.inB);
  assign(mha.outProj.weight, WEIGHTS.outW.flat());
  assign(outB, WEIGHTS.outB);
  return mha;
}

// Two batch elements; queries of length 3, keys/values of length 2.
const Q = [values(3, E, 0), values(3, E, 5)];
const K = [values(2, E, 1), values(2, E, 6)];
const V = [values(2, E, 2), values(2, E, 7)];

/** [N][len][E] as a tensor in batch-first [N, len, E] or sequence-first [len, N, E] layout. */
function layout(batches: Mat[], batchFirst: boolean): Tensor {
  if (batchFirst) return tensor(batches);
  const len = batches[0]?.length ?? 0;
  return tensor(Array.from({ length: len }, (_, t) => batches.map((b) => b[t] ?? [])));
}

void test("state-dict keys and shapes are PyTorch's", () => {
  noLeaks(() => {
    const mha = new nn.MultiheadAttention(8, 2);
    const sd = mha.stateDict();
    assert.deepEqual([...sd.keys()], ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]);
    assert.deepEqual(
      [...sd.values()].map((t) => t.shape),
      [[24, 8], [24], [8, 8], [8]],
    );
    const noBias = new nn.MultiheadAttention(8, 2, { bias: false });
    assert.deepEqual([...noBias.stateDict().keys()], ["in_proj_weight", "out_proj.weight"]);
    mha.dispose();
    noBias.dispose();
  });
});

void test("initialisation: xavier-uniform in_proj_weight, zero biases, Linear-default out_proj.weight", () => {
  noLeaks(() => {
    const mha = new nn.MultiheadAttention(64, 4);
    const bound = Math.sqrt(6 / (64 + 3 * 64));
    const w = mha.inProjWeight.toArray();
    assert.ok(w.every((x) => Math.abs(x) <= bound));
    assert.ok(w.reduce((m, x) => Math.max(m, Math.abs(x)), 0) > 0.99 * bound);
    assert.ok(mha.inProjBias?.toArray().every((x) => x === 0));
    assert.ok(mha.outProj.bias?.toArray().every((x) => x === 0));
    const ow = mha.outProj.weight.toArray();
    assert.ok(ow.every((x) => Math.abs(x) <= 1 / 8));
    assert.ok(ow.reduce((m, x) => Math.max(m, Math.abs(x)), 0) > 0.95 / 8);
    mha.dispose();
  });
});

for (const batchFirst of [false, true]) {
  void test(`matches the JS reference (batchFirst=${batchFirst})`, () => {
    noLeaks(() => {
      const mha = withWeights({ batchFirst });
      const [q, k, v] = [layout(Q, batchFirst), layout(K, batchFirst), layout(V, batchFirst)];
      const { output, weights } = mha.forward(q, k, v, { needWeights: true });
      assert.deepEqual(output.shape, batchFirst ? [2, 3, E] : [3, 2, E]);
      assert.ok(weights !== undefined);
      assert.deepEqual(weights.shape, [2, 3, 2]);

      const refs = [0, 1].map((n) => reference(Q[n] ?? [], K[n] ?? [], V[n] ?? [], WEIGHTS, H));
      const outTensor = batchFirst ? output : output.transpose(0, 1);
      assertClose(
        take(outTensor),
        refs.flatMap((r) => r.output.flat()),
        1e-5,
        "output",
      );
      if (!batchFirst) output.dispose();
      assertClose(
        take(weights),
        refs.flatMap((r) => r.weights.flat()),
        1e-5,
        "weights",
      );
      for (const t of [q, k, v]) t.dispose();
      mha.dispose();
    });
  });
}

void test("unbatched [L, E] inputs give [L, E] outputs and [L, S] weights", () => {
  noLeaks(() => {
    const mha = withWeights();
    const [q, k, v] = [tensor(Q[1] ?? []), tensor(K[1] ?? []), tensor(V[1] ?? [])];
    const { output, weights } = mha.forward(q, k, v, { needWeights: true });
    const ref = reference(Q[1] ?? [], K[1] ?? [], V[1] ?? [], WEIGHTS, H);
    assert.deepEqual(output.shape, [3, E]);
    assertClose(take(output), ref.output.flat(), 1e-5);
    assert.deepEqual(weights?.shape, [3, 2]);
    if (weights) assertClose(take(weights), ref.weights.flat(), 1e-5);
    for (const t of [q, k, v]) t.dispose();
    mha.dispose();
  });
});

void test("bool and float attention masks block keys; keyPaddingMask ignores keys per batch", () => {
  noLeaks(() => {
    const mha = withWeights({ batchFirst: true });
    const [q, k, v] = [layout(Q, true), layout(K, true), layout(V, true)];
    // Query 1 may not see key 0.
    const blocked = (i: number, j: number): boolean => i === 1 && j === 0;
    const boolMask = tensor([
      [false, false],
      [true, false],
      [false, false],
    ]);
    const floatMask = tensor([
      [0, 0],
      [-Infinity, 0],
      [0, 0],
    ]);
    const refs = [0, 1].map((n) => reference(Q[n] ?? [], K[n] ?? [], V[n] ?? [], WEIGHTS, H, blocked));

    const a = mha.forward(q, k, v, { attnMask: boolMask, needWeights: true });
    assertClose(
      take(a.output),
      refs.flatMap((r) => r.output.flat()),
      1e-5,
      "bool-masked output",
    );
    const w = take(a.weights ?? tensor([]));
    assert.equal(w[1 * 2 + 0], 0, "blocked pair has zero weight");
    assertClose(
      w,
      refs.flatMap((r) => r.weights.flat()),
      1e-5,
      "bool-masked weights",
    );

    const b = mha.forward(q, k, v, { attnMask: floatMask });
    assert.equal(b.weights, undefined, "weights only on request");
    assertClose(
      take(b.output),
      refs.flatMap((r) => r.output.flat()),
      1e-5,
      "float-masked output",
    );

    // Batch element 1 ignores key 1; element 0 sees everything.
    const pad = tensor([
      [false, false],
      [false, true],
    ]);
    const c = mha.forward(q, k, v, { keyPaddingMask: pad });
    const padRefs = [
      reference(Q[0] ?? [], K[0] ?? [], V[0] ?? [], WEIGHTS, H),
      reference(Q[1] ?? [], K[1] ?? [], V[1] ?? [], WEIGHTS, H, (_i, j) => j === 1),
    ];
    assertClose(
      take(c.output),
      padRefs.flatMap((r) => r.output.flat()),
      1e-5,
      "padding-masked output",
    );

    const bad = tensor([[true, false]]);
    assert.throws(() => mha.forward(q, k, v, { attnMask: bad }), {
      message: "MultiheadAttention: attnMask must have shape [3, 2] or [4, 3, 2], got [1, 2]",
    });
    for (const t of [q, k, v, boolMask, floatMask, pad, bad]) t.dispose();
    mha.dispose();
  });
});

void test("per-head weights on request; each row sums to one", () => {
  noLeaks(() => {
    const mha = withWeights({ batchFirst: true });
    const [q, k, v] = [layout(Q, true), layout(K, true), layout(V, true)];
    const { output, weights } = mha.forward(q, k, v, { needWeights: true, averageAttnWeights: false });
    assert.deepEqual(weights?.shape, [2, H, 3, 2]);
    const sums = tidy(() => weights?.sum(-1).toArray() ?? []);
    assertClose(sums, new Array<number>(2 * H * 3).fill(1), 1e-6);
    output.dispose();
    weights?.dispose();
    for (const t of [q, k, v]) t.dispose();
    mha.dispose();
  });
});

void test("forward frees its intermediates and gradients reach every parameter", () => {
  noLeaks(() => {
    const mha = withWeights();
    const x = layout(Q, false);
    const before = mha.parameters().length;
    tidy(() => mha.forward(x, x, x).output.square().sum().backward());
    const grads = mha.parameters().map((p) => p.grad);
    assert.equal(grads.length, before);
    assert.ok(grads.every((g) => g !== null));
    for (const g of grads) g?.dispose();
    x.dispose();
    mha.dispose();
  });
});

void test("validates construction and input shapes", () => {
  noLeaks(() => {
    assert.throws(() => new nn.MultiheadAttention(10, 3), {
      message: "MultiheadAttention: embedDim (10) must be divisible by numHeads (3)",
    });
    assert.throws(() => new nn.MultiheadAttention(8, 2, { dropout: 2 }), /dropout must be a probability/);
    const mha = new nn.MultiheadAttention(4, 2);
    const good = tensor(values(3, 4, 0));
    const wide = tensor(values(3, 5, 0));
    const other = tensor(values(2, 4, 0));
    assert.throws(
      () => mha.forward(wide, wide, wide),
      /query's last dimension must be embedDim \(4\), got shape \[3, 5\]/,
    );
    assert.throws(() => mha.forward(good, good, other), /key and value must have the same sequence length/);
    assert.equal(
      mha.toString(),
      "MultiheadAttention(\n  (out_proj): Linear(in_features=4, out_features=4, bias=True)\n)",
    );
    for (const t of [good, wide, other]) t.dispose();
    mha.dispose();
  });
});
