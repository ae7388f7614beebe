import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.js";

test("Rng is deterministic, uniform enough and permutes correctly", () => {
  const a = new Rng(5);
  const b = new Rng(5);
  const xs = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(Array.from({ length: 1000 }, () => b.next()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  const p = new Rng(9).permutation(50);
  assert.deepEqual([...p].sort((x, y) => x - y), Array.from({ length: 50 }, (_, i) => i));
  assert.notDeepEqual(Rng.derive(1, 0).permutation(20), Rng.derive(1, 1).permutation(20));
  const ints = Array.from({ length: 500 }, () => a.int(3, 7));
  assert.deepEqual([...new Set(ints)].sort(), [3, 4, 5, 6]);
});
