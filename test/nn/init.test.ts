// Initialisers: PyTorch's gains and fans, the bounds and spreads they imply, and seeding.
import { test } from "node:test";
import assert from "node:assert/strict";

import { type Tensor, manualSeed, zeros } from "../../src/engine/index.js";
import * as nn from "../../src/nn/index.js";
import { assertClose, noLeaks } from "./helpers.js";

const { init } = nn;

function stats(t: Tensor): { min: number; max: number; mean: number; std: number } {
  const v = t.toArray();
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length;
  // reduce rather than Math.min(...v): spreading 10^5 arguments overflows the call stack.
  const min = v.reduce((a, b) => Math.min(a, b), Infinity);
  const max = v.reduce((a, b) => Math.max(a, b), -Infinity);
  return { min, max, mean, std: Math.sqrt(variance) };
}

/** Draws into a fresh [rows, cols] tensor with `fill` and returns its statistics. */
function drawn(shape: number[], fill: (t: Tensor) => void): ReturnType<typeof stats> {
  const t = zeros(shape);
  try {
    fill(t);
    return stats(t);
  } finally {
    t.dispose();
  }
}

void test("calculateGain matches PyTorch's table", () => {
  assert.equal(init.calculateGain("linear"), 1);
  assert.equal(init.calculateGain("conv2d"), 1);
  assert.equal(init.calculateGain("sigmoid"), 1);
  assert.equal(init.calculateGain("tanh"), 5 / 3);
  assert.equal(init.calculateGain("relu"), Math.sqrt(2));
  assert.equal(init.calculateGain("selu"), 0.75);
  assertClose([init.calculateGain("leaky_relu")], [Math.sqrt(2 / (1 + 0.01 ** 2))], 1e-12);
  // The a = sqrt(5) used by Linear/Conv defaults gives sqrt(1/3).
  assertClose([init.calculateGain("leaky_relu", Math.sqrt(5))], [Math.sqrt(1 / 3)], 1e-12);
});

void test("calculateFanInAndFanOut multiplies by the receptive field", () => {
  noLeaks(() => {
    const w = zeros([16, 3, 5, 5]);
    assert.deepEqual(init.calculateFanInAndFanOut(w), { fanIn: 75, fanOut: 400 });
    const l = zeros([10, 20]);
    assert.deepEqual(init.calculateFanInAndFanOut(l), { fanIn: 20, fanOut: 10 });
    const v = zeros([3]);
    assert.throws(() => init.calculateFanInAndFanOut(v), /at least 2 dimensions, got shape \[3\]/);
    w.dispose();
    l.dispose();
    v.dispose();
  });
});

void test("kaimingUniform_ stays within gain*sqrt(3/fan_in) and reaches it", () => {
  noLeaks(() => {
    manualSeed(0);
    const bound = Math.sqrt(2) * Math.sqrt(3 / 512);
    const s = drawn([256, 512], (t) => init.kaimingUniform_(t));
    assert.ok(s.max <= bound && s.min >= -bound, `range [${s.min}, ${s.max}] exceeds ${bound}`);
    assert.ok(s.max > 0.999 * bound && s.min < -0.999 * bound, "a large tensor comes close to the bound");
    assertClose([s.std], [bound / Math.sqrt(3)], 0.01, "std of U(-b, b)");

    // fan_out and a leaky slope change the bound as the formula says.
    const b2 = Math.sqrt(2 / (1 + 0.2 ** 2)) * Math.sqrt(3 / 128);
    const s2 = drawn([128, 64], (t) => init.kaimingUniform_(t, { a: 0.2, mode: "fan_out" }));
    assert.ok(s2.max <= b2 && s2.min >= -b2 && s2.max > 0.99 * b2);
  });
});

void test("kaimingNormal_ and xavier draws have PyTorch's spreads", () => {
  noLeaks(() => {
    manualSeed(1);
    const k = drawn([400, 300], (t) => init.kaimingNormal_(t, { nonlinearity: "relu" }));
    assertClose([k.std], [Math.sqrt(2 / 300)], 0.02, "kaiming normal std");
    assert.ok(Math.abs(k.mean) < 0.002);

    const bound = Math.sqrt(6 / (300 + 200));
    const xu = drawn([300, 200], (t) => init.xavierUniform_(t));
    assert.ok(xu.max <= bound && xu.min >= -bound && xu.max > 0.999 * bound);
    const xg = drawn([300, 200], (t) => init.xavierUniform_(t, { gain: 2 }));
    assert.ok(xg.max <= 2 * bound && xg.max > 1.99 * bound);

    const xn = drawn([300, 200], (t) => init.xavierNormal_(t));
    assertClose([xn.std], [Math.sqrt(2 / 500)], 0.02, "xavier normal std");
  });
});

