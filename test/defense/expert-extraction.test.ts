// B unlearned until forgotten (src/defense/expert-extraction.ts), on real images: it stops as soon
// as its held-out accuracy reaches the level, with the rate still far below its cap, and frees
// everything it made.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";
import { evaluateModel } from "../../src/train/evaluate.js";
import { FASHION_CNN_SPEC, FASHION_PREPROCESSING, learnedFashionCnn } from "../helpers/learned-fashion-cnn.js";
import { extractExpertUntilForgotten } from "../../src/defense/expert-extraction.js";

test("B unlearns until its monitor accuracy is at most the level, and no further", async () => {
  const before = memory().numTensors;
  const {
    model,
    reserved,
    calibration: monitor,
  } = await learnedFashionCnn({ splitSeed: 5, reserved: 768, calibration: 300, initSeed: 11 });
  const spec = FASHION_CNN_SPEC;
  const preprocessing = FASHION_PREPROCESSING;
  try {
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
