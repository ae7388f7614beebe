// Poisoning training sets and building poisoned test sets: counts, label rules, covers,
// determinism and the attack-success-rate conventions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tidy } from "../../src/engine/index.js";
import { imagesToTensor, tensorToImages, gatherImages } from "../../src/data/batch.js";
import { attackSuccessRate, createAttack, type PoisonedTrainingSet } from "../../src/attacks/index.js";
import { noLeaks } from "../helpers/memory.js";
import { changedImages, generated, noLeaksAsync, specOf } from "./fixtures.js";

// 1,000 16x16 RGB images, 100 per class (label i mod 10).
const train = generated(1000, 16, 16, 3);
const test_ = generated(200, 16, 16, 3, 10, "test");
const spec = specOf(train);
const pristine = Uint8Array.from(train.images);

interface Case {
  name: string;
  params: Record<string, number>;
  poison: number;
  cover: number;
  /** Which classes poisoned samples come from. */
  poisonFrom: (y: number) => boolean;
  coverFrom: (y: number) => boolean;
  label: (y: number) => number;
}

const notTarget = (y: number) => y !== 0;
const anyClass = () => true;
const toTarget = () => 0;
const CASES: Case[] = [
  {
    name: "badnet",
    params: { rate: 0.05 },
    poison: 50,
    cover: 0,
    poisonFrom: notTarget,
    coverFrom: anyClass,
    label: toTarget,
  },
  {
    name: "blend",
    params: { rate: 0.05 },
    poison: 50,
    cover: 0,
    poisonFrom: notTarget,
    coverFrom: anyClass,
    label: toTarget,
  },
  {
    name: "trojan",
    params: { rate: 0.05 },
    poison: 50,
    cover: 0,
    poisonFrom: notTarget,
    coverFrom: anyClass,
    label: toTarget,
  },
  {
    name: "sig",
    params: { rate: 0.05 },
    poison: 50,
    cover: 0,
    poisonFrom: (y) => y === 0,
    coverFrom: anyClass,
    label: (y) => y,
  },
  { name: "wanet", params: {}, poison: 50, cover: 100, poisonFrom: notTarget, coverFrom: anyClass, label: toTarget },
  { name: "bpp", params: {}, poison: 200, cover: 200, poisonFrom: notTarget, coverFrom: anyClass, label: toTarget },
  {
    name: "adaptive-blend",
    params: { rate: 0.02, coverRate: 0.03 },
    poison: 20,
    cover: 30,
    poisonFrom: notTarget,
    coverFrom: anyClass,
    label: toTarget,
  },
  {
    name: "adaptive-patch",
    params: { rate: 0.02, coverRate: 0.04 },
    poison: 20,
    cover: 40,
    poisonFrom: notTarget,
    coverFrom: anyClass,
    label: toTarget,
  },
  {
    name: "badnet-all-to-all",
    params: { rate: 0.05 },
    poison: 50,
    cover: 0,
    poisonFrom: anyClass,
    coverFrom: anyClass,
    label: (y) => (y + 1) % 10,
  },
  {
    name: "tact",
    params: { rate: 0.02, coverRate: 0.03 },
    poison: 20,
    cover: 30,
    poisonFrom: (y) => y === 1,
    coverFrom: (y) => y === 5 || y === 7,
    label: toTarget,
  },
];

function assertSorted(a: Int32Array): void {
  for (let i = 1; i < a.length; i++)
    assert.ok((a[i - 1] as number) < (a[i] as number), "indices must be sorted and distinct");
}

for (const c of CASES) {
  test(`${c.name}: ${c.poison} poisoned and ${c.cover} cover samples from the right classes, with the right labels`, () =>
    noLeaksAsync(async () => {
      const attack = createAttack(c.name, c.params, spec);
      const p: PoisonedTrainingSet = await attack.poison(train, 7);
      assert.deepEqual(train.images, pristine, "the input training set must not change");
      assert.equal(p.poisonIndices.length, c.poison);
      assert.equal(p.coverIndices.length, c.cover);
      assertSorted(p.poisonIndices);
      assertSorted(p.coverIndices);
      const poisonSet = new Set(p.poisonIndices);
      assert.ok(
        p.coverIndices.every((i) => !poisonSet.has(i)),
        "cover and poison samples are disjoint",
      );
      for (const i of p.poisonIndices) {
        const y = train.labels[i] as number;
        assert.ok(c.poisonFrom(y), `poisoned sample ${i} has class ${y}`);
        assert.equal(p.labels[i], c.label(y));
      }
      for (const i of p.coverIndices) {
        assert.ok(c.coverFrom(train.labels[i] as number), `cover sample ${i} has class ${train.labels[i]}`);
        assert.equal(p.labels[i], train.labels[i], "cover samples keep their label");
      }
      const altered = new Set([...p.poisonIndices, ...p.coverIndices]);
      for (let i = 0; i < train.count; i++) if (!altered.has(i)) assert.equal(p.labels[i], train.labels[i]);
      assert.equal(p.dataset.labels, p.labels, "the dataset trains on the poisoned labels");
      assert.deepEqual(p.trueLabels, train.labels);
      // Exactly the poisoned and cover images change.
      assert.deepEqual(
        changedImages(train, p.dataset),
        [...altered].sort((a, b) => a - b),
      );
      // Poisoned images carry the test-time trigger where the attack uses the same trigger in training.
      if (!["adaptive-blend", "adaptive-patch"].includes(c.name)) {
        const rows = p.poisonIndices.subarray(0, 5);
        const expected = tidy(() =>
          tensorToImages(attack.applyTrigger(imagesToTensor(gatherImages(train, rows), rows.length, 16, 16, 3))),
        );
        assert.deepEqual(gatherImages(p.dataset, rows), expected);
      }
      // Same seed, same result; another seed, another choice.
      const again = await attack.poison(train, 7);
      assert.deepEqual(again.poisonIndices, p.poisonIndices);
      assert.deepEqual(again.coverIndices, p.coverIndices);
      assert.deepEqual(again.dataset.images, p.dataset.images);
      const other = await attack.poison(train, 8);
      assert.notDeepEqual(other.poisonIndices, p.poisonIndices);
    }));
}

