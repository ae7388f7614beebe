// The model registry: names, defaults consistent with the dataset registry, option validation
// with clear messages, and models built from every entry.
import { test } from "node:test";
import assert from "node:assert/strict";

import { manualSeed } from "../../src/engine/index.js";
import { datasetInfo, datasetNames } from "../../src/data/registry.js";
import { createModel, modelInfo, modelNames, resolveModelOptions } from "../../src/models/index.js";
import { noLeaks } from "../helpers/memory.js";
import { outputShape } from "./helpers.js";
import { BadExpertError } from "../../src/util/errors.js";

const NAMES = ["resnet18", "preact-resnet18", "vgg16-bn", "mobilenetv2", "vit", "compact-cnn", "resnet20"];

void test("registry: the seven architectures, by name", () => {
  assert.deepEqual(modelNames(), NAMES);
  for (const name of NAMES) assert.equal(modelInfo(name).name, name);
});

void test("registry: an unknown name lists the valid ones", () => {
  assert.throws(
    () => modelInfo("resnet50"),
    (e: unknown) => {
      assert.ok(e instanceof BadExpertError && e.code === "E_USAGE");
      assert.equal(e.message, `unknown model "resnet50"; valid names: ${NAMES.join(", ")}`);
      return true;
    },
  );
  assert.throws(() => createModel("ResNet18"), /unknown model "ResNet18"; valid names: resnet18, preact-resnet18/);
});

void test("registry: suited datasets exist, and the first one matches the default options", () => {
  const known = datasetNames();
  for (const name of NAMES) {
    const info = modelInfo(name);
    assert.ok(info.datasets.length > 0, `${name}: no datasets`);
    for (const d of info.datasets) assert.ok(known.includes(d), `${name}: unknown dataset '${d}'`);
    const first = datasetInfo(info.datasets[0] ?? "");
    assert.equal(info.defaults.numClasses, first.numClasses, `${name}: numClasses`);
    assert.equal(info.defaults.inChannels, first.channels, `${name}: inChannels`);
    assert.equal(info.defaults.imageSize, first.imageSize?.height, `${name}: imageSize`);
    assert.ok(info.description.length > 0 && info.keyLayout.length > 0);
  }
});

void test("registry: every entry builds a model whose logits have the requested class count", () => {
  noLeaks(() => {
    for (const name of NAMES) {
      manualSeed(0);
      const info = modelInfo(name);
      const model = createModel(name, { numClasses: 7 });
      try {
        const size = info.defaults.imageSize;
        const side = typeof size === "number" ? size : size[0];
        assert.deepEqual(outputShape(model, [1, info.defaults.inChannels, side, side]), [1, 7], name);
        // The description's parameter count ("11.2M parameters") must describe the default build.
        const m = /([\d.]+)M parameters/.exec(info.description);
        assert.ok(m !== null, `${name}: description gives no parameter count`);
        // (7 rather than 10 classes changes the count by under 1,600, below the rounding.)
        const stated = Number(m[1]);
        const decimals = (m[1]?.split(".")[1] ?? "").length;
        const millions = model.numParameters() / 1e6;
        assert.ok(
          Math.abs(millions - stated) <= 0.5 * 10 ** -decimals,
          `${name}: ${millions.toFixed(3)}M parameters, description says ${stated}M`,
        );
      } finally {
        model.dispose();
      }
    }
  });
});

void test("registry: defaults fill unset options; given ones win", () => {
  assert.deepEqual(resolveModelOptions("compact-cnn"), { numClasses: 10, inChannels: 1, imageSize: 28 });
  assert.deepEqual(resolveModelOptions("resnet18", { numClasses: 43 }), {
    numClasses: 43,
    inChannels: 3,
    imageSize: 32,
  });
  assert.deepEqual(resolveModelOptions("vit", { imageSize: [32, 64], inChannels: 1 }), {
    numClasses: 10,
    inChannels: 1,
    imageSize: [32, 64],
  });
  noLeaks(() => {
    manualSeed(0);
    const model = createModel("compact-cnn", { inChannels: 3, imageSize: 32, numClasses: 43 });
    try {
      assert.deepEqual(outputShape(model, [2, 3, 32, 32]), [2, 43]);
    } finally {
      model.dispose();
    }
  });
});

void test("registry: invalid options name the model, the option, the expectation and the value", () => {
  assert.throws(
    () => createModel("resnet18", { numClasses: 0 }),
    /model 'resnet18': numClasses must be a positive integer, got 0/,
  );
  assert.throws(
    () => createModel("mobilenetv2", { inChannels: 1.5 }),
    /model 'mobilenetv2': inChannels must be a positive integer, got 1.5/,
  );
  assert.throws(
    () => createModel("vgg16-bn", { imageSize: 16 }),
    /model 'vgg16-bn': imageSize must be at least 32x32 \(five 2x2 max-pools\), got 16x16/,
  );
  assert.throws(
    () => createModel("mobilenetv2", { imageSize: [32, 4] }),
    /model 'mobilenetv2': imageSize must be at least 8x8 \(three stride-2 stages\), got 32x4/,
  );
  assert.throws(
    () => createModel("vit", { imageSize: 30 }),
    /model 'vit': imageSize must be a multiple of 4 on each side \(the patch size\), got 30x30/,
  );
  assert.throws(
    () => createModel("compact-cnn", { imageSize: 2 }),
    /model 'compact-cnn': imageSize must be at least 4x4 \(two 2x2 max-pools\), got 2x2/,
  );
  // A malformed value such as a config file could hold.
  const oneSide: unknown = [28];
  assert.throws(
    () => createModel("compact-cnn", { imageSize: oneSide as number }),
    /imageSize must be a positive integer or a \[height, width\] pair of them, got \[28\]/,
  );
});

void test("registry: the paper's per-dataset settings are recorded where it used the architecture", () => {
  assert.deepEqual(modelInfo("resnet18").paper?.unlearnLr, { cifar10: 1e-4, gtsrb: 2.5e-5 });
  assert.deepEqual(modelInfo("resnet18").paper?.finetune, {
    cifar10: { lr: 0.1, gamma: 0.1 },
    gtsrb: { lr: 0.05, gamma: 0.2 },
  });
  assert.deepEqual(modelInfo("vgg16-bn").paper?.unlearnLr, { cifar10: 8e-5 });
  assert.deepEqual(modelInfo("mobilenetv2").paper?.finetune, { cifar10: { lr: 0.2, gamma: 0.1 } });
  assert.equal(modelInfo("compact-cnn").paper, undefined);
  assert.equal(modelInfo("preact-resnet18").paper, undefined);
});
