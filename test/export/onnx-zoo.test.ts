// Every zoo architecture, exported as a whole detector (three different random networks),
// scores like the libtorch detector on onnxruntime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inferenceMode, manualSeed, memory, rand, tidy } from "../../src/engine/index.js";
import { createModel, modelNames } from "../../src/models/registry.js";
import { BadExpertDetector } from "../../src/defense/detector.js";
import { detectorGraph, modelGraph } from "../../src/export/detector-graph.js";
import { encodeModel, DataType } from "../../src/export/onnx-proto.js";
import { OnnxDetector } from "../../src/export/onnx-detector.js";
import { floatTensor, openSession } from "../../src/export/onnx-runtime.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import {
  assertAgree,
  assertWellFormed,
  close,
  onnxCheckerMissing,
  runOnnxChecker,
  splittingThreshold,
} from "./agreement.js";

// Small inputs: the smallest size each architecture takes (VGG needs 32 for its five pools).
const SIZES: Record<string, { size: number; channels: number }> = {
  resnet18: { size: 8, channels: 3 },
  resnet20: { size: 8, channels: 3 },
  "preact-resnet18": { size: 8, channels: 3 },
  "vgg16-bn": { size: 32, channels: 3 },
  mobilenetv2: { size: 8, channels: 3 },
  vit: { size: 8, channels: 3 },
  "compact-cnn": { size: 12, channels: 1 },
};

test("the size table covers every zoo architecture", () => {
  assert.deepEqual(Object.keys(SIZES).sort(), modelNames().sort());
});

/** The libtorch detector on a random batch of n images, with a threshold that splits it. */
function randomDetector(name: string, n: number) {
  const { size, channels } = SIZES[name] ?? { size: 32, channels: 3 };
  const spec = { name, numClasses: 10, inChannels: channels, imageSize: size };
  const parts = { model: createModel(name, spec), expert: createModel(name, spec), auxiliary: createModel(name, spec) };
  const preprocessing = {
    imageSize: [size, size] as [number, number],
    channels,
    mean: new Array<number>(channels).fill(0.45),
    std: new Array<number>(channels).fill(0.25),
  };
  const raw = BadExpertDetector.uncalibrated(parts, {
    spec,
    preprocessing,
    classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
    rule: "triangle",
  });
  const x = rand([n, channels, size, size]);
  const pixels = x.data();
  assert.ok(pixels instanceof Float32Array);
  const det = raw.withDecision("triangle", splittingThreshold(tidy(() => raw.scoreBatch(x)).score));
  return { det, x, pixels, size, channels };
}

