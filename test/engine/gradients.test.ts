// Every differentiable op's gradient against central finite differences (float64).
import { test } from "node:test";
import { F, cat, stack, where, tensor, manualSeed, type Tensor } from "../../src/engine/index.js";
import { gradcheck, values } from "../helpers/gradcheck.js";
import { noLeaks } from "../helpers/memory.js";

const n = (k: number, seed: number): number[] => values(k, seed);
// Values kept away from kinks (relu at 0, abs at 0, max ties) so central differences are valid.
const awayFromZero = (k: number, seed: number): number[] => values(k, seed).map((v) => (v >= 0 ? v + 0.2 : v - 0.2));
const positive = (k: number, seed: number): number[] => values(k, seed).map((v) => Math.abs(v) + 0.5);
const distinct = (k: number): number[] => Array.from({ length: k }, (_, i) => ((i * 7) % k) * 0.13 - 0.4);

test("elementwise arithmetic with broadcasting", () =>
  noLeaks(() => {
    gradcheck("add", ([a, b]) => (a as Tensor).add(b as Tensor, 2), [n(6, 1), n(3, 2)], [[2, 3], [3]]);
    gradcheck(
      "sub",
      ([a, b]) => (a as Tensor).sub(b as Tensor),
      [n(6, 1), n(2, 3)],
      [
        [2, 3],
        [2, 1],
      ],
    );
    gradcheck(
      "mul",
      ([a, b]) => (a as Tensor).mul(b as Tensor),
      [n(6, 4), n(6, 5)],
      [
        [2, 3],
        [2, 3],
      ],
    );
    gradcheck("div", ([a, b]) => (a as Tensor).div(b as Tensor), [n(6, 6), positive(3, 7)], [[2, 3], [3]]);
    gradcheck("pow", ([a, b]) => (a as Tensor).pow(b as Tensor), [positive(4, 8), n(4, 9)], [[4], [4]]);
    gradcheck("pow scalar", ([a]) => (a as Tensor).pow(3), [n(4, 10)], [[4]]);
    gradcheck("rsub", ([a]) => (a as Tensor).rsub(2), [n(3, 11)], [[3]]);
    gradcheck("maximum", ([a, b]) => (a as Tensor).maximum(b as Tensor), [distinct(5), positive(5, 1)], [[5], [5]]);
    gradcheck("clamp", ([a]) => (a as Tensor).clamp(-0.5, 0.5), [awayFromZero(6, 12).map((v) => v * 0.9)], [[6]]);
  }));

test("unary math and activations", () =>
  noLeaks(() => {
    const u = (name: string, f: (t: Tensor) => Tensor, v: number[]) =>
      gradcheck(name, ([a]) => f(a as Tensor), [v], [[v.length]]);
    u("neg", (t) => t.neg(), n(5, 1));
    u("exp", (t) => t.exp(), n(5, 2));
    u("log", (t) => t.log(), positive(5, 3));
    u("sqrt", (t) => t.sqrt(), positive(5, 4));
    u("rsqrt", (t) => t.rsqrt(), positive(5, 5));
    u("abs", (t) => t.abs(), awayFromZero(5, 6));
    u("square", (t) => t.square(), n(5, 7));
    u("sin", (t) => t.sin(), n(5, 8));
    u("relu", (t) => t.relu(), awayFromZero(6, 9));
    u("gelu", (t) => t.gelu(), n(6, 10));
    u("gelu tanh", (t) => t.gelu("tanh"), n(6, 11));
    u("sigmoid", (t) => t.sigmoid(), n(6, 12));
    u("tanh", (t) => t.tanh(), n(6, 13));
    u("silu", (t) => t.silu(), n(6, 14));
    u("leakyRelu", (t) => t.leakyRelu(0.1), awayFromZero(6, 15));
    gradcheck("softmax", ([a]) => (a as Tensor).softmax(1), [n(6, 16)], [[2, 3]]);
    gradcheck("logSoftmax", ([a]) => (a as Tensor).logSoftmax(-1), [n(6, 17)], [[2, 3]]);
  }));

