// TorchScript models written by real PyTorch 2.x (test/fixtures/pytorch/make_export.py), scripted
// and traced, exported to ONNX: M alone gives PyTorch's own logits, and the whole detector (B and
// M' finetuned copies of the TorchScript model) scores 256 Fashion-MNIST images as libtorch does.
// An operator outside the supported set is refused, naming the operator and where it occurs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dispose, memory, noGrad, tensor, tidy } from "../../src/engine/index.js";
import { liveScriptModules } from "../../src/engine/jit.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { fitBadExpert } from "../../src/defense/fit.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { modelGraph } from "../../src/export/detector-graph.js";
import { encodeModel } from "../../src/export/onnx-proto.js";
import { OnnxDetector } from "../../src/export/onnx-detector.js";
import { floatTensor, openSession } from "../../src/export/onnx-runtime.js";
import { loadTensors } from "../../src/io/weights.js";
import { assertAgree, close } from "./agreement.js";
import { fixture, get } from "../helpers/pytorch-fixtures.js";
import { QUICK_FIT } from "../helpers/quick-fit.js";

const ARCHITECTURES = ["ds-resnet", "gelu-convnet", "patch-transformer"] as const;
const spec = { name: "torchscript", numClasses: 10, inChannels: 1, imageSize: 28 };
const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
const classNames = Array.from({ length: 10 }, (_, i) => `class ${i}`);

/** M alone on onnxruntime: logits of float32 [n, 1, 28, 28] images (no normalisation: mean 0, std 1). */
async function onnxLogits(m: TorchScriptModule, x: Float32Array, n: number): Promise<Float32Array> {
  const bytes = encodeModel(
    modelGraph(m, {
      preprocessing: { ...preprocessing, mean: [0], std: [1] },
      architecture: "torchscript",
      classNames,
    }),
  );
  const session = await openSession(bytes, { threads: 1 });
  try {
    const out = (await session.run({ images: floatTensor(x, [n, 1, 28, 28]) })).logits?.data;
    assert.ok(out instanceof Float32Array);
    return out;
  } finally {
    await session.release();
  }
}

test("M alone, scripted and traced: the ONNX graph gives PyTorch's eager logits", async () => {
  const before = memory().numTensors;
  const modules = liveScriptModules();
  const exp = (await loadTensors(fixture("export-expected.safetensors"))).tensors;
  try {
    const x = get(exp, "input.28x28x1");
    const pixels = x.data() as Float32Array;
    for (const arch of ARCHITECTURES) {
      const want = get(exp, `logits.${arch}`).data() as Float32Array;
      for (const kind of ["scripted", "traced"]) {
        const m = TorchScriptModule.load(fixture(`${arch}-${kind}.pt`));
        try {
          const got = await onnxLogits(m, pixels, x.shape[0] as number);
          assert.equal(got.length, want.length);
          for (let i = 0; i < want.length; i++)
            assert.ok(
              close(got[i] as number, want[i] as number, 1e-4, 1e-3),
              `${arch} ${kind}: logit ${i}: onnxruntime ${got[i]}, PyTorch ${want[i]}`,
            );
        } finally {
          m.dispose();
        }
      }
    }
  } finally {
    dispose(exp);
  }
  assert.equal(memory().numTensors, before);
  assert.equal(liveScriptModules(), modules);
});

test("every fixture architecture, scripted and traced: the exported detector's scores and predictions equal libtorch's on 256 images", async () => {
  const before = memory().numTensors;
  const modules = liveScriptModules();
  const fmnist = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(fmnist.count, { seed: 1, reserved: 256, calibration: 200 });
  const evalSet = subset(fmnist, s.evaluation.subarray(0, 256));
  for (const arch of ARCHITECTURES) {
    for (const kind of ["scripted", "traced"]) {
      const what = `${arch} ${kind}`;
      const m = TorchScriptModule.load(fixture(`${arch}-${kind}.pt`));
      const det = await fitBadExpert(
        m,
        { spec, preprocessing, classNames },
        subset(fmnist, s.reserved),
        subset(fmnist, s.calibration),
        QUICK_FIT,
      );
      m.dispose();
      let onnx: OnnxDetector | null = null;
      try {
        assert.ok(
          det.expert instanceof TorchScriptModule && det.auxiliary instanceof TorchScriptModule,
          `${what}: B and M' are TorchScript copies`,
        );
        // B and M' were finetuned: their weights are not M's, so a graph that read M's weights for them would not agree below.
        const differs = noGrad(() =>
          tidy(() => {
            const key = [...det.model.stateDict().keys()].find((k) => k.endsWith("weight")) as string;
            const [wm, wb] = [det.model.stateDict().get(key), det.expert.stateDict().get(key)];
            return wm !== undefined && wb !== undefined && (wm.sub(wb).abs().max().item() as number);
          }),
        );
        assert.ok(typeof differs === "number" && differs > 0, `${what}: B's weights differ from M's`);
        const torch = det.scoreDataset(evalSet);
        onnx = await OnnxDetector.fromDetector(det, { threads: 1 });
        assertAgree(torch, await onnx.scoreDataset(evalSet, { batchSize: 128 }), what);
      } finally {
        await onnx?.release();
        det.dispose();
      }
    }
  }
  assert.equal(memory().numTensors, before);
  assert.equal(liveScriptModules(), modules);
});

test("an operator outside the supported set is refused, naming it and where it occurs; nothing leaks", () => {
  const before = memory().numTensors;
  const m = TorchScriptModule.load(fixture("unsupported-op-scripted.pt"));
  try {
    assert.throws(
      () => modelGraph(m, { preprocessing, architecture: "torchscript", classNames }),
      (e: Error) => {
        assert.match(
          e.message,
          /^onnx export: model \(TorchScript\): aten::cumsum in head \(code\/__torch__\.py:\d+: torch\.cumsum\) is not supported; the supported operators are listed in docs\/export\.md/,
        );
        assert.ok(e.message.length < 400, `a short message: ${e.message}`);
        return true;
      },
    );
    // libtorch itself runs the model: the refusal is the exporter's, not a broken file.
    const shape = noGrad(() =>
      tidy(() => m.forward(tensor(new Float32Array(28 * 28), { shape: [1, 1, 28, 28] })).shape),
    );
    assert.deepEqual(shape, [1, 10]);
  } finally {
    m.dispose();
  }
  assert.equal(memory().numTensors, before);
});