test("the rate is a fraction of the whole training set, rounded (0.003 of 50,000 is 150, not 150.00000000000003)", () =>
  noLeaksAsync(async () => {
    const big = generated(5000, 12, 12, 1);
    const p = await createAttack("badnet", { rate: 0.03 }, specOf(big)).poison(big, 0);
    assert.equal(p.poisonIndices.length, 150);
    const none = await createAttack("badnet", { rate: 0 }, specOf(big)).poison(big, 0);
    assert.equal(none.poisonIndices.length, 0);
    assert.deepEqual(none.dataset.images, big.images);
  }));

test("asking for more poison than the allowed classes hold is an error naming the rate and the class", async () => {
  await assert.rejects(
    createAttack("sig", { rate: 0.5 }, spec).poison(train, 0),
    /rate 0\.5 asks for 500 poisoned samples of the target class 0, but the training set has only 100/,
  );
  await assert.rejects(
    createAttack("badnet", { rate: 0.95 }, spec).poison(train, 0),
    /only 900 training images are outside the target class 0/,
  );
  await assert.rejects(
    createAttack("tact", { coverRate: 0.3 }, spec).poison(train, 0),
    /coverRate 0\.3 asks for 300 cover samples but only 200 training images of the cover classes 5, 7/,
  );
  await assert.rejects(
    createAttack("badnet", {}, spec).poison(generated(10, 8, 8, 3), 0),
    /built for 16x16x3 images, the dataset generated\/train has 8x8x3/,
  );
  await assert.rejects(createAttack("badnet", {}, spec).poison(train, 1.5), /seed must be an integer/);
});

test("all-to-one poisoned test sets hold every non-target image, triggered, labelled with the target", () =>
  noLeaks(() => {
    const attack = createAttack("badnet", {}, spec);
    const t = attack.poisonedTestSet(test_);
    assert.equal(t.dataset.count, 180);
    assert.deepEqual(
      Array.from(t.sourceIndices),
      Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 10 !== 0),
    );
    assert.ok(t.targetLabels.every((y) => y === 0));
    assert.equal(t.dataset.labels, t.targetLabels);
    assert.deepEqual(
      Array.from(t.trueLabels),
      Array.from(t.sourceIndices, (i) => i % 10),
    );
    const expected = tidy(() =>
      tensorToImages(attack.applyTrigger(imagesToTensor(gatherImages(test_, t.sourceIndices), 180, 16, 16, 3))),
    );
    assert.deepEqual(t.dataset.images, expected);
    const t3 = createAttack("blend", { targetClass: 3 }, spec).poisonedTestSet(test_);
    assert.ok(t3.trueLabels.every((y) => y !== 3) && t3.targetLabels.every((y) => y === 3));
  }));

test("all-to-all test sets hold every image with target (y + 1) mod C; TaCT's only the source class", () =>
  noLeaks(() => {
    const all = createAttack("badnet-all-to-all", {}, spec).poisonedTestSet(test_);
    assert.equal(all.dataset.count, 200);
    assert.deepEqual(
      Array.from(all.targetLabels),
      Array.from(all.trueLabels, (y) => (y + 1) % 10),
    );
    const tact = createAttack("tact", {}, spec).poisonedTestSet(test_);
    assert.equal(tact.dataset.count, 20);
    assert.ok(tact.trueLabels.every((y) => y === 1) && tact.targetLabels.every((y) => y === 0));
    const tact2 = createAttack("tact", { sourceClass: 4, targetClass: 2, coverClasses: "3" }, spec).poisonedTestSet(
      test_,
    );
    assert.ok(tact2.trueLabels.every((y) => y === 4) && tact2.targetLabels.every((y) => y === 2));
  }));

test("attackSuccessRate counts predictions equal to the target labels", () => {
  const set = { targetLabels: Int32Array.from([0, 0, 3, 1]) };
  assert.equal(attackSuccessRate(Int32Array.from([0, 0, 3, 1]), set), 1);
  assert.equal(attackSuccessRate(Int32Array.from([0, 5, 3, 0]), set), 0.5);
  assert.equal(attackSuccessRate([], { targetLabels: new Int32Array(0) }), 0);
  assert.throws(() => attackSuccessRate([0], set), /1 predictions for 4 poisoned test images/);
});
