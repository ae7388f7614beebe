// M''s finetuning-rate selection (src/defense/auxiliary-rate.ts) on real images: candidates tried
// from the strongest down, a rate far too strong must lose, the first that keeps the accuracy wins.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";
import { evaluateModel } from "../../src/train/evaluate.js";
import { FASHION_CNN_SPEC, FASHION_PREPROCESSING, learnedFashionCnn } from "../helpers/learned-fashion-cnn.js";
import { selectFinetuneLr } from "../../src/defense/auxiliary-rate.js";

test("on real images, the strongest rate is tried first; one that wrecks M' is cut short; the first kept M' is returned, finetuned to the end", async () => {
  const before = memory().numTensors;
  const handlesBefore = memory().numHandles;
  const { model, reserved, calibration } = await learnedFashionCnn({
    splitSeed: 3,
    reserved: 512,
    calibration: 400,
    initSeed: 7,
  });
  const spec = FASHION_CNN_SPEC;
  const preprocessing = FASHION_PREPROCESSING;
  try {
    const lines: string[] = [];
    const { selection, auxiliary } = await selectFinetuneLr(model, { spec, preprocessing }, reserved, calibration, {
      finetune: { lr: 0.01, gamma: 0.1, epochs: 2, batchSize: 64, milestones: [1], momentum: 0.9, weightDecay: 0 },
      augment: {},
      seed: 0,
      candidates: [0.003, 3, 0.01],
      retain: 0.8,
      probeEpochs: 1,
      log: (l) => lines.push(l),
    });
    try {
      const norm = { normalization: preprocessing };
      assert.equal(selection.modelAccuracy, evaluateModel(model, calibration, norm).accuracy);
      assert.ok(selection.modelAccuracy > 0.5, `M learned the task: ${selection.modelAccuracy}`);
      // Strongest first; 0.003 is never tried, since 0.01 already kept the accuracy.
      assert.deepEqual(
        selection.table.map((r) => [r.lr, r.kept]),
        [
          [3, false],
          [0.01, true],
        ],
      );
      const wild = selection.table[0] as { calibrationAccuracy: number };
      const kept = selection.table[1] as { calibrationAccuracy: number };
      // SGD at rate 3 wrecks M' (chance is 10%); at 0.01 it keeps M's accuracy.
      assert.ok(wild.calibrationAccuracy < selection.modelAccuracy - 0.2, `rate 3: ${wild.calibrationAccuracy}`);
      assert.ok(
        kept.calibrationAccuracy >= 0.1 + 0.8 * (selection.modelAccuracy - 0.1),
        `rate 0.01: ${kept.calibrationAccuracy}`,
      );
      assert.deepEqual(
        [selection.lr, selection.retain, selection.probeEpochs, selection.conclusive],
        [0.01, 0.8, 1, true],
      );
      // The returned M' went on past the probe (its second epoch at a tenth of the rate), so it is not the probed one.
      assert.notEqual(evaluateModel(auxiliary, calibration, norm).accuracy, kept.calibrationAccuracy);
      assert.equal(lines.length, 2);
    } finally {
      auxiliary.dispose();
    }
    await assert.rejects(
      selectFinetuneLr(model, { spec, preprocessing }, reserved, calibration, {
        finetune: { lr: 0.01, gamma: 0.1, epochs: 1, batchSize: 64, milestones: [], momentum: 0.9, weightDecay: 0 },
        augment: {},
        seed: 0,
        candidates: [0.01, -1],
        retain: 0.8,
        probeEpochs: 1,
      }),
      /candidates must be positive numbers, got \[0.01,-1\]/,
    );
    // No candidate keeps the accuracy: the gentlest is used, run to the end, and the selection says so.
    const none = await selectFinetuneLr(model, { spec, preprocessing }, reserved, calibration, {
      finetune: { lr: 0.01, gamma: 0.1, epochs: 1, batchSize: 64, milestones: [], momentum: 0.9, weightDecay: 0 },
      augment: {},
      seed: 0,
      candidates: [5, 3],
      retain: 1,
      probeEpochs: 1,
      log: () => {},
    });
    none.auxiliary.dispose();
    assert.deepEqual(
      [none.selection.lr, none.selection.conclusive, none.selection.table.map((r) => r.kept)],
      [3, false, [false, false]],
    );
  } finally {
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
  assert.equal(memory().numHandles, handlesBefore);
});
