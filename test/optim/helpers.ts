// Shared test helpers for the optimizer tests: float64 parameters, fixed gradients, closeness
// checks with a message, and a leak check around each test body.
import assert from "node:assert/strict";
import { memory, tensor, type Tensor } from "../../src/engine/index.js";

/** A float64 leaf parameter that requires grad, so reference values in JS doubles compare tightly. */
export function param(values: number[]): Tensor {
  return tensor(values, { dtype: "float64", requiresGrad: true });
}

/** Sets `p`'s gradient to `values` without leaving a handle behind. */
export function setGrad(p: Tensor, values: number[]): void {
  const g = tensor(values, { dtype: p.dtype });
  p.setGrad(g);
  g.dispose();
}

export function assertClose(
  actual: readonly number[],
  expected: readonly number[],
  tol = 1e-12,
  what = "values",
): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => {
    const e = expected[i] ?? NaN;
    const scale = Math.max(1, Math.abs(e));
    assert.ok(Math.abs(a - e) <= tol * scale, `${what}[${i}]: got ${a}, expected ${e} (tol ${tol})`);
  });
}

/** Runs `fn` and checks that it left no tensor alive (callers dispose what they create). */
export function noLeaks(fn: () => void): void {
  const before = memory();
  fn();
  const after = memory();
  assert.equal(after.numTensors, before.numTensors, "live tensors after the test body");
  // Native handles too: a libtorch tensor the JS side lost track of is invisible to numTensors.
  assert.equal(after.numHandles, before.numHandles, "native handles leaked");
}

/** Frees tensors made by a test. */
export function free(...ts: Tensor[]): void {
  for (const t of ts) t.dispose();
}
