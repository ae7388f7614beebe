// The wrong labels B unlearns on: every mapping relabels every sample wrongly, deterministically
// per seed; "permutation" is one derangement of the classes, "random" spreads each class over the
// other C − 1.
import { test } from "node:test";
import assert from "node:assert/strict";
import { unlearningLabels } from "../../src/defense/fit.js";
import { readCreation } from "../../src/defense/creation.js";
import { FieldReader } from "../../src/util/fields.js";

const dataset = (labels: number[], classes = 10) => ({
  labels: Int32Array.from(labels),
  classNames: Array.from({ length: classes }, String),
});
const many = (classes: number, perClass: number) =>
  dataset(
    Array.from({ length: classes * perClass }, (_, i) => i % classes),
    classes,
  );

test("shift is the paper's (y + 1) mod C", () => {
  assert.deepEqual(Array.from(unlearningLabels(dataset([0, 4, 9]), "shift", 0)), [1, 5, 0]);
});

test("permutation maps each class to one other class, the same for every sample, seeded", () => {
  const ds = many(10, 20);
  const a = unlearningLabels(ds, "permutation", 3);
  const to = new Map<number, number>();
  ds.labels.forEach((y, i) => {
    const v = a[i] as number;
    assert.notEqual(v, y, `sample ${i} of class ${y} kept its label`);
    if (to.has(y)) assert.equal(to.get(y), v, `class ${y} maps to two classes`);
    to.set(y, v);
  });
  // A permutation: ten distinct targets.
  assert.equal(new Set(to.values()).size, 10);
  assert.deepEqual(Array.from(unlearningLabels(ds, "permutation", 3)), Array.from(a));
  // Another seed, another derangement (and not the shift).
  const b = unlearningLabels(ds, "permutation", 4);
  assert.notDeepEqual(Array.from(b), Array.from(a));
  assert.notDeepEqual(Array.from(a.subarray(0, 10)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]);
});

test("random gives each sample one of the C − 1 wrong classes, spread evenly, seeded", () => {
  const ds = many(10, 900);
  const a = unlearningLabels(ds, "random", 0);
  const counts = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
  ds.labels.forEach((y, i) => {
    const v = a[i] as number;
    assert.notEqual(v, y, `sample ${i} kept its label`);
    const row = counts[y] as number[];
    row[v] = (row[v] as number) + 1;
  });
  // 900 samples per class over 9 wrong classes: 100 each in expectation; all far from 0 and 900.
  for (const [y, row] of counts.entries()) {
    for (const [v, n] of row.entries()) if (v !== y) assert.ok(n > 50 && n < 150, `class ${y} → ${v}: ${n} of 900`);
  }
  assert.deepEqual(Array.from(unlearningLabels(ds, "random", 0)), Array.from(a));
  assert.notDeepEqual(Array.from(unlearningLabels(ds, "random", 1)), Array.from(a));
});

test("an unknown mapping or a single class is refused, naming what was expected", () => {
  assert.throws(
    () => unlearningLabels(dataset([0, 1]), "rotate" as "shift", 0),
    /mapping must be one of shift, permutation, random, got "rotate"/,
  );
  assert.throws(() => unlearningLabels(dataset([0, 0], 1), "random", 0), /at least 2 classes .* got 1/);
});

test("a bundle's creation record keeps the mapping; an old record without it reads as before; a bad one is named", () => {
  const r = new FieldReader("detector.json", "E_BUNDLE_INTEGRITY");
  const unlearn = { lr: 3e-4, epochs: 1, batchSize: 128 };
  assert.deepEqual(readCreation(r, { unlearn: { ...unlearn, labels: "permutation" } }).unlearn, {
    ...unlearn,
    labels: "permutation",
  });
  assert.deepEqual(readCreation(r, { unlearn }).unlearn, unlearn);
  assert.throws(() => readCreation(r, { unlearn: { ...unlearn, labels: "rotate" } }), /creation\.unlearn\.labels/);
});
