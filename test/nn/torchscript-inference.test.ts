// A TorchScript model scores in inference mode after it has been trained in the same process (the
// defense finetunes B and M' and calibrates them at once): libtorch's graph executor must not
// reuse a plan profiled in training, whose autodiff subgraphs save inputs for backward and fail on
// inference tensors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { F, inferenceMode, memory, noGrad, rand, tensor, tidy } from "../../src/engine/index.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { assertClose, fixture } from "../helpers/pytorch-fixtures.js";

test("scripted and traced models trained for a step then score in inference mode, as they do without grad", () => {
  const before = memory().numTensors;
  for (const file of ["ds-resnet-scripted.pt", "patch-transformer-scripted.pt", "patch-transformer-traced.pt"]) {
    const m = TorchScriptModule.load(fixture(file));
    const x = rand([4, 1, 28, 28]);
    const y = tensor(new BigInt64Array([1n, 2n, 3n, 4n]));
    try {
      m.train();
      for (let i = 0; i < 2; i++) tidy(() => F.crossEntropy(m.forward(x), y).backward());
      m.eval();
      const want = noGrad(() => m.forward(x));
      const got = inferenceMode(() => m.forward(x));
      tidy(() => assertClose(got, want, 0, file));
      got.dispose();
      want.dispose();
    } finally {
      x.dispose();
      y.dispose();
      m.dispose();
    }
  }
  assert.equal(memory().numTensors, before);
});
