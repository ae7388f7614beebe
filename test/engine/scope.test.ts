// Scoped memory: tidy frees intermediates, keeps what is returned or kept, and frees on throw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tensor, ones, tidy, keep, dispose, memory, type Tensor } from "../../src/engine/index.js";

test("tidy disposes intermediates and keeps returned tensors", () => {
  const start = memory();
  let inner: Tensor | undefined;
  const out = tidy(() => {
    const a = ones([3]);
    inner = a.mul(2);
    return inner.add(1);
  });
  assert.equal(inner?.isDisposed, true);
  assert.equal(out.isDisposed, false);
  assert.deepEqual(out.toArray(), [3, 3, 3]);
  assert.equal(memory().numTensors, start.numTensors + 1);
  out.dispose();
  assert.equal(memory().numTensors, start.numTensors);
  assert.equal(memory().numHandles, start.numHandles);
});

test("returned containers (arrays, objects, Maps) survive; nested scopes hand results outwards", () => {
  const start = memory().numTensors;
  const r = tidy(() => {
    const x = tidy(() => ({ a: ones([1]), list: [ones([2]), ones([3])], m: new Map([["k", ones([4])]]) }));
    ones([5]); // garbage of the outer scope
    return x;
  });
  assert.equal(memory().numTensors, start + 4);
  assert.equal(r.m.get("k")?.size, 4);
  dispose(r);
  assert.equal(memory().numTensors, start);
});

test("keep() lets a tensor outlive its scope; tidy frees everything on throw", () => {
  const start = memory().numTensors;
  let kept: Tensor | undefined;
  tidy(() => {
    kept = keep(ones([2]));
    ones([2]);
  });
  assert.equal(kept?.isDisposed, false);
  kept?.dispose();
  let made: Tensor | undefined;
  assert.throws(
    () =>
      tidy(() => {
        made = ones([2]);
        throw new Error("boom");
      }),
    /boom/,
  );
  assert.equal(made?.isDisposed, true);
  assert.equal(memory().numTensors, start);
  assert.equal(memory().scopeDepth, 0);
});

test("tidy refuses async functions", () => {
  const start = memory().numTensors;
  assert.throws(() => tidy(() => Promise.resolve(1)), /tidy: fn must be synchronous/);
  assert.equal(memory().numTensors, start);
});

test("1,000 tidy-wrapped steps do not grow the live-tensor count", () => {
  const w = tensor([1, 2, 3]);
  const start = memory();
  for (let i = 0; i < 1000; i++) {
    tidy(() => {
      w.mul(2).add(1).sum();
    });
  }
  assert.equal(memory().numTensors, start.numTensors);
  assert.equal(memory().numHandles, start.numHandles);
  w.dispose();
});
