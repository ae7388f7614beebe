// M''s finetuning-rate rule (src/defense/auxiliary-rate.ts): the hand-made cases of the rule, and
// the selection on real images, where a rate far too strong must lose.
import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, memory } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { fit } from "../../src/train/trainer.js";
import { DEFAULT_CONFIG } from "../../src/train/config.js";
import { evaluateModel } from "../../src/train/evaluate.js";
import { chooseFinetuneLr, selectFinetuneLr } from "../../src/defense/auxiliary-rate.js";

test("the rule keeps the strongest rate within the tolerance of M's accuracy, else the gentlest", () => {
  const table = [
    { lr: 0.05, calibrationAccuracy: 0.885 },
    { lr: 0.01, calibrationAccuracy: 0.905 },
    { lr: 0.1, calibrationAccuracy: 0.85 },
    { lr: 0.02, calibrationAccuracy: 0.9 },
  ];
  // M at 90%: within 1.5 points are 0.01, 0.02 and 0.05 (88.5% is exactly at the edge).
  assert.equal(chooseFinetuneLr(table, 0.9, 0.015), 0.05);
  assert.equal(chooseFinetuneLr(table, 0.9, 0.01), 0.02);
  assert.equal(chooseFinetuneLr(table, 0.9, 0.06), 0.1);
  // Not monotone: a strong rate that happens to be accurate is kept even if a gentler one is not.
  assert.equal(chooseFinetuneLr([{ lr: 0.01, calibrationAccuracy: 0.8 }, { lr: 0.1, calibrationAccuracy: 0.91 }], 0.9, 0.015), 0.1);
  // None within the tolerance: the gentlest.
  assert.equal(chooseFinetuneLr(table, 0.95, 0.015), 0.01);
  assert.throws(() => chooseFinetuneLr([], 0.9), /no candidate rates/);
  assert.throws(() => chooseFinetuneLr(table, 0.9, -0.1), /tolerance must be in \[0, 1\), got -0.1/);
});

test("on real images, M' is finetuned at every candidate; a rate that wrecks it loses; the kept M' is returned", async () => {
  const before = memory().numTensors;
  const handlesBefore = memory().numHandles;
  const testSet = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(testSet.count, { seed: 3, reserved: 512, calibration: 400 });
  const reserved = subset(testSet, s.reserved);
  const calibration = subset(testSet, s.calibration);
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
  const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
  manualSeed(7);
  const model = createModel("compact-cnn", spec);
  try {
    // A model that has learned something, so that M's accuracy is a real reference.
    await fit(model, subset(testSet, s.evaluation.subarray(0, 1500)), { ...DEFAULT_CONFIG, epochs: 2, batchSize: 64, optimizer: "sgd", lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0, schedule: "none", augment: {}, seed: 1 }, { normalization: preprocessing, silent: true });
    const lines: string[] = [];
    const { selection, auxiliary } = await selectFinetuneLr(model, { spec, preprocessing }, reserved, calibration, {
      finetune: { lr: 0.01, gamma: 0.1, epochs: 1, batchSize: 64, milestones: [], momentum: 0.9, weightDecay: 0 },
      augment: {},
      seed: 0,
      candidates: [3, 0.01],
      log: (l) => lines.push(l),
    });
    try {
      const norm = { normalization: preprocessing };
      assert.equal(selection.modelAccuracy, evaluateModel(model, calibration, norm).accuracy);
      assert.ok(selection.modelAccuracy > 0.5, `M learned the task: ${selection.modelAccuracy}`);
      assert.deepEqual(selection.table.map((r) => r.lr), [0.01, 3]);
      const gentle = selection.table[0] as { calibrationAccuracy: number };
      const wild = selection.table[1] as { calibrationAccuracy: number };
      // SGD at rate 3 wrecks M' (chance is 10%); at 0.01 it keeps M's accuracy.
      assert.ok(wild.calibrationAccuracy < selection.modelAccuracy - 0.2, `rate 3: ${wild.calibrationAccuracy}`);
      assert.ok(gentle.calibrationAccuracy > selection.modelAccuracy - 0.015, `rate 0.01: ${gentle.calibrationAccuracy}`);
      assert.equal(selection.lr, 0.01);
      assert.equal(selection.tolerance, 0.04);
      // The returned M' is the one measured at the kept rate.
      assert.equal(evaluateModel(auxiliary, calibration, norm).accuracy, gentle.calibrationAccuracy);
      assert.equal(lines.length, 2);
    } finally {
      auxiliary.dispose();
    }
    await assert.rejects(selectFinetuneLr(model, { spec, preprocessing }, reserved, calibration, {
      finetune: { lr: 0.01, gamma: 0.1, epochs: 1, batchSize: 64, milestones: [], momentum: 0.9, weightDecay: 0 }, augment: {}, seed: 0, candidates: [0.01, -1],
    }), /candidates must be positive numbers, got \[-1,0.01\]/);
  } finally {
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
  assert.equal(memory().numHandles, handlesBefore);
});
