// Pre-activation ResNet-18: key lists with and without the final BN, the block's skip paths,
// training, deterministic evaluation and round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed, noGrad, randn, tidy } from "../../src/engine/index.js";
import { PreActBlock, PreActResNet18 } from "../../src/models/index.js";
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
 * pytorch-cifar's PreActResNet18 keys (PreActBlock: bn1, conv1, bn2, conv2, and a conv-only
 * shortcut on the first block of layers 2-4), with the final `bn` between layer4 and linear
 * when `finalNorm`.
 */
function referenceKeys(finalNorm: boolean): string[] {
  const keys = ["conv1.weight"];
  for (let layer = 1; layer <= 4; layer++) {
    for (let block = 0; block < 2; block++) {
      const p = `layer${layer}.${block}`;
      keys.push(...bnKeys(`${p}.bn1`), `${p}.conv1.weight`, ...bnKeys(`${p}.bn2`), `${p}.conv2.weight`);
      if (layer > 1 && block === 0) keys.push(`${p}.shortcut.0.weight`);
    }
  }
  if (finalNorm) keys.push(...bnKeys("bn"));
  return [...keys, ...weightKeys("linear", true)];
}

void test("PreActResNet18: state-dict keys equal the reference, with and without the final BN", () => {
  manualSeed(0);
  const withBn = new PreActResNet18();
  const plain = new PreActResNet18({ finalNorm: false });
  try {
    assertKeys(withBn, referenceKeys(true));
    assertKeys(plain, referenceKeys(false));
    assert.equal(withBn.stateDict().size, 107);
    assert.deepEqual(shapeOf(withBn, "layer1.0.bn1.weight"), [64]);
    assert.deepEqual(shapeOf(withBn, "layer3.0.bn1.running_var"), [128]);
    assert.deepEqual(shapeOf(withBn, "layer3.0.shortcut.0.weight"), [256, 128, 1, 1]);
    assert.deepEqual(shapeOf(withBn, "bn.weight"), [512]);
    assert.deepEqual(shapeOf(withBn, "linear.weight"), [10, 512]);
    // torch: 11,171,146 for pytorch-cifar's PreActResNet18, plus 2 x 512 for the final BN.
    assert.equal(plain.numParameters(), 11_171_146);
    assert.equal(withBn.numParameters(), 11_171_146 + 1024);
  } finally {
    withBn.dispose();
    plain.dispose();
  }
});

void test("PreActBlock: the skip path is the raw input, or the projection of the pre-activated input", () => {
  manualSeed(0);
  const identity = new PreActBlock(4, 4, 1);
  const projected = new PreActBlock(4, 6, 2);
  try {
    assert.equal(identity.shortcut, null);
    // With conv2 zeroed the residual branch is 0, so the block returns its skip path alone.
    noGrad(() => {
      identity.conv2.weight.zero_();
      projected.conv2.weight.zero_();
    });
    tidy(() => {
      const x = randn([2, 4, 6, 6]);
      assert.deepEqual(identity.forward(x).toArray(), x.toArray());
      const proj = projected.shortcut;
      assert.ok(proj !== null);
      const expected = proj.forward(projected.bn1.forward(x).relu());
      assert.deepEqual(expected.shape, [2, 6, 3, 3]);
      assert.deepEqual(projected.forward(x).toArray(), expected.toArray());
    });
  } finally {
    identity.dispose();
    projected.dispose();
  }
});

void test("PreActResNet18: logits [N, numClasses]", () => {
  manualSeed(0);
  const model = new PreActResNet18({ numClasses: 43 });
  try {
    assert.deepEqual(outputShape(model, [2, 3, 32, 32]), [2, 43]);
  } finally {
    model.dispose();
  }
});

void test("PreActResNet18: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  const model = new PreActResNet18();
  try {
    assertLearns(model, [4, 3, 16, 16], 10, { steps: 4, lr: 0.01, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("PreActResNet18: forwards free their intermediates; evaluation is deterministic", () => {
  manualSeed(4);
  const model = new PreActResNet18();
  try {
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
});

void test("PreActResNet18: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new PreActResNet18(), [2, 3, 16, 16]);
});

void test("PreActResNet18: invalid options name the option and the value", () => {
  assert.throws(
    () => new PreActResNet18({ numClasses: 0 }),
    /PreActResNet18: numClasses must be a positive integer, got 0/,
  );
  assert.throws(
    () => new PreActResNet18({ inChannels: 2.5 }),
    /PreActResNet18: inChannels must be a positive integer, got 2.5/,
  );
});