void test("truncNormal_ respects the cut-offs and has the truncated distribution's spread", () => {
  noLeaks(() => {
    manualSeed(2);
    // N(0, 1) cut to [-1, 1]: variance 1 - 2*phi(1)/(Phi(1) - Phi(-1)) = 0.291125...
    const s = drawn([200, 500], (t) => init.truncNormal_(t, { a: -1, b: 1 }));
    assert.ok(s.min >= -1 && s.max <= 1);
    assert.ok(s.min < -0.999 && s.max > 0.999);
    assertClose([s.std ** 2], [0.2911251], 0.01, "variance");
    assert.ok(Math.abs(s.mean) < 0.005);

    // ViT-style: std 0.02 with the default absolute cut-offs +-2 is practically untruncated.
    const v = drawn([200, 500], (t) => init.truncNormal_(t, { std: 0.02 }));
    assertClose([v.std], [0.02], 0.01, "std");

    // An asymmetric window far from the mean still fills only [a, b].
    const o = drawn([100, 100], (t) => init.truncNormal_(t, { mean: 0, std: 1, a: 2, b: 3 }));
    assert.ok(o.min >= 2 && o.max <= 3, `range [${o.min}, ${o.max}]`);
  });
});

void test("constant_, zeros_, ones_, uniform_ and normal_ fill in place", () => {
  noLeaks(() => {
    const t = zeros([2, 3]);
    assert.equal(init.constant_(t, 2.5), t);
    assert.deepEqual(t.toArray(), [2.5, 2.5, 2.5, 2.5, 2.5, 2.5]);
    init.ones_(t);
    assert.deepEqual(t.toArray(), [1, 1, 1, 1, 1, 1]);
    init.zeros_(t);
    assert.deepEqual(t.toArray(), [0, 0, 0, 0, 0, 0]);
    init.uniform_(t, 3, 4);
    assert.ok(t.toArray().every((v) => v >= 3 && v <= 4));
    assert.throws(() => init.uniform_(t, 1, 0), { message: "uniform_: low (1) must not exceed high (0)" });
    t.dispose();
  });
});

void test("initialising a parameter works although it requires grad", () => {
  noLeaks(() => {
    const lin = new nn.Linear(4, 4);
    const bias = lin.bias;
    assert.ok(bias !== null);
    init.kaimingNormal_(lin.weight);
    init.zeros_(bias);
    assert.ok(lin.weight.requiresGrad && lin.weight.isLeaf);
    assert.deepEqual(bias.toArray(), [0, 0, 0, 0]);
    lin.dispose();
  });
});

void test("Linear and Conv2d defaults stay within 1/sqrt(fan_in)", () => {
  noLeaks(() => {
    manualSeed(3);
    const lin = new nn.Linear(64, 200);
    const bound = 1 / Math.sqrt(64);
    const w = stats(lin.weight);
    assert.ok(w.max <= bound && w.min >= -bound && w.max > 0.99 * bound);
    assert.ok(lin.bias !== null);
    const b = stats(lin.bias);
    assert.ok(b.max <= bound && b.min >= -bound && b.max > 0.8 * bound);

    const conv = new nn.Conv2d(8, 64, 3);
    const cb = 1 / Math.sqrt(8 * 9);
    const c = stats(conv.weight);
    assert.ok(c.max <= cb && c.min >= -cb && c.max > 0.98 * cb);
    lin.dispose();
    conv.dispose();
  });
});

void test("the same seed gives identical parameters, another seed different ones", () => {
  noLeaks(() => {
    const build = (seed: number): nn.Module => {
      manualSeed(seed);
      return new nn.ModuleList<nn.AnyModule>([
        new nn.Conv2d(3, 4, 3),
        new nn.Linear(4, 2),
        new nn.MultiheadAttention(4, 2),
      ]);
    };
    const a = build(42);
    const b = build(42);
    const c = build(43);
    const values = (m: nn.Module): number[][] => m.parameters().map((p) => p.toArray());
    assert.deepEqual(values(a), values(b));
    assert.notDeepEqual(values(a), values(c));
    a.dispose();
    b.dispose();
    c.dispose();
  });
});
