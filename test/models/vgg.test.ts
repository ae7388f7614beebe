// VGG-16-BN: the pytorch-cifar key list derived from the cfg, the toolbox head variant, input
// sizes, training, deterministic evaluation and round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed, randn, tidy } from "../../src/engine/index.js";
import { VGG16BN, type VggClassifier } from "../../src/models/index.js";
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

// Configuration "D" written out again here, so that a wrong cfg in the model cannot agree with itself.
const CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"] as const;

/** nn.Sequential numbering: conv, BN, ReLU take three slots per number, a pool one. */
function referenceKeys(classifier: VggClassifier): string[] {
  const keys: string[] = [];
  let index = 0;
  for (const v of CFG_D) {
    if (v === "M") {
      index += 1;
    } else {
      keys.push(...weightKeys(`features.${index}`, true), ...bnKeys(`features.${index + 1}`));
      index += 3;
    }
  }
  if (classifier === "linear") return [...keys, ...weightKeys("classifier", true)];
  return [
    ...keys,
    ...weightKeys("classifier.1", true),
    ...weightKeys("classifier.4", true),
    ...weightKeys("classifier.6", true),
  ];
}

void test("VGG16BN: state-dict keys equal pytorch-cifar's VGG('VGG16')", () => {
  manualSeed(0);
  const model = new VGG16BN();
  try {
    const expected = referenceKeys("linear");
    assertKeys(model, expected);
    // Spot checks against the literal reference: the last conv is features.40, its BN features.41.
    assert.equal(expected[0], "features.0.weight");
    assert.ok(expected.includes("features.7.weight") && expected.includes("features.41.num_batches_tracked"));
    assert.deepEqual(shapeOf(model, "features.0.weight"), [64, 3, 3, 3]);
    assert.deepEqual(shapeOf(model, "features.0.bias"), [64]);
    assert.deepEqual(shapeOf(model, "features.40.weight"), [512, 512, 3, 3]);
    assert.deepEqual(shapeOf(model, "classifier.weight"), [10, 512]);
    assert.equal(model.numParameters(), 14_728_266);
  } finally {
    model.dispose();
  }
});

void test("VGG16BN: the 'mlp' head has the backdoor-toolbox keys and drops out only while training", () => {
  manualSeed(0);
  const model = new VGG16BN({ classifier: "mlp", numClasses: 43 });
  try {
    assertKeys(model, referenceKeys("mlp"));
    assert.deepEqual(shapeOf(model, "classifier.1.weight"), [512, 512]);
    assert.deepEqual(shapeOf(model, "classifier.6.weight"), [43, 512]);
    tidy(() => {
      const x = randn([2, 3, 32, 32]);
      assert.notDeepEqual(model.forward(x).toArray(), model.forward(x).toArray());
    });
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
  assert.throws(
    () => new VGG16BN({ classifier: "conv" as VggClassifier }),
    /VGG16BN: classifier must be 'linear' or 'mlp', got "conv"/,
  );
});

void test("VGG16BN: logits for 32x32 and larger inputs; smaller ones are refused clearly", () => {
  manualSeed(0);
  const model = new VGG16BN({ numClasses: 7 });
  try {
    assert.deepEqual(outputShape(model, [2, 3, 32, 32]), [2, 7]);
    // 64x64 leaves 2x2 after the last pool; the adaptive pool keeps the head at 512 inputs.
    assert.deepEqual(outputShape(model, [1, 3, 64, 48]), [1, 7]);
    tidy(() => {
      const small = randn([1, 3, 16, 32]);
      assert.throws(
        () => model.forward(small),
        /VGG16BN: expected \[N, C, H, W\] images of at least 32x32 \(five 2x2 max-pools\), got shape \[1, 3, 16, 32\]/,
      );
    });
  } finally {
    model.dispose();
  }
});

void test("VGG16BN: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  const model = new VGG16BN();
  try {
    assertLearns(model, [2, 3, 32, 32], 10, { steps: 4, lr: 0.005, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("VGG16BN: forwards free their intermediates; evaluation is deterministic", () => {
  manualSeed(4);
  const model = new VGG16BN();
  try {
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
});

void test("VGG16BN: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new VGG16BN(), [2, 3, 32, 32]);
});
