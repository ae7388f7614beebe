import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../../src/util/rng.js";

test("Rng is deterministic, uniform enough and permutes correctly", () => {
  const a = new Rng(5);
  const b = new Rng(5);
  const xs = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(
    Array.from({ length: 1000 }, () => b.next()),
    xs,
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  const p = new Rng(9).permutation(50);
  assert.deepEqual(
    [...p].sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.notDeepEqual(Rng.derive(1, 0).permutation(20), Rng.derive(1, 1).permutation(20));
  const ints = Array.from({ length: 500 }, () => a.int(3, 7));
  assert.deepEqual([...new Set(ints)].sort(), [3, 4, 5, 6]);
});

test("Rng.normal has mean 0 and variance 1, finite, and is deterministic", () => {
  const a = new Rng(11);
  const xs = Array.from({ length: 20000 }, () => a.normal());
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
  assert.ok(xs.every(Number.isFinite));
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
  // About 68% within one standard deviation.
  const within = xs.filter((x) => Math.abs(x) < 1).length / xs.length;
  assert.ok(Math.abs(within - 0.6827) < 0.02, `share within 1 sd ${within}`);
  const b = new Rng(11);
  assert.deepEqual(
    Array.from({ length: 5 }, () => b.normal()),
    xs.slice(0, 5),
  );
});
