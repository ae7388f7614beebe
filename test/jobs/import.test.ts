// `import` end to end on files written by real PyTorch: checkpoints that load to PyTorch's
// logits, one clear error for a key mismatch, and BaDExpert (defend -> evaluate-defense) on an
// imported TorchScript model whose bundle reloads to identical scores.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dispose, memory, noGrad, tidy } from "../../src/engine/index.js";
import { liveScriptModules } from "../../src/engine/jit.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { importModel, readClassNames } from "../../src/jobs/import.js";
import { readStateDictFile } from "../../src/io/state-dict-file.js";
import { saveTensors } from "../../src/io/weights.js";
import { loadCheckpoint } from "../../src/train/checkpoint.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { loadBundle, saveBundle } from "../../src/defense/bundle.js";
import { fitBadExpert } from "../../src/defense/fit.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { assertClose, expected, fixture, get } from "../helpers/pytorch-fixtures.js";
import { QUICK_FIT } from "../helpers/quick-fit.js";

const quiet = (): void => {};
const FMNIST = { input: [1, 28, 28] as [number, number, number], mean: [0.286], std: [0.353] };

test("imported checkpoints (wrapped torch.save state_dict; TorchScript) load back to PyTorch's logits", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-import-"));
  const exp = await expected();
  try {
    const classNames = await readClassNames("10");
    await importModel({
      out: join(dir, "cnn"),
      weights: fixture("compact-cnn-wrapped.pt"),
      arch: "compact-cnn",
      ...FMNIST,
      classNames,
      log: quiet,
    });
    await importModel({
      out: join(dir, "ts"),
      torchscript: fixture("tiny-mixer-scripted.pt"),
      ...FMNIST,
      classNames,
      log: quiet,
    });
    assert.ok(existsSync(join(dir, "ts", "model.torchscript.pt")));
    for (const [name, logits] of [
      ["cnn", "logits.compact-cnn"],
      ["ts", "logits.tiny-mixer"],
    ] as const) {
      const { model, meta } = await loadCheckpoint(join(dir, name));
      assert.equal(meta.model.name, name === "ts" ? "torchscript" : "compact-cnn");
      assert.deepEqual(meta.classNames, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
      noGrad(() => tidy(() => assertClose(model.forward(get(exp, "input.28x28x1")), get(exp, logits), 1e-4, name)));
      model.dispose();
    }
    // The program defines the computation: a checkpoint records its SHA-256, and another program
    // with the same parameter names (the traced save of the same network) is refused.
    const { meta } = await loadCheckpoint(join(dir, "ts")).then((c) => (c.model.dispose(), c));
    assert.match(meta.programSha256 ?? "", /^[0-9a-f]{64}$/);
    await copyFile(fixture("tiny-mixer-traced.pt"), join(dir, "ts", "model.torchscript.pt"));
    await assert.rejects(
      loadCheckpoint(join(dir, "ts")),
      /model\.torchscript\.pt does not match the SHA-256 recorded in .*model\.json: the program was changed or replaced/,
    );
  } finally {
    dispose(exp);
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});

test("a key mismatch lists every missing and unexpected key and names the closest architecture; bad options are named", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-import-"));
  try {
    const classNames = await readClassNames("10");
    await assert.rejects(
      importModel({
        out: dir,
        weights: fixture("compact-cnn.safetensors"),
        arch: "preact-resnet18",
        ...FMNIST,
        classNames,
        log: quiet,
      }),
      (e: Error) => {
        assert.match(e.message, /does not fit --arch preact-resnet18/);
        assert.match(e.message, /Missing key\(s\) in state_dict: "conv1\.weight"/);
        assert.match(e.message, /"linear\.bias"/);
        assert.match(e.message, /Unexpected key\(s\) in state_dict: "features\.0\.weight".*"classifier\.4\.bias"/s);
        assert.match(
          e.message,
          /closest zoo architecture is 'compact-cnn' \(100% of keys and shapes match\): try --arch compact-cnn/,
        );
        return true;
      },
    );
    await assert.rejects(
      importModel({ out: dir, weights: fixture("compact-cnn.safetensors"), ...FMNIST, classNames, log: quiet }),
      /--weights needs --arch \(one of resnet18, /,
    );
    await assert.rejects(
      importModel({ out: dir, torchscript: fixture("tiny-mixer-traced.pt"), log: quiet }),
      /--dataset NAME, or all of --input CxHxW/,
    );
    await assert.rejects(
      importModel({
        out: dir,
        torchscript: fixture("tiny-mixer-traced.pt"),
        ...FMNIST,
        classNames: ["a", "b", "c"],
        log: quiet,
      }),
      /maps a batch of 4 inputs \[4, 1, 28, 28\] to \[4, 10\], expected \[4, 3\]/,
    );
    await assert.rejects(
      importModel({
        out: dir,
        torchscript: fixture("tiny-mixer-traced.pt"),
        ...FMNIST,
        mean: [0.1, 0.2],
        classNames,
        log: quiet,
      }),
      /--mean has 2 values but --input has 1 channels/,
    );
    await writeFile(join(dir, "classes.txt"), "cat\ndog\n\n");
    assert.deepEqual(await readClassNames(join(dir, "classes.txt")), ["cat", "dog"]);
    await assert.rejects(readClassNames(join(dir, "none.txt")), /neither a number nor a readable file/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});

test("a model whose output a detector cannot use is refused before a checkpoint is written", async () => {
  const before = memory().numTensors;
  const scripts = liveScriptModules();
  const dir = await mkdtemp(join(tmpdir(), "bx-import-"));
  try {
    const classNames = await readClassNames("10");
    // TorchScript files written by PyTorch (test/fixtures/pytorch/make-unusable.py); seeded noise as inputs, and the dataset's images.
    const cases: [string, RegExp, RegExp][] = [
      [
        "unusable-nan.pt",
        /returns 40 non-finite logit\(s\) \(NaN or Infinity\) for 4 of 4 inputs \(4 seeded random images: input 0, 1, 2, 3\)/,
        /for 4 of 4 inputs \(the first 4 test images of fashion-mnist/,
      ],
      [
        "unusable-inf.pt",
        /returns 10 non-finite logit\(s\) \(NaN or Infinity\) for 1 of 4 inputs \(4 seeded random images: input 1\)/,
        /input 1\)/,
      ],
      [
        "unusable-batch-mean.pt",
        /maps a batch of 4 inputs \[4, 1, 28, 28\] to \[1, 10\], expected \[4, 10\]: one row of logits per input/,
        /\(10 classes in fashion-mnist\)/,
      ],
      [
        "unusable-classes.pt",
        /maps a batch of 4 inputs \[4, 1, 28, 28\] to \[4, 7\], expected \[4, 10\]/,
        /expected \[4, 10\].*\(10 classes in fashion-mnist\)/,
      ],
      [
        "unusable-batch-mixing.pt",
        /gives input 0 \(4 seeded random images\) logits up to [\d.e+-]+ \(relative\) away from its row of the batch when run alone: its output depends on the other inputs of its batch/,
        /depends on the other inputs of its batch/,
      ],
      [
        "unusable-tuple.pt",
        /fails on a batch of 4 inputs \[4, 1, 28, 28\]: jitForward: forward returned Tuple, expected one Tensor/,
        /forward returned Tuple/,
      ],
    ];
    for (const [file, withoutData, withData] of cases) {
      const out = join(dir, file);
      await assert.rejects(
        importModel({ out, torchscript: fixture(file), ...FMNIST, classNames, log: quiet }),
        withoutData,
        file,
      );
      await assert.rejects(
        importModel({ out, torchscript: fixture(file), dataset: "fashion-mnist", log: quiet }),
        withData,
        `${file} with the dataset`,
      );
      assert.equal(existsSync(out), false, `${file}: no checkpoint written`);
    }
    // A state_dict too: finite weights so large that the logits overflow.
    const file = await readStateDictFile(fixture("compact-cnn.safetensors"));
    const big = new Map([...file.tensors].map(([k, t]) => [k, k.endsWith("weight") ? t.mul(1e12) : t.clone()]));
    dispose([...file.tensors.values()]);
    await saveTensors(join(dir, "huge.safetensors"), big);
    dispose([...big.values()]);
    await assert.rejects(
      importModel({
        out: join(dir, "huge"),
        weights: join(dir, "huge.safetensors"),
        arch: "compact-cnn",
        ...FMNIST,
        classNames,
        log: quiet,
      }),
      /huge\.safetensors returns \d+ non-finite logit\(s\)/,
    );
    assert.equal(existsSync(join(dir, "huge")), false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
  assert.equal(liveScriptModules(), scripts, "every TorchScript module refused was released");
});

test("BaDExpert on an imported TorchScript model: defend -> evaluate-defense, and the bundle reloads to identical scores", async () => {
  const before = memory().numTensors;
  const scripts = liveScriptModules();
  const dir = await mkdtemp(join(tmpdir(), "bx-import-"));
  try {
    const imported = await importModel({
      out: join(dir, "ck"),
      torchscript: fixture("tiny-mixer-traced.pt"),
      dataset: "fashion-mnist",
      log: quiet,
    });
    assert.ok(imported.accuracy !== null && imported.accuracy >= 0 && imported.accuracy <= 1);
    assert.equal(imported.meta.metrics.cleanAccuracy, imported.accuracy);

    // The CLI path: defend, then evaluate-defense against a BadNet trigger.
    const d = await defendCheckpoint({
      checkpoint: join(dir, "ck"),
      out: join(dir, "bundle"),
      splits: { reserved: 256, calibration: 200 },
      unlearn: { lr: 3e-4 },
      finetune: { epochs: 1 },
      silent: true,
      log: quiet,
    });
    assert.equal(d.splits.reserved, 256);
    assert.ok(Number.isFinite(d.threshold));
    assert.ok(existsSync(join(dir, "bundle", "model.torchscript.pt")));
    const ev = await evaluateBundle({ bundle: join(dir, "bundle"), attack: "badnet" });
    assert.equal(ev.model, "torchscript");
    assert.equal(ev.metrics.cleanCount, d.splits.evaluation);
    assert.ok(ev.metrics.poisonCount > 0);
    assert.ok(
      Math.abs(ev.metrics.cleanAccuracyBefore - (imported.accuracy ?? 0)) < 0.02,
      `CA ${ev.metrics.cleanAccuracyBefore} vs ${imported.accuracy}`,
    );
    // This fixture has no backdoor: where no poisoned input fools M, AUROC is undefined (NaN).
    assert.ok(
      ev.metrics.asrBefore > 0 ? ev.metrics.auroc >= 0 && ev.metrics.auroc <= 1 : Number.isNaN(ev.metrics.auroc),
      `ASR ${ev.metrics.asrBefore}, AUROC ${ev.metrics.auroc}`,
    );

    // The library path: fit, score, save, reload, score again.
    const { model, meta } = await loadCheckpoint(join(dir, "ck"));
    assert.ok(model instanceof TorchScriptModule);
    const testSet = await loadDataset("fashion-mnist", { split: "test" });
    const s = defenseSplits(testSet.count, { seed: 1, reserved: 256, calibration: 200 });
    const det = await fitBadExpert(
      model,
      { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames },
      subset(testSet, s.reserved),
      subset(testSet, s.calibration),
      QUICK_FIT,
    );
    model.dispose();
    const evalSet = subset(testSet, s.evaluation.subarray(0, 300));
    const a = det.scoreDataset(evalSet);
    // B and M' are finetuned copies: their weights moved away from M's, and M's did not move.
    const w = (m: typeof det.model) => (m.stateDict().get("head.weight")?.toArray() ?? []) as number[];
    const w0 = w(det.model);
    assert.ok(
      w(det.expert).some((x, i) => x !== w0[i]),
      "B's head equals M's",
    );
    assert.ok(
      w(det.auxiliary).some((x, i) => x !== w0[i]),
      "M''s head equals M's",
    );
    await saveBundle(join(dir, "lib-bundle"), det);
    det.dispose();
    const back = await loadBundle(join(dir, "lib-bundle"));
    const b = back.scoreDataset(evalSet);
    back.dispose();
    assert.deepEqual(Array.from(b.score), Array.from(a.score));
    assert.deepEqual(Array.from(b.pred), Array.from(a.pred));
    // Swapping the bundle's program (same parameter names, other code) is refused on load.
    await copyFile(fixture("tiny-mixer-scripted.pt"), join(dir, "lib-bundle", "model.torchscript.pt"));
    await assert.rejects(
      loadBundle(join(dir, "lib-bundle")),
      /model\.torchscript\.pt does not match the SHA-256 recorded in .*detector\.json: the program was changed or replaced/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
  assert.equal(liveScriptModules(), scripts);
});
