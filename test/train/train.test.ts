// Training, evaluation, checkpoints and resume on a real slice of Fashion-MNIST.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, tidy } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset, splitIndices } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { fit } from "../../src/train/trainer.js";
import { evaluateModel } from "../../src/train/evaluate.js";
import { DEFAULT_CONFIG, type TrainConfig } from "../../src/train/config.js";
import { saveCheckpoint, loadCheckpoint } from "../../src/train/checkpoint.js";
import { saveTrainState, loadTrainState } from "../../src/train/resume.js";
import type { Module } from "../../src/nn/index.js";

const norm = { mean: [0.286], std: [0.353] };
const config: TrainConfig = {
  ...DEFAULT_CONFIG,
  epochs: 2,
  batchSize: 64,
  optimizer: "adam",
  lr: 2e-3,
  weightDecay: 0,
  nesterov: false,
  schedule: "cosine",
  seed: 3,
  augment: { cropPadding: 2 },
};

async function slices() {
  const train = await loadDataset("fashion-mnist", { split: "train" });
  const test = await loadDataset("fashion-mnist", { split: "test" });
  return {
    train: subset(train, splitIndices(train.count, { s: 1500 }, 1).s ?? []),
    test: subset(test, splitIndices(test.count, { s: 1000 }, 1).s ?? []),
  };
}

