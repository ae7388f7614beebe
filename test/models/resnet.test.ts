// ResNet-18 (CIFAR variant): the pytorch-cifar / backdoor-toolbox key list, shapes, training,
// deterministic evaluation and checkpoint round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed } from "../../src/engine/index.js";
import { ResNet18 } from "../../src/models/index.js";
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

/**
 * Keys of torch's CIFAR ResNet18 (BasicBlock, [2, 2, 2, 2]): a block gets the conv+BN shortcut
 * exactly when it changes stride or width, i.e. the first block of layers 2-4.
 */
function referenceKeys(): string[] {
  const keys = [...weightKeys("conv1", false), ...bnKeys("bn1")];
  for (let layer = 1; layer <= 4; layer++) {
    for (let block = 0; block < 2; block++) {
      const p = `layer${layer}.${block}`;
      keys.push(`${p}.conv1.weight`, ...bnKeys(`${p}.bn1`), `${p}.conv2.weight`, ...bnKeys(`${p}.bn2`));
      if (layer > 1 && block === 0) keys.push(`${p}.shortcut.0.weight`, ...bnKeys(`${p}.shortcut.1`));
    }
  }
  return [...keys, ...weightKeys("linear", true)];
}

void test("ResNet18: state-dict keys equal the PyTorch reference, in order", () => {
  manualSeed(0);
  const model = new ResNet18();
  try {
    assertKeys(model, referenceKeys());
    assert.equal(model.stateDict().size, 122);
    assert.deepEqual(shapeOf(model, "conv1.weight"), [64, 3, 3, 3]);
    assert.deepEqual(shapeOf(model, "layer2.0.shortcut.0.weight"), [128, 64, 1, 1]);
    assert.deepEqual(shapeOf(model, "layer4.1.conv2.weight"), [512, 512, 3, 3]);
    assert.deepEqual(shapeOf(model, "linear.weight"), [10, 512]);
    assert.deepEqual(shapeOf(model, "bn1.num_batches_tracked"), []);
    // torch's count for CIFAR ResNet18 with 10 classes.
    assert.equal(model.numParameters(), 11_173_962);
  } finally {
    model.dispose();
  }
});

void test("ResNet18: logits [N, numClasses] for 32x32 and grey inputs", () => {
  manualSeed(0);
  const rgb = new ResNet18({ numClasses: 10 });
  const grey = new ResNet18({ numClasses: 43, inChannels: 1 });
  try {
    assert.deepEqual(outputShape(rgb, [2, 3, 32, 32]), [2, 10]);
    assert.deepEqual(outputShape(grey, [2, 1, 28, 28]), [2, 43]);
    assert.deepEqual(shapeOf(grey, "conv1.weight"), [64, 1, 3, 3]);
  } finally {
    rgb.dispose();
    grey.dispose();
  }
});

void test("ResNet18: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  const model = new ResNet18();
  try {
    assertLearns(model, [4, 3, 16, 16], 10, { steps: 4, lr: 0.01, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("ResNet18: forwards free their intermediates; evaluation is deterministic", () => {
  manualSeed(4);
  const model = new ResNet18();
  try {
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
});

void test("ResNet18: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new ResNet18(), [2, 3, 16, 16]);
});
