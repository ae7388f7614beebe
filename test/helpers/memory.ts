// Every engine test must leave the live-tensor count where it found it.
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";

export function noLeaks<T>(fn: () => T): T {
  const before = memory().numTensors;
  const r = fn();
  assert.equal(memory().numTensors, before, `tensor leak: ${memory().numTensors - before} tensor(s) not disposed`);
  return r;
}