// Each architecture's own modules, through M alone (the three networks of a detector go
// through the same exporter; the whole detector is checked below and in onnx-bundle.test.ts).
for (const name of modelNames()) {
  test(`${name}: the exported model gives libtorch's logits on onnxruntime`, async () => {
    const before = memory().numTensors;
    manualSeed(7);
    const n = 4;
    const { size, channels } = SIZES[name] ?? { size: 32, channels: 3 };
    const model = createModel(name, { numClasses: 10, inChannels: channels, imageSize: size }).eval();
    const preprocessing = {
      imageSize: [size, size] as [number, number],
      channels,
      mean: new Array<number>(channels).fill(0.45),
      std: new Array<number>(channels).fill(0.25),
    };
    const x = rand([n, channels, size, size]);
    const pixels = x.data();
    assert.ok(pixels instanceof Float32Array);
    const dir = await mkdtemp(join(tmpdir(), "bx-onnx-zoo-"));
    try {
      const [logits, pred] = tidy(() => {
        const l = inferenceMode(() => model.forward(x.sub(0.45).div(0.25)));
        return [l.data(), l.argmax(1).data()];
      });
      assert.ok(logits instanceof Float32Array && pred instanceof BigInt64Array);
      const bytes = encodeModel(
        modelGraph(model, {
          preprocessing,
          architecture: name,
          classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
        }),
      );
      assertWellFormed(bytes, {
        inputDims: ["batch", channels, size, size],
        outputs: [
          ["logits", DataType.FLOAT],
          ["pred", DataType.INT64],
        ],
      });
      if (onnxCheckerMissing() === null) await runOnnxChecker(bytes, dir);
      const session = await openSession(bytes, { threads: 1 });
      try {
        const r = await session.run({ images: floatTensor(pixels, [n, channels, size, size]) });
        const ol = r.logits?.data;
        const op = r.pred?.data;
        assert.ok(ol instanceof Float32Array && op instanceof BigInt64Array);
        assert.equal(ol.length, logits.length);
        for (let i = 0; i < logits.length; i++)
          assert.ok(
            close(ol[i] as number, logits[i] as number, 1e-4, 1e-2),
            `logit ${i}: onnxruntime ${ol[i]}, libtorch ${logits[i]}`,
          );
        assert.deepEqual(Array.from(op), Array.from(pred));
      } finally {
        await session.release();
      }
    } finally {
      x.dispose();
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(memory().numTensors, before);
  });
}

for (const name of ["compact-cnn"]) {
  test(`${name}: the whole exported detector agrees with libtorch, at any batch size`, async () => {
    const before = memory().numTensors;
    manualSeed(8);
    const n = 6;
    const { det, x, pixels, size, channels } = randomDetector(name, n);
    const dir = await mkdtemp(join(tmpdir(), "bx-onnx-det-"));
    let onnx: OnnxDetector | undefined;
    try {
      const torch = tidy(() => det.scoreBatch(x));
      assert.ok(torch.flagged.includes(1) && torch.flagged.includes(0), "the threshold splits the batch");
      const bytes = encodeModel(detectorGraph(det));
      assertWellFormed(bytes, {
        inputDims: ["batch", channels, size, size],
        outputs: [
          ["pred", DataType.INT64],
          ["expert_confidence", DataType.FLOAT],
          ["expert_complement", DataType.FLOAT],
          ["auxiliary_confidence", DataType.FLOAT],
          ["score", DataType.DOUBLE],
          ["flagged", DataType.BOOL],
        ],
      });
      if (onnxCheckerMissing() === null) await runOnnxChecker(bytes, dir);
      onnx = await OnnxDetector.fromDetector(det, { threads: 1 });
      assertAgree(torch, await onnx.scoreBatch(pixels, n), name);
      // The batch dimension is dynamic: one image alone gives the same results.
      const one = await onnx.scoreBatch(pixels.subarray(0, channels * size * size), 1);
      assert.equal(one.pred[0], torch.pred[0]);
      assert.ok(close(one.score[0] as number, torch.score[0] as number, 1e-4));
      assert.equal(one.flagged[0], torch.flagged[0]);
    } finally {
      await onnx?.release();
      x.dispose();
      det.dispose();
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(memory().numTensors, before);
  });
}

test("onnx.checker", { skip: onnxCheckerMissing() ?? false }, () => {
  // Runs inside the tests above; this entry only reports whether it could.
  assert.equal(onnxCheckerMissing(), null);
});

test("a model imported as TorchScript (the compact CNN scripted by PyTorch) exports, computing libtorch's logits", async () => {
  const before = memory().numTensors;
  const model = TorchScriptModule.load(fixture("compact-cnn-8-scripted.pt"));
  try {
    const preprocessing = { imageSize: [8, 8] as [number, number], channels: 1, mean: [0.5], std: [0.25] };
    const bytes = encodeModel(
      modelGraph(model, {
        preprocessing,
        architecture: "torchscript",
        classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
      }),
    );
    const x = rand([5, 1, 8, 8]);
    const pixels = x.data() as Float32Array;
    const want = inferenceMode(() => tidy(() => model.forward(x.sub(0.5).div(0.25)).data() as Float32Array));
    x.dispose();
    const session = await openSession(bytes, { threads: 1 });
    try {
      const got = (await session.run({ images: floatTensor(pixels, [5, 1, 8, 8]) })).logits?.data as Float32Array;
      assert.equal(got.length, 50);
      for (let i = 0; i < 50; i++)
        assert.ok(
          close(got[i] as number, want[i] as number, 1e-4, 1e-4),
          `logit ${i}: onnxruntime ${got[i]}, libtorch ${want[i]}`,
        );
    } finally {
      await session.release();
    }
  } finally {
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
});
