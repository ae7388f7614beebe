// The defender-side unlearning-rate selection: the rules on hand-made canary tables, and the
// canary triggers themselves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, memory, tensor, tidy } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { defenseSplits } from "../../src/defense/splits.js";
import {
  DEFAULT_SELECTION_RULE,
  canaryAttack,
  chooseUnlearnLr,
  combinedTable,
  decideUnlearnLr,
  selectUnlearnLr,
  type CanaryRow,
} from "../../src/defense/canary.js";
import { noLeaks } from "../helpers/memory.js";

const rows = (aurocs: number[], lrs = [1e-4, 2e-4, 3e-4, 5e-4, 1e-3]): CanaryRow[] =>
  aurocs.map((auroc, i) => ({ lr: lrs[i] as number, auroc, expertCleanAccuracy: 0 }));

test("peak picks the best AUROC; near-ties go to the gentler rate, or the stronger with peak-strong", () => {
  const t = rows([0.9, 0.9995, 0.999, 0.95, 0.8]);
  assert.equal(chooseUnlearnLr([t], { pick: "peak", combine: "mean", tolerance: 0.001 }), 2e-4);
  assert.equal(chooseUnlearnLr([t], { pick: "peak-strong", combine: "mean", tolerance: 0.001 }), 3e-4);
  // A tighter tolerance leaves 3e-4 out of the tie.
  assert.equal(chooseUnlearnLr([t], { pick: "peak-strong", combine: "mean", tolerance: 0.0001 }), 2e-4);
});

test("strongest-above picks the strongest rate at or above the level, and falls back to the peak", () => {
  const t = rows([0.9, 0.99, 0.97, 0.95, 0.8]);
  assert.equal(chooseUnlearnLr([t], { pick: "strongest-above", combine: "mean", level: 0.95 }), 5e-4);
  assert.equal(chooseUnlearnLr([t], { pick: "strongest-above", combine: "mean", level: 0.98 }), 2e-4);
  // A dip does not stop the search: the strongest rate at the level counts.
  assert.equal(
    chooseUnlearnLr([rows([0.99, 0.9, 0.99, 0.5, 0.5])], { pick: "strongest-above", combine: "mean", level: 0.95 }),
    3e-4,
  );
  // Nothing reaches 0.999: the canaries are inconclusive.
  assert.equal(chooseUnlearnLr([t], { pick: "strongest-above", combine: "mean", level: 0.999 }), null);
});

test("several canaries are combined per rate by their mean or their worst AUROC", () => {
  const blend = rows([0.98, 1, 1, 1, 1]);
  const patch = rows([0.96, 0.99, 0.97, 0.9, 0.6]);
  assert.deepEqual(
    combinedTable([blend, patch], "min").map((r) => r.auroc),
    [0.96, 0.99, 0.97, 0.9, 0.6],
  );
  const mean = combinedTable([blend, patch], "mean").map((r) => r.auroc);
  [0.97, 0.995, 0.985, 0.95, 0.8].forEach((v, i) => assert.ok(Math.abs((mean[i] as number) - v) < 1e-12));
  assert.equal(chooseUnlearnLr([blend, patch], { pick: "strongest-above", combine: "min", level: 0.95 }), 3e-4);
  assert.equal(chooseUnlearnLr([blend, patch], { pick: "strongest-above", combine: "mean", level: 0.95 }), 5e-4);
  // Rates are read in increasing order whatever the table order.
  assert.equal(
    chooseUnlearnLr([[...blend].reverse(), [...patch].reverse()], {
      pick: "strongest-above",
      combine: "min",
      level: 0.95,
    }),
    3e-4,
  );
});

