// Compact CNN: its documented key list and sizes, dropout, size checks, training,
// deterministic evaluation and round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed, randn, tidy } from "../../src/engine/index.js";
import { CompactCNN } from "../../src/models/index.js";
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

// features = [conv, bn, relu, pool, conv, bn, relu, pool]; classifier = [flatten, linear, relu, dropout, linear].
const KEYS = [
  "features.0.weight",
  ...bnKeys("features.1"),
  "features.4.weight",
  ...bnKeys("features.5"),
  ...weightKeys("classifier.1", true),
  ...weightKeys("classifier.4", true),
];

void test("CompactCNN: keys, shapes and parameter count at 28x28 grey", () => {
  manualSeed(0);
  const model = new CompactCNN();
  try {
    assertKeys(model, KEYS);
    assert.deepEqual(shapeOf(model, "features.0.weight"), [32, 1, 3, 3]);
    assert.deepEqual(shapeOf(model, "features.4.weight"), [64, 32, 3, 3]);
    // 28 -> 14 -> 7 after the two pools.
    assert.deepEqual(shapeOf(model, "classifier.1.weight"), [128, 64 * 7 * 7]);
    assert.deepEqual(shapeOf(model, "classifier.4.weight"), [10, 128]);
    const convs = 32 * 1 * 9 + 64 * 32 * 9;
    const norms = 2 * (32 + 64);
    const dense = 3136 * 128 + 128 + 128 * 10 + 10;
    assert.equal(model.numParameters(), convs + norms + dense);
    assert.equal(model.numParameters(), 421_738);
  } finally {
    model.dispose();
  }
});

void test("CompactCNN: other channels, sizes and classes size the classifier to match", () => {
  manualSeed(0);
  const rgb = new CompactCNN({ inChannels: 3, imageSize: 32, numClasses: 43 });
  const odd = new CompactCNN({ imageSize: [30, 17] });
  try {
    assert.deepEqual(shapeOf(rgb, "features.0.weight"), [32, 3, 3, 3]);
    assert.deepEqual(shapeOf(rgb, "classifier.1.weight"), [128, 64 * 8 * 8]);
    assert.deepEqual(outputShape(rgb, [2, 3, 32, 32]), [2, 43]);
    // Pools floor odd sides: 30 -> 15 -> 7 and 17 -> 8 -> 4.
    assert.deepEqual(shapeOf(odd, "classifier.1.weight"), [128, 64 * 7 * 4]);
    assert.deepEqual(outputShape(odd, [3, 1, 30, 17]), [3, 10]);
  } finally {
    rgb.dispose();
    odd.dispose();
  }
});

void test("CompactCNN: wrong inputs and options are refused with the expected and actual values", () => {
  assert.throws(
    () => new CompactCNN({ imageSize: 3 }),
    /CompactCNN: imageSize must be at least 4x4 \(two 2x2 max-pools\), got 3x3/,
  );
  assert.throws(
    () => new CompactCNN({ imageSize: [28, 0] }),
    /CompactCNN: imageSize must be a positive integer or a \[height, width\] pair of them, got \[28,0\]/,
  );
  assert.throws(() => new CompactCNN({ dropout: 1 }), /CompactCNN: dropout must be in \[0, 1\), got 1/);
  assert.throws(() => new CompactCNN({ numClasses: -2 }), /CompactCNN: numClasses must be a positive integer, got -2/);
  manualSeed(0);
  const model = new CompactCNN();
  try {
    tidy(() => {
      assert.throws(
        () => model.forward(randn([2, 1, 32, 32])),
        /CompactCNN: expected input \[N, 1, 28, 28\], got \[2, 1, 32, 32\]/,
      );
      assert.throws(
        () => model.forward(randn([2, 3, 28, 28])),
        /expected input \[N, 1, 28, 28\], got \[2, 3, 28, 28\]/,
      );
    });
  } finally {
    model.dispose();
  }
});

void test("CompactCNN: dropout makes training forwards differ; evaluation is deterministic and leak-free", () => {
  manualSeed(4);
  const model = new CompactCNN();
  try {
    tidy(() => {
      const x = randn([4, 1, 28, 28]);
      assert.notDeepEqual(model.forward(x).toArray(), model.forward(x).toArray());
    });
    assertDeterministicEval(model, [4, 1, 28, 28]);
  } finally {
    model.dispose();
  }
});

void test("CompactCNN: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  const model = new CompactCNN();
  try {
    assertLearns(model, [16, 1, 28, 28], 10, { steps: 5, lr: 0.02, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("CompactCNN: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new CompactCNN(), [4, 1, 28, 28]);
});
