// TorchScript modules written by real PyTorch (scripted and traced) as nn Modules: PyTorch's
// logits, state dicts, cloning, finetuning with our optimizers, saving, and too-new files.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { F, dispose, memory, noGrad, tidy, tensor, libtorchVersion } from "../../src/engine/index.js";
import { liveScriptModules } from "../../src/engine/jit.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { SGD } from "../../src/optim/index.js";
import { assertClose, expected, fixture, get } from "../helpers/pytorch-fixtures.js";

test("scripted and traced TorchScript files give PyTorch's logits, with the module's tensors as state", async () => {
  const before = memory().numTensors;
  const modules = liveScriptModules();
  const exp = await expected();
  for (const file of ["tiny-mixer-scripted.pt", "tiny-mixer-traced.pt"]) {
    const m = TorchScriptModule.load(fixture(file));
    try {
      assert.equal(m.training, false);
      noGrad(() =>
        tidy(() => assertClose(m.forward(get(exp, "input.28x28x1")), get(exp, "logits.tiny-mixer"), 1e-4, file)),
      );
      const keys = [...m.stateDict().keys()];
      for (const k of [
        "stem.weight",
        "stem_norm.running_var",
        "blocks.0.scale",
        "blocks.1.norm2.num_batches_tracked",
        "head.bias",
      ])
        assert.ok(keys.includes(k), `${file}: ${k} in ${keys.join(", ")}`);
      assert.equal(m.parameters().length, 2 + 2 + 2 * 9 + 2);
      assert.match(m.toString(), /TorchScriptModule\(\n {2}\(stem\): ScriptSubmodule\(\)/);
    } finally {
      m.dispose();
    }
  }
  dispose(exp);
  assert.equal(memory().numTensors, before);
  assert.equal(liveScriptModules(), modules);
});

test("clone is independent, loadStateDict and in-place optimizer steps change what forward computes, save round-trips", async () => {
  const before = memory().numTensors;
  const exp = await expected();
  const x = get(exp, "input.28x28x1");
  const dir = await mkdtemp(join(tmpdir(), "bx-ts-"));
  const m = TorchScriptModule.load(fixture("tiny-mixer-scripted.pt"));
  const c = m.clone();
  try {
    const y0 = noGrad(() => m.forward(x));
    noGrad(() => c.getModule("head").getParameter("bias")?.add_(1));
    noGrad(() => tidy(() => assertClose(m.forward(x), y0, 0, "original after changing the clone")));
    noGrad(() => tidy(() => assertClose(c.forward(x), y0.add(1), 1e-5, "clone with bias + 1")));

    // Finetune the clone for a few steps: the loss must fall and the original stay put.
    c.train();
    const y = tensor(new BigInt64Array([1n, 2n, 3n, 4n]));
    const opt = new SGD(c.parameters(), { lr: 0.05, momentum: 0.9 });
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      losses.push(
        tidy(() => {
          opt.zeroGrad();
          const loss = F.crossEntropy(c.forward(x), y);
          loss.backward();
          opt.step();
          return loss.item();
        }),
      );
    }
    opt.dispose();
    assert.ok((losses[7] as number) < (losses[0] as number) * 0.8, `losses ${losses.join(", ")}`);
    c.eval();
    noGrad(() => tidy(() => assertClose(m.forward(x), y0, 0, "original after finetuning the clone")));

    // loadStateDict copies into the script's own tensors.
    const m2 = TorchScriptModule.load(fixture("tiny-mixer-traced.pt"));
    m2.loadStateDict(c.stateDict());
    const yc = noGrad(() => c.forward(x));
    noGrad(() => tidy(() => assertClose(m2.forward(x), yc, 1e-5, "traced module with the clone's weights")));
    m2.dispose();

    // Saved as a TorchScript file with the finetuned weights.
    c.save(join(dir, "c.pt"));
    const back = TorchScriptModule.load(join(dir, "c.pt"));
    noGrad(() => tidy(() => assertClose(back.forward(x), yc, 0, "saved and reloaded")));
    back.dispose();
    dispose([y0, y, yc]);
  } finally {
    m.dispose();
    c.dispose();
    dispose(exp);
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});

test("a TorchScript file too new for the linked libtorch, and non-TorchScript files, get one clear error", () => {
  assert.throws(
    () => TorchScriptModule.load(fixture("tiny-mixer-v99.pt")),
    (e: Error) => {
      assert.match(e.message, /tiny-mixer-v99\.pt has file format version 99/);
      assert.ok(e.message.includes(`libtorch ${libtorchVersion()} reads (up to version 10)`), e.message);
      assert.match(e.message, /BADEXPERT_LIBTORCH=/);
      return true;
    },
  );
  assert.throws(
    () => TorchScriptModule.load(fixture("compact-cnn-wrapped.pt")),
    /holds no TorchScript code \(a torch\.save file\? import a state_dict with --weights/,
  );
  assert.throws(() => TorchScriptModule.load(fixture("compact-cnn.safetensors")), /is not a TorchScript file/);
  assert.throws(() => TorchScriptModule.load(fixture("nope.pt")), /cannot read .*nope\.pt/);
});
