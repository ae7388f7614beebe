// M' with its output layer re-initialised (bench:unlearning --aux-head reset): the head is drawn
// afresh, seeded, before finetuning; every other weight starts from M's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, memory } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import type { Module } from "../../src/nn/index.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { finetuneAuxiliaryWithHead, outputLayer } from "../../bench/auxiliary-head.js";
import { defenseDefaults } from "../../src/defense/defaults.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import { GREY8, syntheticSet } from "../detectors/fixtures.js";

const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 8 };

function weights(m: Module): Map<string, number[]> {
  return new Map([...m.stateDict()].map(([k, t]) => [k, Array.from(t.data() as ArrayLike<number | bigint>, Number)]));
}

test("outputLayer finds the classifier's last Linear for every zoo architecture and refuses TorchScript", () => {
  const before = memory().numTensors;
  for (const [name, key] of [["compact-cnn", "classifier.4"], ["resnet20", "linear"], ["resnet18", "linear"], ["preact-resnet18", "linear"], ["vgg16-bn", "classifier"], ["mobilenetv2", "linear"], ["vit", "head"]] as const) {
    const m = createModel(name, { numClasses: 43, inChannels: 3, imageSize: 32 });
    try {
      const { name: found, layer } = outputLayer(m, 43);
      assert.equal(layer.outFeatures, 43, name);
      assert.ok(m.stateDict().has(`${found}.weight`), `${name}: ${found}.weight is a state_dict key`);
      assert.equal(found, key, name);
    } finally {
      m.dispose();
    }
  }
  const scripted = TorchScriptModule.load(fixture("compact-cnn-8-scripted.pt"));
  try {
    assert.throws(() => outputLayer(scripted, 10), /TorchScript model cannot have its head reset/);
  } finally {
    scripted.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("--aux-head reset: M' starts from M's features and a fresh, seeded output layer", async () => {
  const before = memory().numTensors;
  manualSeed(5);
  const model = createModel("compact-cnn", spec).eval();
  const reserved = syntheticSet(64, 10, (i, k) => (i * 29 + k * 7) % 256);
  const d = defenseDefaults("compact-cnn", "fashion-mnist");
  // A vanishing rate (no step moves a weight measurably) shows where finetuning starts; BatchNorm
  // statistics still move, so they are left out.
  const common = { augment: {}, normalization: GREY8, seed: 4, silent: true };
  const made: Module[] = [];
  try {
    const o = { ...common, finetune: { ...d.finetune, lr: 1e-9, epochs: 1, batchSize: 32 } };
    const keep = await finetuneAuxiliaryWithHead(model, spec, reserved, o, "keep");
    made.push(keep);
    const reset = await finetuneAuxiliaryWithHead(model, spec, reserved, o, "reset");
    made.push(reset);
    const again = await finetuneAuxiliaryWithHead(model, spec, reserved, o, "reset");
    made.push(again);
    const { name: head } = outputLayer(model, 10);
    const m = weights(model);
    const [k, r, a] = [weights(keep), weights(reset), weights(again)];
    const distance = (x: number[] | undefined, y: number[]) => Math.max(...y.map((v, i) => Math.abs((x?.[i] ?? Number.NaN) - v)));
    let headKeys = 0;
    for (const [key, w] of m) {
      if (key.includes("running_") || key.endsWith("num_batches_tracked")) continue;
      assert.ok(distance(k.get(key), w) < 1e-6, `head keep: ${key} starts as M's`);
      if (key.startsWith(`${head}.`)) {
        headKeys++;
        assert.ok(distance(r.get(key), w) > 1e-3, `head reset: ${key} was re-initialised`);
        assert.deepEqual(a.get(key), r.get(key), `head reset: ${key} is seeded`);
      } else {
        assert.ok(distance(r.get(key), w) < 1e-6, `head reset: ${key} starts as M's`);
      }
    }
    assert.equal(headKeys, 2, "the head's weight and bias");
  } finally {
    for (const x of made) x.dispose();
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
});
