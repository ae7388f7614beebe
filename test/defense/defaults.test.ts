// defend's defaults are plain values that depend on neither the architecture nor the dataset: the
// two rates that matter are chosen per model by procedures (expert-extraction.ts, auxiliary-rate.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_FINETUNE,
  DEFAULT_TARGET_FPR,
  DEFAULT_UNLEARNING,
  FINETUNE_PROBE_EPOCHS,
  FINETUNE_RATE_CANDIDATES,
  FINETUNE_RETAINED,
  finetuneAugment,
} from "../../src/defense/defaults.js";

test("no default is looked up by architecture or dataset", async () => {
  const source = await readFile(fileURLToPath(new URL("../../../src/defense/defaults.ts", import.meta.url)), "utf8");
  assert.doesNotMatch(source, /models\/registry|modelInfo|TORCHSCRIPT_ARCH/, "defaults.ts consults the model zoo");
  assert.doesNotMatch(
    source,
    /compact-cnn|resnet|fashion-mnist|cifar|gtsrb/i,
    "defaults.ts names an architecture or a dataset",
  );
});

test("B unlearns from a gentle rate upward and stops at the authors' 20%; M''s candidates span ResNet to transformer rates", () => {
  assert.ok(
    DEFAULT_UNLEARNING.startLr <= 1e-5 && DEFAULT_UNLEARNING.maxLr >= 1e-3,
    "the ramp covers the paper's rates (1e-6 ViT aside) and the compact CNN's",
  );
  assert.equal(DEFAULT_UNLEARNING.forgetAccuracy, 0.2);
  assert.deepEqual(
    [...FINETUNE_RATE_CANDIDATES],
    [...FINETUNE_RATE_CANDIDATES].sort((a, b) => b - a),
    "strongest first",
  );
  assert.equal(FINETUNE_RATE_CANDIDATES[0], 0.1);
  assert.equal(
    FINETUNE_PROBE_EPOCHS,
    (DEFAULT_FINETUNE.milestones[0] as number) + 1,
    "judged one epoch after the first decay",
  );
  assert.deepEqual(
    [DEFAULT_FINETUNE.epochs, DEFAULT_FINETUNE.milestones, FINETUNE_RETAINED, DEFAULT_TARGET_FPR],
    [10, [2, 4, 6, 8], 0.8, 0.01],
  );
});

test("the augmentation is the known dataset's training augmentation, none for a dataset badexpert does not know", () => {
  assert.deepEqual(finetuneAugment("no-such-dataset"), {});
  assert.ok(Object.keys(finetuneAugment("cifar10")).length > 0);
});
