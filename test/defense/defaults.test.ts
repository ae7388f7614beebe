// Per-architecture defense defaults: the paper's values where it gives them, the canary
// selection where it does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { auxiliaryRateCandidates, canaryFinetune, choosesFinetuneLr, choosesUnlearnLr, defenseDefaults } from "../../src/defense/defaults.js";

test("the paper's unlearning and finetuning rates are used where it reports the setting", () => {
  const r = defenseDefaults("resnet18", "cifar10");
  assert.equal(r.unlearnLrSource, "paper");
  assert.equal(r.unlearn.lr, 1e-4);
  assert.deepEqual([r.finetune.lr, r.finetune.gamma], [0.1, 0.1]);
  assert.equal(r.targetFpr, 0.01);
  // The CIFAR-10 image-folder copy is the same setting.
  assert.equal(defenseDefaults("resnet18", "cifar10-folder").unlearnLrSource, "paper");
  const g = defenseDefaults("resnet18", "gtsrb");
  assert.deepEqual([g.unlearn.lr, g.finetune.lr, g.finetune.gamma, g.targetFpr, g.unlearnLrSource], [2.5e-5, 0.05, 0.2, 0.001, "paper"]);
  assert.deepEqual([defenseDefaults("vgg16-bn", "cifar10").unlearn.lr, defenseDefaults("mobilenetv2", "cifar10").unlearn.lr], [8e-5, 5e-5]);
});

test("ResNet-20 on CIFAR-10: the paper's ResNet-18 rates as its own fixed defaults; elsewhere the canaries", () => {
  for (const dataset of ["cifar10", "cifar10-folder"]) {
    const d = defenseDefaults("resnet20", dataset);
    assert.deepEqual([d.unlearnLrSource, d.unlearn.lr, d.finetuneLrSource, d.finetune.lr, d.finetune.gamma], ["default", 1e-4, "fixed", 0.1, 0.1], dataset);
  }
  // Naming canaries (or "auto") brings the selection back over the fixed rate; a given rate wins.
  const r20 = defenseDefaults("resnet20", "cifar10-folder");
  assert.deepEqual([choosesUnlearnLr(r20, undefined, false), choosesUnlearnLr(r20, undefined, true), choosesUnlearnLr(r20, "auto", false), choosesUnlearnLr(r20, 3e-4, true)], [false, true, true, false]);
  assert.deepEqual([choosesUnlearnLr(defenseDefaults("compact-cnn", "fashion-mnist"), undefined, false), choosesUnlearnLr(defenseDefaults("resnet18", "cifar10"), undefined, false)], [true, false]);
  // The compact CNN's B on GTSRB: a fixed 1e-3 of our own (the canaries were inconclusive there).
  const cg = defenseDefaults("compact-cnn", "gtsrb");
  assert.deepEqual([cg.unlearnLrSource, cg.unlearn.lr, choosesUnlearnLr(cg, undefined, false), choosesUnlearnLr(cg, "auto", false)], ["default", 1e-3, false, true]);
  // No measurement backs them on GTSRB: the canaries choose B, and M' gets the generic rate.
  const g = defenseDefaults("resnet20", "gtsrb");
  assert.deepEqual([g.unlearnLrSource, g.finetuneLrSource, g.finetune.lr], ["canary", "fixed", 0.05]);
});

test("without a paper rate for the architecture and dataset, the canaries choose it", () => {
  for (const [model, dataset] of [["compact-cnn", "fashion-mnist"], ["compact-cnn", "cifar10-folder"], ["resnet18", "fashion-mnist"], ["vgg16-bn", "gtsrb"], ["vit", "cifar10"]] as const) {
    const d = defenseDefaults(model, dataset);
    assert.equal(d.unlearnLrSource, "canary", `${model} on ${dataset}`);
    assert.ok(d.unlearn.lr > 0, "a fallback rate is still given for direct library use");
  }
  // B: Adam for one epoch; M': SGD Nesterov, MultiStep [2, 4, 6, 8], 10 epochs.
  const d = defenseDefaults("compact-cnn", "fashion-mnist");
  assert.deepEqual([d.unlearn.epochs, d.finetune.epochs, d.finetune.milestones], [1, 10, [2, 4, 6, 8]]);
});

test("M''s rate: fixed 0.1 for the compact CNN on Fashion-MNIST and GTSRB, chosen elsewhere; fixed where the paper or a zoo default gives it", () => {
  for (const dataset of ["fashion-mnist", "gtsrb"]) {
    const d = defenseDefaults("compact-cnn", dataset);
    assert.deepEqual([d.finetuneLrSource, d.finetune.lr, d.finetune.gamma], ["fixed", 0.1, 0.1], `compact-cnn on ${dataset}`);
  }
  const c10 = defenseDefaults("compact-cnn", "cifar10-folder");
  assert.deepEqual([c10.finetuneLrSource, c10.finetune.lr], ["auto", 0.01], "compact-cnn on CIFAR-10: auto, over multiples of 0.01");
  for (const [model, dataset] of [["resnet18", "cifar10"], ["resnet20", "cifar10-folder"], ["vgg16-bn", "gtsrb"]] as const) {
    assert.equal(defenseDefaults(model, dataset).finetuneLrSource, "fixed", `${model} on ${dataset}`);
  }
  // Chosen when asked for, or by default where the default is to choose; a given rate wins.
  const cnn = defenseDefaults("compact-cnn", "cifar10-folder");
  const r18 = defenseDefaults("resnet18", "cifar10");
  assert.deepEqual([choosesFinetuneLr(cnn, undefined), choosesFinetuneLr(cnn, 0.01), choosesFinetuneLr(cnn, "auto")], [true, false, true]);
  assert.deepEqual([choosesFinetuneLr(r18, undefined), choosesFinetuneLr(r18, 0.1), choosesFinetuneLr(r18, "auto")], [false, false, true]);
  const fm = defenseDefaults("compact-cnn", "fashion-mnist");
  assert.deepEqual([choosesFinetuneLr(fm, undefined), choosesFinetuneLr(fm, "auto")], [false, true]);
});

test("the canaries are planted, and M''s selection starts, at the reference rate, whatever M''s default", () => {
  // The compact CNN's fixed 0.1 on Fashion-MNIST leaves both at 0.01, the rate they were developed at.
  const fm = defenseDefaults("compact-cnn", "fashion-mnist");
  assert.deepEqual([fm.referenceFinetuneLr, canaryFinetune(fm).lr, canaryFinetune(fm).gamma], [0.01, 0.01, 0.1]);
  assert.deepEqual(auxiliaryRateCandidates(fm), [0.01, 0.02, 0.05, 0.1]);
  assert.deepEqual(auxiliaryRateCandidates(defenseDefaults("compact-cnn", "cifar10-folder")), [0.01, 0.02, 0.05, 0.1]);
  // Elsewhere the reference is M''s own default rate.
  const r18 = defenseDefaults("resnet18", "cifar10");
  assert.deepEqual([r18.referenceFinetuneLr, canaryFinetune(r18).lr], [0.1, 0.1]);
  assert.deepEqual(auxiliaryRateCandidates(defenseDefaults("resnet20", "gtsrb")), [0.05, 0.1, 0.25, 0.5]);
  // ResNet-20 on CIFAR-10: M' at 0.1, its canaries at the generic 0.05 that session 12 measured them at.
  const r20 = defenseDefaults("resnet20", "cifar10-folder");
  assert.deepEqual([r20.finetune.lr, canaryFinetune(r20).lr], [0.1, 0.05]);
});
