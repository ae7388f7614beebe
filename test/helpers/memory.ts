// Every engine test must leave the live-tensor count where it found it.
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";

/**
 * Runs fn and asserts that both counts are back where they were: JS tensors (a missing dispose or a
 * stray keep()) and native handles (a libtorch tensor the JS side lost track of, which the JS
 * count cannot see).
 */
export function noLeaks<T>(fn: () => T): T {
  const before = memory();
  const r = fn();
  const after = memory();
  assert.equal(
    after.numTensors,
    before.numTensors,
    `tensor leak: ${after.numTensors - before.numTensors} tensor(s) not disposed`,
  );
  assert.equal(
    after.numHandles,
    before.numHandles,
    `native leak: ${after.numHandles - before.numHandles} libtorch handle(s) not released`,
  );
  return r;
}
