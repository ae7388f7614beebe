// A split limit on a test set stored class by class (an image folder): the start of the split
// holds the first classes only, so a limit takes a seeded random subset that covers the classes,
// the same for every call with the same seed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { limited } from "../../src/jobs/compare.js";
import { defenseSplits } from "../../src/defense/splits.js";

test("a limit samples the split at random (seeded), not its first N", () => {
  // 10 classes of 1,000 images each, stored in class order, as CIFAR-10's image folder is.
  const classOf = (i: number): number => Math.floor(i / 1000);
  const splits = defenseSplits(10000, { seed: 0, reserved: 2500, calibration: 2000 });
  const first = splits.evaluation.subarray(0, 200);
  assert.ok(new Set([...first].map(classOf)).size <= 2, "the first 200 come from one or two classes");

  const sample = limited(splits.evaluation, 200, { seed: 0 });
  assert.equal(sample.length, 200);
  const classes = new Set([...sample].map(classOf));
  assert.equal(classes.size, 10, "a sample of 200 covers every class");
  const inSplit = new Set(splits.evaluation);
  assert.ok(
    [...sample].every((i) => inSplit.has(i)),
    "only indices of the split",
  );
  assert.equal(new Set(sample).size, 200, "no index twice");
  assert.deepEqual(
    [...sample],
    [...sample].sort((a, b) => a - b),
    "sorted",
  );
  assert.deepEqual([...limited(splits.evaluation, 200, { seed: 0 })], [...sample], "same seed, same subset");
  assert.notDeepEqual([...limited(splits.evaluation, 200, { seed: 1 })], [...sample], "another seed, another subset");

  assert.equal(limited(splits.evaluation, undefined), splits.evaluation);
  assert.equal(limited(splits.evaluation, 0), splits.evaluation);
  assert.equal(limited(splits.evaluation, 1e6).length, splits.evaluation.length);
  assert.throws(() => limited(splits.evaluation, -1), /a split limit must be a non-negative integer, got -1/);
});
