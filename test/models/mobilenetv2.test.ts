// MobileNetV2 (CIFAR): the pytorch-cifar key list derived from the cfg, depthwise shapes, the
// CIFAR strides, the residual rules, training, deterministic evaluation and round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed, noGrad, randn, tidy } from "../../src/engine/index.js";
import { MobileNetV2 } from "../../src/models/index.js";
import {
  assertDeterministicEval,
  assertKeys,
  assertLearns,
  assertStateDictRoundTrip,
  bnKeys,
  outputShape,
  shapeOf,
} from "./helpers.js";

// (expansion, out_planes, num_blocks, stride) as in pytorch-cifar, stage 2 at stride 1 for CIFAR.
const CFG = [
  [1, 16, 1, 1],
  [6, 24, 2, 1],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
] as const;

/** Blocks get the conv+BN shortcut only at stride 1 with a change of width. */
function referenceKeys(): { keys: string[]; projected: number[] } {
  const keys = ["conv1.weight", ...bnKeys("bn1")];
  const projected: number[] = [];
  let inPlanes = 32;
  let n = 0;
  for (const [, out, count, stride] of CFG) {
    for (let i = 0; i < count; i++) {
      const s = i === 0 ? stride : 1;
      const p = `layers.${n}`;
      keys.push(
        `${p}.conv1.weight`,
        ...bnKeys(`${p}.bn1`),
        `${p}.conv2.weight`,
        ...bnKeys(`${p}.bn2`),
        `${p}.conv3.weight`,
        ...bnKeys(`${p}.bn3`),
      );
      if (s === 1 && inPlanes !== out) {
        keys.push(`${p}.shortcut.0.weight`, ...bnKeys(`${p}.shortcut.1`));
        projected.push(n);
      }
      inPlanes = out;
      n++;
    }
  }
  return { keys: [...keys, "conv2.weight", ...bnKeys("bn2"), "linear.weight", "linear.bias"], projected };
}

void test("MobileNetV2: state-dict keys equal pytorch-cifar's MobileNetV2", () => {
  manualSeed(0);
  const model = new MobileNetV2();
  try {
    const { keys, projected } = referenceKeys();
    assertKeys(model, keys);
    assert.deepEqual(projected, [0, 1, 10, 16]);
    assert.equal(model.layers.length, 17);
    // Depthwise convolutions: one 3x3 filter per channel.
    assert.deepEqual(shapeOf(model, "layers.0.conv2.weight"), [32, 1, 3, 3]);
    assert.deepEqual(shapeOf(model, "layers.1.conv2.weight"), [96, 1, 3, 3]);
    assert.deepEqual(shapeOf(model, "layers.16.conv2.weight"), [960, 1, 3, 3]);
    assert.deepEqual(shapeOf(model, "layers.16.conv3.weight"), [320, 960, 1, 1]);
    assert.deepEqual(shapeOf(model, "layers.10.shortcut.0.weight"), [96, 64, 1, 1]);
    assert.deepEqual(shapeOf(model, "conv2.weight"), [1280, 320, 1, 1]);
    assert.deepEqual(shapeOf(model, "linear.weight"), [10, 1280]);
    assert.equal(model.numParameters(), 2_296_922);
  } finally {
    model.dispose();
  }
});

void test("MobileNetV2: logits [N, numClasses]; 32x32 is downsampled only to 4x4", () => {
  manualSeed(0);
  const model = new MobileNetV2({ numClasses: 43 });
  try {
    assert.deepEqual(outputShape(model, [2, 3, 32, 32]), [2, 43]);
    tidy(() => {
      let out = model.bn1.forward(model.conv1.forward(randn([2, 3, 32, 32]))).relu();
      for (const block of model.layers) out = block.forward(out);
      assert.deepEqual(out.shape, [2, 320, 4, 4]);
    });
  } finally {
    model.dispose();
  }
});

void test("MobileNetV2 blocks: identity skip at stride 1, projection on a width change, none at stride 2", () => {
  manualSeed(0);
  const model = new MobileNetV2().eval();
  try {
    const [projection, identity, strided] = [model.layers.at(0), model.layers.at(2), model.layers.at(3)];
    assert.deepEqual([projection.stride, identity.stride, strided.stride], [1, 1, 2]);
    // A zero bn3 silences the main branch, leaving only what the block adds to it.
    noGrad(() => {
      for (const b of [projection, identity, strided]) {
        b.bn3.weight?.zero_();
        b.bn3.bias?.zero_();
      }
    });
    tidy(() => {
      const x32 = randn([2, 32, 8, 8]);
      assert.deepEqual(projection.forward(x32).toArray(), projection.shortcut.forward(x32).toArray());
      const x24 = randn([2, 24, 8, 8]);
      assert.deepEqual(identity.forward(x24).toArray(), x24.toArray());
      const y = strided.forward(x24);
      assert.deepEqual(y.shape, [2, 32, 4, 4]);
      assert.ok(y.toArray().every((v) => v === 0));
    });
  } finally {
    model.dispose();
  }
});

void test("MobileNetV2: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  const model = new MobileNetV2();
  try {
    assertLearns(model, [2, 3, 16, 16], 10, { steps: 4, lr: 0.01, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("MobileNetV2: forwards free their intermediates; evaluation is deterministic", () => {
  manualSeed(4);
  const model = new MobileNetV2();
  try {
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
});

void test("MobileNetV2: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new MobileNetV2(), [2, 3, 16, 16]);
});
