// ResNet-20 (He et al.'s CIFAR ResNet, option-B projections): the pytorch-cifar-style key list,
// parameter count, shapes, training, deterministic evaluation and checkpoint round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed } from "../../src/engine/index.js";
import { createModel, ResNet20 } from "../../src/models/index.js";
import {
  assertDeterministicEval,
  assertKeys,
  assertLearns,
  assertStateDictRoundTrip,
  bnKeys,
  outputShape,
  shapeOf,
  weightKeys,
} from "./helpers.js";

/** Three stages of three blocks; the first block of stages 2 and 3 changes width and stride. */
function referenceKeys(): string[] {
  const keys = [...weightKeys("conv1", false), ...bnKeys("bn1")];
  for (let layer = 1; layer <= 3; layer++) {
    for (let block = 0; block < 3; block++) {
      const p = `layer${layer}.${block}`;
      keys.push(`${p}.conv1.weight`, ...bnKeys(`${p}.bn1`), `${p}.conv2.weight`, ...bnKeys(`${p}.bn2`));
      if (layer > 1 && block === 0) keys.push(`${p}.shortcut.0.weight`, ...bnKeys(`${p}.shortcut.1`));
    }
  }
  return [...keys, ...weightKeys("linear", true)];
}

void test("ResNet20: state-dict keys in PyTorch order, shapes and the 0.27M parameter count", () => {
  manualSeed(0);
  const model = new ResNet20();
  try {
    assertKeys(model, referenceKeys());
    // 1 stem conv + 18 block convs + 2 projections, each with a BN of 5 entries, plus the head.
    assert.equal(model.stateDict().size, 21 * 6 + 2);
    assert.deepEqual(shapeOf(model, "conv1.weight"), [16, 3, 3, 3]);
    assert.deepEqual(shapeOf(model, "layer1.2.conv2.weight"), [16, 16, 3, 3]);
    assert.deepEqual(shapeOf(model, "layer2.0.conv1.weight"), [32, 16, 3, 3]);
    assert.deepEqual(shapeOf(model, "layer2.0.shortcut.0.weight"), [32, 16, 1, 1]);
    assert.deepEqual(shapeOf(model, "layer3.0.shortcut.1.running_var"), [64]);
    assert.deepEqual(shapeOf(model, "layer3.2.conv2.weight"), [64, 64, 3, 3]);
    assert.deepEqual(shapeOf(model, "linear.weight"), [10, 64]);
    // Counted by hand: stem 432 + 32; stage 1 3 x 4,672; stage 2 14,528 + 2 x 18,560;
    // stage 3 57,728 + 2 x 73,984; head 650. (Option A, zero-padded shortcuts, has 269,722.)
    assert.equal(model.numParameters(), 272_474);
  } finally {
    model.dispose();
  }
});

void test("ResNet20: logits [N, numClasses] for 32x32 RGB, 43 classes and grey 28x28 inputs; the registry builds it", () => {
  manualSeed(0);
  const rgb = new ResNet20();
  const gtsrb = createModel("resnet20", { numClasses: 43 });
  const grey = new ResNet20({ numClasses: 10, inChannels: 1 });
  try {
    assert.deepEqual(outputShape(rgb, [2, 3, 32, 32]), [2, 10]);
    assert.deepEqual(outputShape(gtsrb, [3, 3, 32, 32]), [3, 43]);
    assert.deepEqual(outputShape(grey, [2, 1, 28, 28]), [2, 10]);
    assert.deepEqual(shapeOf(grey, "conv1.weight"), [16, 1, 3, 3]);
    assert.ok(gtsrb instanceof ResNet20);
  } finally {
    rgb.dispose();
    gtsrb.dispose();
    grey.dispose();
  }
  assert.throws(() => createModel("resnet20", { imageSize: 3 }), /model 'resnet20'.*4/);
});

void test("ResNet20: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  const model = new ResNet20();
  try {
    assertLearns(model, [8, 3, 16, 16], 10, { steps: 6, lr: 0.05, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("ResNet20: forwards free their intermediates; evaluation is deterministic", () => {
  manualSeed(4);
  const model = new ResNet20();
  try {
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
});

void test("ResNet20: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new ResNet20(), [2, 3, 16, 16]);
});