test("a conditional canary does not vote in the rule; its peak caps the rate (Fashion-MNIST TaCT seed 0's tables)", () => {
  const lrs = [3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3];
  const blend = { kind: "blend" as const, table: rows([0.918, 0.951, 0.99, 0.999, 0.999, 0.997, 0.994, 0.946], lrs) };
  const patch = { kind: "patch" as const, table: rows([1, 1, 1, 1, 1, 1, 1, 0.936], lrs) };
  const conditional = {
    kind: "conditional" as const,
    table: rows([0.415, 0.444, 0.53, 0.736, 0.805, 0.717, 0.759, 0.588], lrs),
  };
  assert.deepEqual(decideUnlearnLr([blend, patch], DEFAULT_SELECTION_RULE, 3e-4), {
    lr: 1e-3,
    conclusive: true,
    uncapped: 1e-3,
  });
  assert.deepEqual(decideUnlearnLr([blend, patch, conditional], DEFAULT_SELECTION_RULE, 3e-4), {
    lr: 3e-4,
    conclusive: true,
    uncapped: 1e-3,
    conditionalPeak: 3e-4,
  });
  // A cap above the rule's choice changes nothing; inconclusive canaries keep the static rate, capped too.
  const late = { ...conditional, table: rows([0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.9], lrs) };
  assert.equal(decideUnlearnLr([blend, patch, late], DEFAULT_SELECTION_RULE, 3e-4).lr, 1e-3);
  const weak = { ...blend, table: rows([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], lrs) };
  assert.deepEqual(decideUnlearnLr([weak, conditional], DEFAULT_SELECTION_RULE, 5e-4), {
    lr: 3e-4,
    conclusive: false,
    uncapped: 5e-4,
    conditionalPeak: 3e-4,
  });
  assert.deepEqual(decideUnlearnLr([weak, late], DEFAULT_SELECTION_RULE, 5e-4), {
    lr: 5e-4,
    conclusive: false,
    uncapped: 5e-4,
    conditionalPeak: 2e-3,
  });
});

test("canary tables must share their rates, and there must be one", () => {
  assert.throws(() => chooseUnlearnLr([]), /no canary measurements/);
  assert.throws(
    () => chooseUnlearnLr([rows([0.9, 0.9]), rows([0.9, 0.9], [1e-4, 3e-4])]),
    /do not share their rates \(row 1: 0.0002 vs 0.0003\)/,
  );
});

test("the patch canary is a 3x3 checkerboard in the top-left corner; the blend canary changes every pixel", () =>
  noLeaks(() =>
    tidy(() => {
      const spec = { numClasses: 10, height: 28, width: 28, channels: 1 };
      const grey = tensor(new Float32Array(28 * 28).fill(0.5), { shape: [1, 1, 28, 28] });
      const patch = canaryAttack("patch", 0, spec).applyTrigger(grey).data() as Float32Array;
      const changed: number[] = [];
      patch.forEach((v, k) => {
        if (v !== 0.5) changed.push(k);
      });
      assert.deepEqual(changed, [29, 30, 31, 57, 58, 59, 85, 86, 87]);
      const blend = canaryAttack("blend", 0, spec).applyTrigger(grey).data() as Float32Array;
      assert.ok(blend.filter((v) => v !== 0.5).length > 0.9 * 28 * 28);
      // Seeded: the same seed gives the same canary, another seed another pattern.
      assert.deepEqual(canaryAttack("blend", 0, spec).params, canaryAttack("blend", 0, spec).params);
      assert.notDeepEqual(canaryAttack("blend", 1, spec).params, canaryAttack("blend", 0, spec).params);
    }),
  ));

