// The defender-side unlearning-rate selection: the rules on hand-made canary tables, and the
// canary triggers themselves.
import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, memory, tensor, tidy } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { canaryAttack, chooseUnlearnLr, combinedTable, selectUnlearnLr, type CanaryRow } from "../../src/defense/canary.js";
import { noLeaks } from "../helpers/memory.js";

const rows = (aurocs: number[], lrs = [1e-4, 2e-4, 3e-4, 5e-4, 1e-3]): CanaryRow[] => aurocs.map((auroc, i) => ({ lr: lrs[i] as number, auroc, expertCleanAccuracy: 0 }));

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
  assert.equal(chooseUnlearnLr([rows([0.99, 0.9, 0.99, 0.5, 0.5])], { pick: "strongest-above", combine: "mean", level: 0.95 }), 3e-4);
  // Nothing reaches 0.999: the canaries are inconclusive.
  assert.equal(chooseUnlearnLr([t], { pick: "strongest-above", combine: "mean", level: 0.999 }), null);
});

test("several canaries are combined per rate by their mean or their worst AUROC", () => {
  const blend = rows([0.98, 1, 1, 1, 1]);
  const patch = rows([0.96, 0.99, 0.97, 0.9, 0.6]);
  assert.deepEqual(combinedTable([blend, patch], "min").map((r) => r.auroc), [0.96, 0.99, 0.97, 0.9, 0.6]);
  const mean = combinedTable([blend, patch], "mean").map((r) => r.auroc);
  [0.97, 0.995, 0.985, 0.95, 0.8].forEach((v, i) => assert.ok(Math.abs((mean[i] as number) - v) < 1e-12));
  assert.equal(chooseUnlearnLr([blend, patch], { pick: "strongest-above", combine: "min", level: 0.95 }), 3e-4);
  assert.equal(chooseUnlearnLr([blend, patch], { pick: "strongest-above", combine: "mean", level: 0.95 }), 5e-4);
  // Rates are read in increasing order whatever the table order.
  assert.equal(chooseUnlearnLr([[...blend].reverse(), [...patch].reverse()], { pick: "strongest-above", combine: "min", level: 0.95 }), 3e-4);
});

test("canary tables must share their rates, and there must be one", () => {
  assert.throws(() => chooseUnlearnLr([]), /no canary measurements/);
  assert.throws(() => chooseUnlearnLr([rows([0.9, 0.9]), rows([0.9, 0.9], [1e-4, 3e-4])]), /do not share their rates \(row 1: 0.0002 vs 0.0003\)/);
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
    const r = await selectUnlearnLr(model, { spec, preprocessing }, subset(testSet, s.reserved), subset(testSet, s.calibration), {
      unlearn: { lr: 0, epochs: 1, batchSize: 128 },
      finetune: { lr: 0.01, gamma: 0.1, epochs: 1, batchSize: 64, milestones: [], momentum: 0.9, weightDecay: 1e-4 },
      augment: {},
      seed: 0,
      candidates: [1e-4, 1e-3],
      kinds: ["patch"],
      log: () => {},
    });
    const c = r.canaries[0];
    assert.ok(c && r.canaries.length === 1);
    // Planted from scratch on 768 images, a 3x3 patch still takes: the planting is real.
    assert.ok(c.attackSuccessRate > 0.8, `canary ASR ${c.attackSuccessRate}`);
    assert.deepEqual(c.table.map((t) => t.lr), [1e-4, 1e-3]);
    for (const t of c.table) assert.ok(t.auroc >= 0 && t.auroc <= 1 && t.expertCleanAccuracy >= 0 && t.expertCleanAccuracy <= 1);
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
