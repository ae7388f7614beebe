// B unlearned until forgotten (src/defense/expert-extraction.ts), on real images: it stops as soon
// as its held-out accuracy reaches the level, with the rate still far below its cap, and frees
// everything it made.
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
import { extractExpertUntilForgotten } from "../../src/defense/expert-extraction.js";

test("B unlearns until its monitor accuracy is at most the level, and no further", async () => {
  const before = memory().numTensors;
  const testSet = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(testSet.count, { seed: 5, reserved: 768, calibration: 300 });
  const reserved = subset(testSet, s.reserved);
  const monitor = subset(testSet, s.calibration);
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
  const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
  manualSeed(11);
  const model = createModel("compact-cnn", spec);
  try {
    await fit(
      model,
      subset(testSet, s.evaluation.subarray(0, 1500)),
      {
        ...DEFAULT_CONFIG,
        epochs: 2,
        batchSize: 64,
        optimizer: "sgd",
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weightDecay: 0,
        schedule: "none",
        augment: {},
        seed: 1,
      },
      { normalization: preprocessing, silent: true },
    );
    const unlearn = {
      startLr: 1e-5,
      growthPerEpoch: 10,
      maxLr: 1e-2,
      maxEpochs: 6,
      batchSize: 128,
      forgetAccuracy: 0.2,
      checkEvery: 1,
    };
    const { expert, trace } = await extractExpertUntilForgotten(model, spec, reserved, monitor, {
      unlearn,
      augment: {},
      normalization: preprocessing,
      seed: 0,
      silent: true,
    });
    try {
      const norm = { normalization: preprocessing };
      assert.ok(trace.modelAccuracy > 0.6, `M learned the task: ${trace.modelAccuracy}`);
      assert.equal(trace.modelAccuracy, evaluateModel(model, monitor, norm).accuracy);
      assert.equal(trace.forgotten, true);
      assert.ok(trace.monitorAccuracy <= 0.2, `B forgot: ${trace.monitorAccuracy}`);
      assert.equal(
        evaluateModel(expert, monitor, norm).accuracy,
        trace.monitorAccuracy,
        "B is returned as it was when it stopped",
      );
      // Stopped on the signal, well before the cap of six passes (6 steps each).
      assert.ok(trace.steps < 36, `steps ${trace.steps}`);
      assert.ok(trace.finalLr < unlearn.maxLr && trace.finalLr >= unlearn.startLr, `rate ${trace.finalLr}`);
    } finally {
      expert.dispose();
    }
    // A level nothing reaches: it runs out of passes and says so.
    const capped = await extractExpertUntilForgotten(model, spec, reserved, monitor, {
      unlearn: { ...unlearn, maxLr: 1e-5, maxEpochs: 1, forgetAccuracy: 0 },
      augment: {},
      normalization: preprocessing,
      seed: 0,
      silent: true,
    });
    capped.expert.dispose();
    assert.deepEqual([capped.trace.forgotten, capped.trace.steps], [false, 6]);
    assert.ok(
      capped.trace.monitorAccuracy > 0.5,
      `a rate of 1e-5 for one pass leaves the task: ${capped.trace.monitorAccuracy}`,
    );
    await assert.rejects(
      extractExpertUntilForgotten(model, spec, reserved, monitor, {
        unlearn: { ...unlearn, startLr: 0 },
        augment: {},
        normalization: preprocessing,
        seed: 0,
        silent: true,
      }),
      /unlearning schedule: expected 0 < startLr/,
    );
  } finally {
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
});
