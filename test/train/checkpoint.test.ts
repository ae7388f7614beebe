// Checkpoints as untrusted input: model.json validated field by field (missing `dataset` or
// `training` named, not "Cannot read properties of undefined"), the weights' SHA-256 checked,
// NaN weights refused, and saving never overwrites a directory unless asked.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, noGrad } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { saveCheckpoint, loadCheckpoint, readCheckpointMeta } from "../../src/train/checkpoint.js";
import { saveTensors } from "../../src/io/weights.js";

const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
const meta = {
  model: spec,
  dataset: { name: "fashion-mnist" },
  preprocessing: { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] },
  classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
  training: {
    epochs: 2,
    attack: { name: "badnet", params: { rate: 0.01 } },
    history: [{ epoch: 1, trainLoss: 1, trainAccuracy: 0.5, testAccuracy: Number.NaN, lr: 0.1, seconds: 1 }],
  },
  metrics: { cleanAccuracy: Number.NaN },
};

test("model.json is validated on load; weights are hash-checked and must be finite; saves do not overwrite", async () => {
  const before = memory().numTensors;
  const root = await mkdtemp(join(tmpdir(), "bx-ckpt-"));
  const dir = join(root, "ckpt");
  try {
    manualSeed(1);
    const model = createModel("compact-cnn", spec);
    const saved = await saveCheckpoint(dir, model, meta);
    assert.match(saved.weightsSha256 ?? "", /^[0-9a-f]{64}$/);
    const back = await readCheckpointMeta(dir);
    assert.ok(Number.isNaN(back.metrics.cleanAccuracy), "a NaN metric (written as null) reads back as NaN");
    assert.ok(Number.isNaN(back.training.history?.[0]?.testAccuracy ?? 0));
    assert.deepEqual(back.training.attack, { name: "badnet", params: { rate: 0.01 } });
    await assert.rejects(
      saveCheckpoint(dir, model, meta),
      /ckpt already exists and is not empty \(2 entries\); refusing to overwrite it/,
    );
    await saveCheckpoint(dir, model, meta, { replace: true });
    assert.deepEqual((await readdir(root)).sort(), ["ckpt"], "no temporary directories left");

    const good = JSON.parse(await readFile(join(dir, "model.json"), "utf8")) as Record<string, unknown>;
    const cases: [string, (m: Record<string, unknown>) => void, RegExp][] = [
      ["no dataset", (m) => delete m.dataset, /model\.json: "dataset" must be an object; it is missing/],
      ["no training", (m) => delete m.training, /model\.json: "training" must be an object; it is missing/],
      [
        "attack name",
        (m) => ((m.training as { attack: { name: unknown } }).attack.name = 3),
        /"training\.attack\.name" must be a string; found 3/,
      ],
      [
        "std",
        (m) => ((m.preprocessing as { std: unknown }).std = [-1]),
        /"preprocessing\.std\[0\]" must be a finite number > 0; found -1/,
      ],
      ["classes", (m) => (m.classNames = ["a"]), /"classNames" must be an array of 10 values; found 1 values/],
      [
        "model name",
        (m) => ((m.model as { name: unknown }).name = "nope"),
        /"model\.name" must be one of .*compact-cnn/,
      ],
      [
        "hash",
        (m) => (m.weightsSha256 = "0".repeat(64)),
        /model\.safetensors does not match the SHA-256 recorded in .*model\.json/,
      ],
    ];
    for (const [name, change, expected] of cases) {
      const m = structuredClone(good);
      change(m);
      await writeFile(join(dir, "model.json"), JSON.stringify(m));
      await assert.rejects(loadCheckpoint(dir), expected, name);
    }
    noGrad(() => model.parameters()[0]?.fill_(Number.NaN));
    await saveTensors(join(dir, "model.safetensors"), model.stateDict());
    const noHash = structuredClone(good);
    delete noHash.weightsSha256;
    await writeFile(join(dir, "model.json"), JSON.stringify(noHash));
    await assert.rejects(loadCheckpoint(dir), /model\.safetensors: tensor "[\w.]+" holds \d+ non-finite value/);
    model.dispose();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