test("matmul and linear", () =>
  noLeaks(() => {
    gradcheck(
      "matmul",
      ([a, b]) => (a as Tensor).matmul(b as Tensor),
      [n(6, 1), n(12, 2)],
      [
        [2, 3],
        [3, 4],
      ],
    );
    gradcheck(
      "batched matmul",
      ([a, b]) => (a as Tensor).matmul(b as Tensor),
      [n(12, 3), n(12, 4)],
      [
        [2, 2, 3],
        [2, 3, 2],
      ],
    );
    gradcheck(
      "linear",
      ([x, w, b]) => F.linear(x as Tensor, w as Tensor, b as Tensor),
      [n(6, 5), n(12, 6), n(4, 7)],
      [[2, 3], [4, 3], [4]],
    );
  }));

test("conv2d: stride, padding, dilation, groups", () =>
  noLeaks(() => {
    gradcheck(
      "conv2d",
      ([x, w, b]) => F.conv2d(x as Tensor, w as Tensor, b as Tensor, { padding: 1 }),
      [n(2 * 16, 1), n(3 * 2 * 9, 2), n(3, 3)],
      [[1, 2, 4, 4], [3, 2, 3, 3], [3]],
    );
    gradcheck(
      "conv2d stride 2",
      ([x, w]) => F.conv2d(x as Tensor, w as Tensor, null, { stride: 2, padding: [1, 0] }),
      [n(25, 4), n(9, 5)],
      [
        [1, 1, 5, 5],
        [1, 1, 3, 3],
      ],
    );
    gradcheck(
      "conv2d dilation 2",
      ([x, w]) => F.conv2d(x as Tensor, w as Tensor, null, { dilation: 2 }),
      [n(36, 6), n(4, 7)],
      [
        [1, 1, 6, 6],
        [1, 1, 2, 2],
      ],
    );
    gradcheck(
      "conv2d groups 2",
      ([x, w]) => F.conv2d(x as Tensor, w as Tensor, null, { groups: 2 }),
      [n(4 * 9, 8), n(4 * 2 * 4, 9)],
      [
        [1, 4, 3, 3],
        [4, 2, 2, 2],
      ],
    );
    gradcheck(
      "convTranspose2d",
      ([x, w]) => F.convTranspose2d(x as Tensor, w as Tensor, null, { stride: 2 }),
      [n(2 * 4, 10), n(2 * 1 * 4, 11)],
      [
        [1, 2, 2, 2],
        [2, 1, 2, 2],
      ],
    );
  }));

test("normalisation: batch norm (train and eval) and layer norm", () =>
  noLeaks(() => {
    gradcheck(
      "batchNorm train",
      ([x, w, b]) => F.batchNorm(x as Tensor, { weight: w as Tensor, bias: b as Tensor, training: true }),
      [n(3 * 2 * 4, 1), positive(2, 2), n(2, 3)],
      [[3, 2, 2, 2], [2], [2]],
    );
    const rm = tensor(Float64Array.from([0.1, -0.2]));
    const rv = tensor(Float64Array.from([0.5, 2.0]));
    gradcheck(
      "batchNorm eval",
      ([x, w, b]) =>
        F.batchNorm(x as Tensor, {
          weight: w as Tensor,
          bias: b as Tensor,
          runningMean: rm,
          runningVar: rv,
          training: false,
        }),
      [n(2 * 2 * 4, 4), positive(2, 5), n(2, 6)],
      [[2, 2, 2, 2], [2], [2]],
    );
    rm.dispose();
    rv.dispose();
    gradcheck(
      "layerNorm",
      ([x, w, b]) => F.layerNorm(x as Tensor, [4], w as Tensor, b as Tensor),
      [n(8, 7), positive(4, 8), n(4, 9)],
      [[2, 4], [4], [4]],
    );
  }));