test("the conditional canary: the patch on half of one source class, as many covers, and only source images in its test set", async () => {
  const testSet = await loadDataset("fashion-mnist", { split: "test" });
  const plantOn = subset(testSet, defenseSplits(testSet.count, { seed: 2, reserved: 600, calibration: 300 }).reserved);
  const spec = { numClasses: 10, height: 28, width: 28, channels: 1 };
  const count = (c: number) => plantOn.labels.filter((y) => y === c).length;
  const attack = canaryAttack("conditional", 3, spec, plantOn);
  const p = attack.params;
  const target = p.targetClass as number;
  const source = p.sourceClass as number;
  const covers = String(p.coverClasses).split(",").map(Number);
  assert.equal(attack.name, "source-specific-badnet");
  assert.equal(covers.length, 2);
  assert.equal(new Set([target, source, ...covers]).size, 4, "target, source and covers are four different classes");
  const poisoned = await attack.poison(plantOn, 9);
  const half = Math.floor(count(source) / 2);
  assert.equal(poisoned.poisonIndices.length, half);
  assert.equal(poisoned.coverIndices.length, half);
  for (const i of poisoned.poisonIndices) {
    assert.equal(plantOn.labels[i], source);
    assert.equal(poisoned.labels[i], target);
  }
  for (const i of poisoned.coverIndices) {
    assert.ok(covers.includes(plantOn.labels[i] as number));
    assert.equal(poisoned.labels[i], plantOn.labels[i], "covers keep their label");
  }
  // The trigger is the patch canary's checkerboard, not TaCT's watermark.
  const k = poisoned.poisonIndices[0] as number;
  const size = 28 * 28;
  const before = plantOn.images.subarray(k * size, (k + 1) * size);
  const after = poisoned.dataset.images.subarray(k * size, (k + 1) * size);
  const changed = [...after.keys()].filter((j) => after[j] !== before[j]);
  assert.ok(
    changed.length > 0 && changed.every((j) => [29, 30, 31, 57, 58, 59, 85, 86, 87].includes(j)),
    `changed pixels ${changed.join(",")}`,
  );
  const triggered = attack.poisonedTestSet(testSet);
  assert.equal(
    triggered.dataset.count,
    testSet.labels.filter((y) => y === source).length,
    "only source-class images count",
  );
  // Seeded; and it refuses a set too small to plant it.
  assert.deepEqual(canaryAttack("conditional", 3, spec, plantOn).params, p);
  assert.throws(() => canaryAttack("conditional", 3, spec), /needs the images it is planted on/);
  assert.throws(() => canaryAttack("conditional", 3, { ...spec, numClasses: 2 }, plantOn), /at least 3 classes/);
});

test("on real images, a planted patch canary takes and B is measured at every candidate rate, without leaks", async () => {
  const before = memory().numTensors;
  const handlesBefore = memory().numHandles;
  const testSet = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(testSet.count, { seed: 4, reserved: 768, calibration: 300 });
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
  const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
  manualSeed(5);
  const model = createModel("compact-cnn", spec);
  try {
    const r = await selectUnlearnLr(
      model,
      { spec, preprocessing },
      subset(testSet, s.reserved),
      subset(testSet, s.calibration),
      {
        unlearn: { lr: 0, epochs: 1, batchSize: 128 },
        finetune: { lr: 0.01, gamma: 0.1, epochs: 1, batchSize: 64, milestones: [], momentum: 0.9, weightDecay: 1e-4 },
        augment: {},
        seed: 0,
        candidates: [1e-4, 1e-3],
        kinds: ["patch"],
        log: () => {},
      },
    );
    const c = r.canaries[0];
    assert.ok(c && r.canaries.length === 1);
    // Planted from scratch on 768 images, a 3x3 patch still takes: the planting is real.
    assert.ok(c.attackSuccessRate > 0.8, `canary ASR ${c.attackSuccessRate}`);
    assert.deepEqual(
      c.table.map((t) => t.lr),
      [1e-4, 1e-3],
    );
    for (const t of c.table)
      assert.ok(t.auroc >= 0 && t.auroc <= 1 && t.expertCleanAccuracy >= 0 && t.expertCleanAccuracy <= 1);
    // The default rule worked out by hand from the measured table (not by calling the rule's own
    // code again): the strongest rate whose AUROC is at least 0.98, or — when none is — the given
    // static rate (0 here), marked inconclusive.
    assert.deepEqual(r.rule, { pick: "strongest-above", combine: "min", level: 0.98 });
    const passing = c.table.filter((t) => t.auroc >= 0.98).map((t) => t.lr);
    assert.equal(r.conclusive, passing.length > 0);
    assert.equal(r.lr, passing.length > 0 ? Math.max(...passing) : 0);
  } finally {
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
  assert.equal(memory().numHandles, handlesBefore);
});
