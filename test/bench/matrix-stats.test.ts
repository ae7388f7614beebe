// The evaluation matrix's statistics: mean ± sample std, quantiles, the weighted (bootstrap)
// AUROC against the plain one, and the two-level bootstrap interval on cases whose replicate
// distribution is known exactly.
import { test } from "node:test";
import assert from "node:assert/strict";

import { auroc } from "../../src/defense/metrics.js";
import { bootstrapMeanAuroc, drawCounts, meanStd, quantileSorted, RankedScores } from "../../bench/matrix/stats.js";
import { Rng } from "../../src/util/rng.js";

void test("meanStd: mean and sample (n − 1) standard deviation; one value has std 0; none is NaN", () => {
  const s = meanStd([1, 2, 3, 4]);
  assert.equal(s.mean, 2.5);
  assert.ok(Math.abs(s.std - Math.sqrt(5 / 3)) < 1e-12);
  assert.equal(s.n, 4);
  assert.deepEqual(meanStd([0.9]), { mean: 0.9, std: 0, n: 1 });
  assert.ok(Number.isNaN(meanStd([]).mean));
  // Three seeds' AUROCs as the tables show them.
  const a = meanStd([0.998, 0.9996, 0.9984]);
  assert.ok(Math.abs(a.mean - 0.99867) < 1e-5);
  assert.ok(Math.abs(a.std - 0.000833) < 1e-6);
});

void test("quantileSorted: linear interpolation between ranks; q outside [0, 1] is refused", () => {
  const xs = [10, 20, 30, 40, 50];
  assert.equal(quantileSorted(xs, 0), 10);
  assert.equal(quantileSorted(xs, 1), 50);
  assert.equal(quantileSorted(xs, 0.5), 30);
  assert.equal(quantileSorted(xs, 0.125), 15);
  assert.equal(quantileSorted([7], 0.3), 7);
  assert.throws(() => quantileSorted(xs, 1.5), /q must be in \[0, 1\], got 1.5/);
});

void test("RankedScores: unit weights give metrics.ts's AUROC, ties included; integer weights equal repeated scores", () => {
  const rng = new Rng(5);
  // Scores on a coarse grid, so that many tie across the two sets.
  const pos = Array.from({ length: 300 }, () => Math.round(rng.uniform(0, 10)) / 2);
  const neg = Array.from({ length: 400 }, () => Math.round(rng.uniform(-4, 6)) / 2);
  const r = new RankedScores(pos, neg);
  const plain = auroc(pos, neg);
  assert.ok(plain > 0.6 && plain < 0.95, `a non-trivial case, got ${plain}`);
  assert.ok(Math.abs(r.auroc() - plain) < 1e-12);
  const pw = drawCounts(pos.length, rng);
  const nw = drawCounts(neg.length, rng);
  const repeated = (xs: number[], w: Uint32Array) => xs.flatMap((x, i) => new Array<number>(w[i] as number).fill(x));
  assert.ok(Math.abs(r.weightedAuroc(pw, nw) - auroc(repeated(pos, pw), repeated(neg, nw))) < 1e-12);
  assert.equal(new RankedScores([3, 4], [1, 2]).auroc(), 1);
  assert.equal(new RankedScores([1], [1]).auroc(), 0.5);
  assert.throws(() => new RankedScores([Number.NaN], [0]), /positive 0 is NaN/);
});

void test("drawCounts: n draws in all, from a seeded generator", () => {
  const a = drawCounts(50, new Rng(1));
  assert.equal(
    a.reduce((s, x) => s + x, 0),
    50,
  );
  assert.deepEqual(a, drawCounts(50, new Rng(1)));
  assert.notDeepEqual(a, drawCounts(50, new Rng(2)));
});

void test("bootstrapMeanAuroc: perfectly separated seeds give [1, 1]", () => {
  const seeds = [new RankedScores([2, 3, 4], [0, 1]), new RankedScores([5, 6], [1, 2, 3])];
  const ci = bootstrapMeanAuroc(seeds, { reps: 200, seed: 0 });
  assert.deepEqual(ci, { low: 1, high: 1, level: 0.95, reps: 200 });
});

void test("bootstrapMeanAuroc: input resampling — replicates 0, ½, 1 with probabilities ¼, ½, ¼", () => {
  // pos {0.6, 0.4} vs neg {0.5}: both draws 0.6 → 1, both 0.4 → 0, one of each → ½.
  const one = [new RankedScores([0.6, 0.4], [0.5])];
  assert.deepEqual(bootstrapMeanAuroc(one, { reps: 4000, seed: 1 }), { low: 0, high: 1, level: 0.95, reps: 4000 });
  // The middle 40% (quantiles 0.3 and 0.7) lies inside the ½ mass (0.25 .. 0.75).
  const mid = bootstrapMeanAuroc(one, { reps: 4000, seed: 1, level: 0.4 });
  assert.equal(mid.low, 0.5);
  assert.equal(mid.high, 0.5);
});

void test("bootstrapMeanAuroc: seed resampling — one perfect and one inverted model give the same ¼, ½, ¼ law", () => {
  const n = 40;
  const up = Array.from({ length: n }, (_, i) => i);
  const perfect = new RankedScores(
    up.map((i) => 100 + i),
    up,
  );
  const inverted = new RankedScores(
    up,
    up.map((i) => 100 + i),
  );
  const ci = bootstrapMeanAuroc([perfect, inverted], { reps: 4000, seed: 2, level: 0.4 });
  assert.deepEqual([ci.low, ci.high], [0.5, 0.5]);
  const wide = bootstrapMeanAuroc([perfect, inverted], { reps: 4000, seed: 2 });
  assert.deepEqual([wide.low, wide.high], [0, 1]);
  // Same seed, same interval; the arguments are checked.
  assert.deepEqual(
    bootstrapMeanAuroc([perfect, inverted], { reps: 300, seed: 9 }),
    bootstrapMeanAuroc([perfect, inverted], { reps: 300, seed: 9 }),
  );
  assert.throws(() => bootstrapMeanAuroc([perfect], { reps: 0 }), /reps must be a positive integer, got 0/);
  assert.throws(() => bootstrapMeanAuroc([perfect], { level: 1 }), /level must be in \(0, 1\), got 1/);
  assert.ok(Number.isNaN(bootstrapMeanAuroc([]).low));
});
