// Autograd: backward accumulates .grad, no-grad and inference-mode scopes, functional gradients.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  tensor,
  tidy,
  noGrad,
  enableGrad,
  inferenceMode,
  isGradEnabled,
  gradients,
  F,
} from "../../src/engine/index.js";
import { noLeaks } from "../helpers/memory.js";
import { close } from "../helpers/gradcheck.js";

test("backward accumulates into .grad until it is cleared", () =>
  noLeaks(() =>
    tidy(() => {
      const x = tensor([1, 2, 3], { requiresGrad: true });
      assert.equal(x.requiresGrad, true);
      assert.equal(x.isLeaf, true);
      assert.equal(x.grad === null, true);
      x.mul(x).sum().backward();
      assert.deepEqual(x.grad?.toArray(), [2, 4, 6]);
      x.mul(3).sum().backward();
      assert.deepEqual(x.grad?.toArray(), [5, 7, 9]);
      x.setGrad(null);
      assert.equal(x.grad === null, true);
      const y = x.mul(2);
      y.backward(tensor([1, 0, 1]));
      assert.deepEqual(x.grad?.toArray(), [2, 0, 2]);
    }),
  ));

test("a cross-entropy training step's gradient matches softmax minus one-hot", () =>
  noLeaks(() =>
    tidy(() => {
      const logits = tensor([[1, 2, 0.5]], { requiresGrad: true });
      F.crossEntropy(logits, tensor(new BigInt64Array([1n]))).backward();
      const p = [Math.exp(1), Math.exp(2), Math.exp(0.5)];
      const s = p[0]! + p[1]! + p[2]!;
      close(logits.grad?.toArray() ?? [], [p[0]! / s, p[1]! / s - 1, p[2]! / s]);
    }),
  ));

test("noGrad stops recording; enableGrad re-enables; flags restore after a throw", () =>
  noLeaks(() =>
    tidy(() => {
      const x = tensor([1, 2], { requiresGrad: true });
      const y = noGrad(() => {
        assert.equal(isGradEnabled(), false);
        const inner = enableGrad(() => x.mul(2));
        assert.equal(inner.requiresGrad, true);
        return x.mul(2);
      });
      assert.equal(y.requiresGrad, false);
      assert.equal(isGradEnabled(), true);
      assert.throws(() =>
        noGrad(() => {
          throw new Error("x");
        }),
      );
      assert.equal(isGradEnabled(), true);
      const z = inferenceMode(() => x.mul(3));
      assert.equal(z.requiresGrad, false);
      assert.deepEqual(z.toArray(), [3, 6]);
    }),
  ));

test("gradients() computes without touching .grad; unused inputs give null", () =>
  noLeaks(() =>
    tidy(() => {
      const a = tensor([1, 2], { requiresGrad: true });
      const b = tensor([3, 4], { requiresGrad: true });
      const [ga, gb] = gradients([a.mul(a).sum()], [a, b]);
      assert.deepEqual(ga?.toArray(), [2, 4]);
      assert.equal(gb, null);
      assert.equal(a.grad === null, true);
      // Second-order: d/da of sum(2a) through createGraph.
      const [g1] = gradients([a.pow(3).sum()], [a], { createGraph: true });
      const [g2] = gradients([(g1 ?? a).sum()], [a]);
      assert.deepEqual(g2?.toArray(), [6, 12]);
    }),
  ));

test("an input tensor can receive a gradient (as PGD attacks need)", () =>
  noLeaks(() =>
    tidy(() => {
      const x = tensor([[0.5, -0.5]]).requiresGrad_();
      const w = tensor([
        [2, 0],
        [0, 3],
      ]);
      F.crossEntropy(x.matmul(w), tensor(new BigInt64Array([0n]))).backward();
      const g = x.grad?.toArray() ?? [];
      assert.equal(g.length, 2);
      assert.ok((g[0] as number) < 0 && (g[1] as number) > 0);
    }),
  ));