test("losses: cross-entropy with indices and soft targets, nll, mse, bce", () =>
  noLeaks(() => {
    const idx = tensor(BigInt64Array.from([2n, 0n, 1n]), { shape: [3] });
    gradcheck("crossEntropy indices", ([l]) => F.crossEntropy(l as Tensor, idx), [n(9, 1)], [[3, 3]]);
    gradcheck(
      "crossEntropy smoothing",
      ([l]) => F.crossEntropy(l as Tensor, idx, { labelSmoothing: 0.1 }),
      [n(9, 2)],
      [[3, 3]],
    );
    gradcheck(
      "crossEntropy soft",
      ([l, p]) => F.crossEntropy(l as Tensor, (p as Tensor).softmax(1)),
      [n(9, 3), n(9, 4)],
      [
        [3, 3],
        [3, 3],
      ],
    );
    gradcheck("nllLoss", ([l]) => F.nllLoss((l as Tensor).logSoftmax(1), idx, "sum"), [n(9, 5)], [[3, 3]]);
    idx.dispose();
    gradcheck("mseLoss", ([a, b]) => F.mseLoss(a as Tensor, b as Tensor), [n(4, 6), n(4, 7)], [[4], [4]]);
    gradcheck(
      "bceWithLogits",
      ([a, b]) => F.binaryCrossEntropyWithLogits(a as Tensor, (b as Tensor).sigmoid()),
      [n(4, 8), n(4, 9)],
      [[4], [4]],
    );
  }));

test("dropout (with a fixed seed the mask is the same on every evaluation)", () =>
  noLeaks(() => {
    gradcheck("dropout", ([x]) => F.dropout(x as Tensor, 0.3, true), [n(20, 1)], [[20]], {
      before: () => manualSeed(7),
    });
  }));

test("pooling", () =>
  noLeaks(() => {
    gradcheck("maxPool2d", ([x]) => F.maxPool2d(x as Tensor, 2), [distinct(16)], [[1, 1, 4, 4]]);
    gradcheck(
      "maxPool2d stride 1 pad 1",
      ([x]) => F.maxPool2d(x as Tensor, 3, { stride: 1, padding: 1 }),
      [distinct(16)],
      [[1, 1, 4, 4]],
    );
    gradcheck(
      "avgPool2d",
      ([x]) => F.avgPool2d(x as Tensor, 2, { stride: 1, padding: 1, countIncludePad: false }),
      [n(16, 2)],
      [[1, 1, 4, 4]],
    );
    gradcheck("adaptiveAvgPool2d", ([x]) => F.adaptiveAvgPool2d(x as Tensor, [2, 3]), [n(2 * 25, 3)], [[1, 2, 5, 5]]);
  }));

test("shape and indexing ops", () =>
  noLeaks(() => {
    const idx = tensor(BigInt64Array.from([2n, 0n, 2n]), { shape: [3] });
    const gidx = tensor(BigInt64Array.from([1n, 0n, 2n, 2n]), { shape: [2, 2] });
    const mask = tensor([true, false, true, false, false, true], { shape: [2, 3] });
    gradcheck(
      "reshape",
      ([a]) => (a as Tensor).reshape([3, 2]).mul(tensor(Float64Array.from([1, 2, 3, 4, 5, 6]), { shape: [3, 2] })),
      [n(6, 1)],
      [[2, 3]],
    );
    gradcheck("permute", ([a]) => (a as Tensor).permute([2, 0, 1]), [n(12, 2)], [[2, 3, 2]]);
    gradcheck("transpose", ([a]) => (a as Tensor).transpose(0, 1), [n(6, 3)], [[2, 3]]);
    gradcheck(
      "cat",
      ([a, b]) => cat([a as Tensor, b as Tensor], 1),
      [n(4, 4), n(6, 5)],
      [
        [2, 2],
        [2, 3],
      ],
    );
    gradcheck("stack", ([a, b]) => stack([a as Tensor, b as Tensor], 0), [n(3, 6), n(3, 7)], [[3], [3]]);
    gradcheck("slice step 2", ([a]) => (a as Tensor).slice(1, 0, 5, 2), [n(10, 8)], [[2, 5]]);
    gradcheck(
      "indexSelect (repeated index accumulates)",
      ([a]) => (a as Tensor).indexSelect(0, idx),
      [n(6, 9)],
      [[3, 2]],
    );
    gradcheck("gather", ([a]) => (a as Tensor).gather(1, gidx), [n(6, 10)], [[2, 3]]);
    gradcheck(
      "scatter",
      ([a, s]) => (a as Tensor).scatter(1, gidx.slice(1, 0, 1), s as Tensor),
      [n(6, 11), n(2, 12)],
      [
        [2, 3],
        [2, 1],
      ],
    );
    gradcheck(
      "where",
      ([a, b]) => where(mask, a as Tensor, b as Tensor),
      [n(6, 13), n(6, 14)],
      [
        [2, 3],
        [2, 3],
      ],
    );
    gradcheck("pad constant", ([a]) => (a as Tensor).pad([1, 2, 0, 1], "constant", 0.5), [n(6, 15)], [[1, 1, 2, 3]]);
    gradcheck("pad reflect", ([a]) => (a as Tensor).pad([1, 1, 1, 1], "reflect"), [n(9, 16)], [[1, 1, 3, 3]]);
    gradcheck("expand", ([a]) => (a as Tensor).expand([3, 2]), [n(2, 17)], [[1, 2]]);
    gradcheck("flip", ([a]) => (a as Tensor).flip([1]), [n(6, 18)], [[2, 3]]);
    idx.dispose();
    gidx.dispose();
    mask.dispose();
  }));