function spec() {
  return { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
}

function weightsOf(m: Module): number[] {
  return tidy(() => [...m.stateDict().values()].flatMap((t) => t.to({ dtype: "float64" }).toArray()));
}

test("two epochs on 1,500 real images learn the task; memory is flat", async () => {
  const { train, test: testSet } = await slices();
  const before = memory().numTensors;
  manualSeed(3);
  const model = createModel("compact-cnn", spec());
  const params = memory().numTensors;
  // An "attack" test set whose every label is class 0: its accuracy is the share sent to class 0.
  const toZero = { ...testSet, labels: new Int32Array(testSet.count) };
  const history = await fit(model, train, config, {
    testSet,
    attackTestSet: toZero,
    normalization: norm,
    silent: true,
  });
  assert.equal(history.length, 2);
  assert.ok((history[1]?.trainLoss ?? 9) < (history[0]?.trainLoss ?? 0), "loss falls from epoch 1 to 2");
  const r = evaluateModel(model, testSet, { normalization: norm });
  assert.ok(r.accuracy > 0.7, `test accuracy ${r.accuracy} should exceed 70% (chance is 10%)`);
  assert.equal(history[1]?.testAccuracy, r.accuracy);
  const toZeroShare = r.predictions.filter((p) => p === 0).length / testSet.count;
  assert.equal(history[1]?.attackSuccessRate, toZeroShare, "each epoch records the accuracy on the attack's test set");
  assert.ok(toZeroShare > 0.03 && toZeroShare < 0.2, `share predicted as class 0: ${toZeroShare}`);
  assert.equal(memory().numTensors, params, "no tensors left behind by training");
  model.dispose();
  assert.equal(memory().numTensors, before);
});

test("checkpoints round-trip: same predictions after reload; bad files give clear errors", async () => {
  const { test: testSet } = await slices();
  const dir = await mkdtemp(join(tmpdir(), "bx-ckpt-"));
  try {
    manualSeed(5);
    const model = createModel("compact-cnn", spec());
    const a = evaluateModel(model, testSet, { normalization: norm });
    await saveCheckpoint(dir, model, {
      model: spec(),
      dataset: { name: "fashion-mnist" },
      preprocessing: { imageSize: [28, 28], channels: 1, ...norm },
      classNames: testSet.classNames,
      training: {},
      metrics: { cleanAccuracy: a.accuracy },
    });
    model.dispose();
    const { model: loaded, meta } = await loadCheckpoint(dir);
    const b = evaluateModel(loaded, testSet, { normalization: norm });
    assert.deepEqual(Array.from(b.predictions), Array.from(a.predictions));
    assert.equal(meta.metrics.cleanAccuracy, a.accuracy);
    loaded.dispose();
    const json = JSON.parse(await readFile(join(dir, "model.json"), "utf8")) as {
      model: { name: string };
      preprocessing: object;
    };
    json.model.name = "resnet18";
    await writeFile(
      join(dir, "model.json"),
      JSON.stringify({
        ...json,
        model: { ...json.model, imageSize: 32, inChannels: 1 },
        preprocessing: { ...json.preprocessing, imageSize: [32, 32] },
      }),
    );
    await assert.rejects(loadCheckpoint(dir), /does not fit a resnet18/);
    await assert.rejects(loadCheckpoint(join(dir, "missing")), /model\.json not found/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("resuming after epoch 1 gives exactly the weights of an uninterrupted 2-epoch run", async () => {
  const { train } = await slices();
  const dir = await mkdtemp(join(tmpdir(), "bx-resume-"));
  try {
    manualSeed(3);
    const straight = createModel("compact-cnn", spec());
    await fit(straight, train, config, { normalization: norm, silent: true });
    const expected = weightsOf(straight);
    straight.dispose();

    manualSeed(3);
    const first = createModel("compact-cnn", spec());
    // The run must really be interrupted: a .catch() here would pass if nothing threw.
    await assert.rejects(
      fit(
        first,
        train,
        { ...config },
        {
          normalization: norm,
          silent: true,
          onEpoch: async (rec, st) => {
            if (rec.epoch !== 1) return;
            await saveCheckpoint(dir, first, {
              model: spec(),
              dataset: { name: "fashion-mnist" },
              preprocessing: { imageSize: [28, 28], channels: 1, ...norm },
              classNames: train.classNames,
              training: {},
              metrics: {},
            });
            await saveTrainState(dir, {
              epochsDone: 1,
              config,
              history: [rec],
              optimizer: st.optimizer,
              schedule: st.schedule,
            });
            throw new Error("interrupted");
          },
        },
      ),
      /^Error: interrupted$/,
    );
    first.dispose();

    const state = await loadTrainState(dir);
    const { model: resumed } = await loadCheckpoint(dir);
    await fit(resumed, train, state.config, {
      normalization: norm,
      silent: true,
      startEpoch: state.epochsDone,
      restore: state.restore,
    });
    const got = weightsOf(resumed);
    resumed.dispose();
    assert.equal(got.length, expected.length);
    let maxDiff = 0;
    for (let i = 0; i < got.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs((got[i] as number) - (expected[i] as number)));
    assert.ok(maxDiff < 1e-6, `resumed weights differ from the uninterrupted run by up to ${maxDiff}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("progress lines name the model being trained when given a label, and only the epoch without one", async () => {
  const full = await loadDataset("fashion-mnist", { split: "train" });
  const tiny = subset(full, splitIndices(full.count, { s: 128 }, 2).s ?? []);
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array): boolean => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  const before = memory().numTensors;
  try {
    for (const progressLabel of ["B (backdoor expert, unlearning)", undefined]) {
      manualSeed(4);
      const model = createModel("compact-cnn", spec());
      await fit(
        model,
        tiny,
        { ...config, epochs: 1 },
        { normalization: norm, ...(progressLabel ? { progressLabel } : {}) },
      );
      for (const t of model.stateDict().values()) t.dispose();
    }
  } finally {
    process.stderr.write = write;
  }
  assert.equal(memory().numTensors, before);
  const text = lines.join("");
  assert.match(text, /B \(backdoor expert, unlearning\), epoch 1\/1 128\/128/);
  assert.match(text, /(^|[\r\n]|\[[#.]+\] )epoch 1\/1 128\/128/m, "no label: the epoch alone");
});

test("warmup scales the first step by 1/steps of the scheduled rate, and is checked", async () => {
  const { train } = await slices();
  const plain: TrainConfig = { ...config, optimizer: "sgd", momentum: 0, nesterov: false, lr: 0.05, schedule: "none" };
  const stepsPerEpoch = Math.ceil(train.count / plain.batchSize);
  // One step from the same start on the same batch: only the rate differs, so the weight change
  // of the warmed-up step is the plain step's divided by the warmup's length in steps.
  // Parameters only: BatchNorm's running statistics move whatever the rate.
  const params = (m: Module) => tidy(() => m.parameters().flatMap((t) => t.to({ dtype: "float64" }).toArray()));
  const firstStep = async (c: TrainConfig) => {
    manualSeed(11);
    const model = createModel("compact-cnn", spec());
    const before = params(model);
    await fit(model, train, c, { normalization: norm, silent: true, afterStep: () => true });
    const after = params(model);
    model.dispose();
    return after.map((w, i) => w - (before[i] as number));
  };
  const full = await firstStep(plain);
  const warmed = await firstStep({ ...plain, warmupEpochs: 1 });
  const norm2 = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(norm2(full) > 0, "the plain step moves the weights");
  const ratio = norm2(warmed) / norm2(full);
  assert.ok(Math.abs(ratio * stepsPerEpoch - 1) < 1e-3, `warmed/plain step ${ratio}, expected 1/${stepsPerEpoch}`);
  await assert.rejects(
    fit(
      createModel("compact-cnn", spec()),
      train,
      { ...plain, warmupEpochs: 3 },
      { normalization: norm, silent: true },
    ),
    /warmupEpochs must be in \[0, epochs = 2\], got 3/,
  );
});
