// Shared test helpers: tensor-count checks, setting weights by hand, numeric comparison.
import assert from "node:assert/strict";
import { type Tensor, memory, noGrad, tensor, tidy } from "../../src/engine/index.js";

/**
 * Runs fn and asserts that every tensor it made was freed (fn disposes what it creates
 * outside tidy, modules included).
 */
export function noLeaks(fn: () => void): void {
  const before = memory();
  fn();
  const after = memory();
  assert.equal(after.numTensors, before.numTensors, "tensors leaked");
  // Native handles too: a libtorch tensor the JS side lost track of is invisible to numTensors.
  assert.equal(after.numHandles, before.numHandles, "native handles leaked");
}

/** Overwrites t in place with `values` (row-major, same element count). */
export function assign(t: Tensor, values: number[]): void {
  assert.equal(values.length, t.size, "assign: wrong number of values");
  noGrad(() =>
    tidy(() => {
      t.copy_(tensor(values, { dtype: t.dtype }).reshape(t.shape));
    }),
  );
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5, what = "values"): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    const ok = (Number.isNaN(a) && Number.isNaN(e)) || Math.abs(a - e) <= tol * Math.max(1, Math.abs(e));
    assert.ok(ok, `${what}[${i}]: got ${a}, expected ${e} (tolerance ${tol})`);
  }
}

/** Elements of t as numbers, disposing t (for results of forward passes). */
export function take(t: Tensor): number[] {
  try {
    return t.toArray();
  } finally {
    t.dispose();
  }
}