test("reductions", () =>
  noLeaks(() => {
    gradcheck("sum dim", ([a]) => (a as Tensor).sum(1, true), [n(6, 1)], [[2, 3]]);
    gradcheck("mean", ([a]) => (a as Tensor).mean([0, 1]), [n(6, 2)], [[2, 3]]);
    gradcheck("max", ([a]) => (a as Tensor).max(1), [distinct(6)], [[2, 3]]);
    gradcheck("var", ([a]) => (a as Tensor).var(1), [n(6, 3)], [[2, 3]]);
    gradcheck("std biased", ([a]) => (a as Tensor).std(null, { unbiased: false }), [n(6, 4)], [[2, 3]]);
    gradcheck("logsumexp", ([a]) => (a as Tensor).logsumexp(1), [n(6, 5)], [[2, 3]]);
    gradcheck("norm", ([a]) => (a as Tensor).norm(2, 1), [n(6, 6)], [[2, 3]]);
    gradcheck("cumsum", ([a]) => (a as Tensor).cumsum(0), [n(4, 7)], [[4]]);
  }));

test("resampling: interpolate and grid-sample", () =>
  noLeaks(() => {
    gradcheck("interpolate nearest", ([x]) => F.interpolate(x as Tensor, [4, 6], "nearest"), [n(6, 1)], [[1, 1, 2, 3]]);
    gradcheck(
      "interpolate bilinear",
      ([x]) => F.interpolate(x as Tensor, [5, 4], "bilinear"),
      [n(6, 2)],
      [[1, 1, 2, 3]],
    );
    gradcheck(
      "interpolate bicubic",
      ([x]) => F.interpolate(x as Tensor, [5, 5], "bicubic", true),
      [n(9, 3)],
      [[1, 1, 3, 3]],
    );
    // Grid points kept off pixel centres so bilinear weights are differentiable in the grid too.
    gradcheck(
      "gridSample",
      ([x, g]) => F.gridSample(x as Tensor, g as Tensor, { alignCorners: false }),
      [n(16, 4), n(8, 5).map((v) => v * 0.7 + 0.03)],
      [
        [1, 1, 4, 4],
        [1, 2, 2, 2],
      ],
    );
    gradcheck(
      "gridSample border",
      ([x, g]) => F.gridSample(x as Tensor, g as Tensor, { paddingMode: "border", alignCorners: true }),
      [n(9, 6), n(8, 7).map((v) => v * 0.9 + 0.01)],
      [
        [1, 1, 3, 3],
        [1, 2, 2, 2],
      ],
    );
  }));
