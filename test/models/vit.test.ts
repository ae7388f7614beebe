// Vision Transformer: timm's key list, the packed qkv layout (checked against
// nn.MultiheadAttention), timm's initialisation and LayerNorm eps, size checks, training,
// deterministic evaluation and round trips.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed, randn, tidy } from "../../src/engine/index.js";
import { Attention, VisionTransformer } from "../../src/models/index.js";
import * as nn from "../../src/nn/index.js";
import {
  assertDeterministicEval,
  assertKeys,
  assertLearns,
  assertStateDictRoundTrip,
  outputShape,
  shapeOf,
  weightKeys,
} from "./helpers.js";

/** timm VisionTransformer (class token, qkv_bias, no layer scale) with `depth` blocks. */
function referenceKeys(depth: number): string[] {
  const keys = ["cls_token", "pos_embed", ...weightKeys("patch_embed.proj", true)];
  for (let i = 0; i < depth; i++) {
    for (const layer of ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"])
      keys.push(...weightKeys(`blocks.${i}.${layer}`, true));
  }
  return [...keys, ...weightKeys("norm", true), ...weightKeys("head", true)];
}

function std(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
}

void test("VisionTransformer: default state-dict keys and shapes equal timm's", () => {
  manualSeed(0);
  const model = new VisionTransformer();
  try {
    assertKeys(model, referenceKeys(6));
    assert.deepEqual(shapeOf(model, "cls_token"), [1, 1, 192]);
    // 8 x 8 patches of 4 x 4 pixels, plus the class token.
    assert.deepEqual(shapeOf(model, "pos_embed"), [1, 65, 192]);
    assert.deepEqual(shapeOf(model, "patch_embed.proj.weight"), [192, 3, 4, 4]);
    assert.deepEqual(shapeOf(model, "blocks.0.attn.qkv.weight"), [576, 192]);
    assert.deepEqual(shapeOf(model, "blocks.5.attn.proj.weight"), [192, 192]);
    assert.deepEqual(shapeOf(model, "blocks.5.mlp.fc1.weight"), [768, 192]);
    assert.deepEqual(shapeOf(model, "blocks.5.mlp.fc2.weight"), [192, 768]);
    assert.deepEqual(shapeOf(model, "head.weight"), [10, 192]);
    assert.equal(model.numParameters(), 2_693_578);
  } finally {
    model.dispose();
  }
});

void test("VisionTransformer: options change depth, width, patches and the image's shape", () => {
  manualSeed(0);
  const model = new VisionTransformer({
    depth: 2,
    dim: 32,
    numHeads: 4,
    mlpRatio: 2,
    patchSize: 8,
    imageSize: [32, 16],
    inChannels: 1,
    numClasses: 3,
  });
  try {
    assertKeys(model, referenceKeys(2));
    assert.deepEqual(shapeOf(model, "pos_embed"), [1, 4 * 2 + 1, 32]);
    assert.deepEqual(shapeOf(model, "patch_embed.proj.weight"), [32, 1, 8, 8]);
    assert.deepEqual(shapeOf(model, "blocks.1.mlp.fc1.weight"), [64, 32]);
    assert.deepEqual(outputShape(model, [2, 1, 32, 16]), [2, 3]);
  } finally {
    model.dispose();
  }
});

void test("VisionTransformer: timm's initialisation and LayerNorm eps", () => {
  manualSeed(0);
  const model = new VisionTransformer();
  try {
    for (const key of ["pos_embed", "blocks.0.attn.qkv.weight", "blocks.3.mlp.fc1.weight", "head.weight"]) {
      const values = tidy(() => model.stateDict().get(key)?.toArray() ?? []);
      const s = std(values);
      assert.ok(Math.abs(s - 0.02) < 0.002, `${key}: std ${s}, expected about 0.02`);
    }
    for (const key of ["blocks.0.attn.qkv.bias", "blocks.2.mlp.fc2.bias", "head.bias", "norm.bias"]) {
      assert.ok(
        tidy(() => model.stateDict().get(key)?.toArray() ?? [1]).every((v) => v === 0),
        `${key} should start at zero`,
      );
    }
    assert.equal(model.norm.eps, 1e-6);
    assert.equal(model.blocks.at(0).norm1.eps, 1e-6);
    assert.equal(model.blocks.at(5).norm2.eps, 1e-6);
  } finally {
    model.dispose();
  }
});

void test("Attention: the packed qkv is laid out [q | k | v], heads contiguous, like nn.MultiheadAttention's in_proj", () => {
  manualSeed(0);
  const attn = new Attention(12, 3);
  const reference = new nn.MultiheadAttention(12, 3, { batchFirst: true });
  try {
    reference.loadStateDict({
      in_proj_weight: attn.qkv.weight,
      in_proj_bias: attn.qkv.bias ?? attn.qkv.weight,
      "out_proj.weight": attn.proj.weight,
      "out_proj.bias": attn.proj.bias ?? attn.proj.weight,
    });
    tidy(() => {
      const x = randn([2, 5, 12]);
      const ours = attn.forward(x).toArray();
      const theirs = reference.forward(x, x, x).output.toArray();
      assert.equal(ours.length, 2 * 5 * 12);
      ours.forEach((v, i) => assert.ok(Math.abs(v - (theirs[i] ?? NaN)) < 1e-5, `element ${i}: ${v} vs ${theirs[i]}`));
    });
  } finally {
    attn.dispose();
    reference.dispose();
  }
});

void test("VisionTransformer: sizes that do not fit are refused, naming the option", () => {
  assert.throws(
    () => new VisionTransformer({ imageSize: 30 }),
    /VisionTransformer: patchSize \(4\) must divide imageSize \(30x30\)/,
  );
  assert.throws(
    () => new VisionTransformer({ imageSize: [32, 30], patchSize: 8 }),
    /patchSize \(8\) must divide imageSize \(32x30\)/,
  );
  assert.throws(
    () => new VisionTransformer({ dim: 100, numHeads: 3 }),
    /VisionTransformer: dim \(100\) must be divisible by numHeads \(3\)/,
  );
  assert.throws(
    () => new VisionTransformer({ depth: 0 }),
    /VisionTransformer: depth must be a positive integer, got 0/,
  );
  assert.throws(
    () => new VisionTransformer({ mlpRatio: -1 }),
    /VisionTransformer: mlpRatio must be a positive number, got -1/,
  );
  manualSeed(0);
  const model = new VisionTransformer({ depth: 1, dim: 16, numHeads: 2 });
  try {
    tidy(() => {
      assert.throws(
        () => model.forward(randn([1, 3, 28, 28])),
        /VisionTransformer: expected input \[N, 3, 32, 32\], got \[1, 3, 28, 28\]/,
      );
    });
  } finally {
    model.dispose();
  }
});

void test("VisionTransformer: a few plain SGD steps on a fixed batch lower the loss", () => {
  manualSeed(3);
  // Two blocks keep the test quick; the default depth is covered by the other tests.
  const model = new VisionTransformer({ depth: 2 });
  try {
    assertLearns(model, [4, 3, 32, 32], 10, { steps: 4, lr: 0.005, factor: 0.8 });
  } finally {
    model.dispose();
  }
});

void test("VisionTransformer: forwards free their intermediates; evaluation is deterministic", () => {
  manualSeed(4);
  const model = new VisionTransformer();
  try {
    assert.deepEqual(outputShape(model, [2, 3, 32, 32]), [2, 10]);
    assertDeterministicEval(model, [2, 3, 32, 32]);
  } finally {
    model.dispose();
  }
});

void test("VisionTransformer: loadStateDict(stateDict()) into a fresh model reproduces the logits", () => {
  assertStateDictRoundTrip(() => new VisionTransformer({ depth: 2 }), [2, 3, 32, 32]);
});
