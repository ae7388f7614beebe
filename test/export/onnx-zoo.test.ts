// Every zoo architecture, exported as a whole detector (three different random networks),
// scores like the libtorch detector on onnxruntime.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, rand, tidy } from "../../src/engine/index.js";
import { createModel, modelNames } from "../../src/models/registry.js";
import { BadExpertDetector } from "../../src/defense/detector.js";
import { detectorGraph, modelGraph } from "../../src/export/detector-graph.js";
import { encodeModel, DataType } from "../../src/export/onnx-proto.js";
import { OnnxDetector } from "../../src/export/onnx-detector.js";
import { floatTensor, openSession } from "../../src/export/onnx-runtime.js";
import { assertAgree, assertWellFormed, close, onnxCheckerMissing, runOnnxChecker, splittingThreshold } from "./agreement.js";

// Small inputs: the smallest size each architecture takes (VGG needs 32 for its five pools).
const SIZES: Record<string, { size: number; channels: number }> = {
  resnet18: { size: 8, channels: 3 },
  "preact-resnet18": { size: 8, channels: 3 },
  "vgg16-bn": { size: 32, channels: 3 },
  mobilenetv2: { size: 8, channels: 3 },
  vit: { size: 8, channels: 3 },
  "compact-cnn": { size: 12, channels: 1 },
};

test("the size table covers every zoo architecture", () => {
  assert.deepEqual(Object.keys(SIZES).sort(), modelNames().sort());
});

for (const name of modelNames()) {
  const { size, channels } = SIZES[name] ?? { size: 32, channels: 3 };
  test(`${name}: the exported detector agrees with libtorch on onnxruntime`, async () => {
    const before = memory().numTensors;
    manualSeed(7);
    const spec = { name, numClasses: 10, inChannels: channels, imageSize: size };
    const parts = { model: createModel(name, spec), expert: createModel(name, spec), auxiliary: createModel(name, spec) };
    const preprocessing = { imageSize: [size, size] as [number, number], channels, mean: new Array<number>(channels).fill(0.45), std: new Array<number>(channels).fill(0.25) };
    const raw = BadExpertDetector.uncalibrated(parts, { spec, preprocessing, classNames: Array.from({ length: 10 }, (_, i) => `c${i}`), rule: "triangle" });
    const n = 6;
    const x = rand([n, channels, size, size]);
    const pixels = x.data();
    assert.ok(pixels instanceof Float32Array);
    const det = raw.withDecision("triangle", splittingThreshold(tidy(() => raw.scoreBatch(x)).score));
    const dir = await mkdtemp(join(tmpdir(), "bx-onnx-zoo-"));
    let onnx: OnnxDetector | undefined;
    try {
      const torch = tidy(() => det.scoreBatch(x));
      assert.ok(torch.flagged.includes(1) && torch.flagged.includes(0), "the threshold splits the batch");
      const bytes = encodeModel(detectorGraph(det));
      assertWellFormed(bytes, {
        inputDims: ["batch", channels, size, size],
        outputs: [["pred", DataType.INT64], ["expert_confidence", DataType.FLOAT], ["auxiliary_confidence", DataType.FLOAT], ["score", DataType.DOUBLE], ["flagged", DataType.BOOL]],
      });
      if (onnxCheckerMissing() === null) await runOnnxChecker(bytes, dir);
      onnx = await OnnxDetector.fromDetector(det, { threads: 1 });
      assertAgree(torch, await onnx.scoreBatch(pixels, n), name);
      // The batch dimension is dynamic: one image at a time gives the same results.
      const one = await onnx.scoreBatch(pixels.subarray(0, channels * size * size), 1);
      assert.equal(one.pred[0], torch.pred[0]);
      assert.ok(close(one.score[0] as number, torch.score[0] as number, 1e-4));

      // M alone: logits and pred.
      const logits = tidy(() => det.model.forward(x.sub(0.45).div(0.25)).data());
      assert.ok(logits instanceof Float32Array);
      const session = await openSession(encodeModel(modelGraph(det.model, { preprocessing, architecture: name, classNames: det.info.classNames })), { threads: 1 });
      const r = await session.run({ images: floatTensor(pixels, [n, channels, size, size]) });
      const ol = r.logits?.data;
      assert.ok(ol instanceof Float32Array);
      for (let i = 0; i < logits.length; i++) assert.ok(close(ol[i] as number, logits[i] as number, 1e-4, 1e-3), `logit ${i}: ${ol[i]} vs ${logits[i]}`);
      assert.deepEqual(Array.from(r.pred?.data as BigInt64Array, Number), Array.from(torch.pred));
      await session.release();
    } finally {
      await onnx?.release();
      x.dispose();
      det.dispose();
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(memory().numTensors, before);
  });
}
