// `attack apply` end to end on tiny real data (600 Fashion-MNIST training and 300 test images):
// a clean one-epoch checkpoint in, tampered checkpoints out, read back by preview, evaluate and
// defend/evaluate-defense like any backdoored checkpoint.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/engine/index.js";
import { readCheckpointMeta } from "../../src/train/checkpoint.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { cachedModel, cachedModelPath } from "../../src/jobs/model-cache.js";
import { FASHION_MNIST, runCli, tinyFashionMnist, type CliRun } from "./fixtures.js";

const skip = existsSync(FASHION_MNIST) ? false : `${FASHION_MNIST} is not on this machine`;
const root = await mkdtemp(join(tmpdir(), "bx-apply-"));
after(() => rm(root, { recursive: true, force: true }));
process.env.BADEXPERT_CACHE = join(root, "cache");
const data = skip ? "" : await tinyFashionMnist(after, 600, 300);
const clean = join(root, "clean");

async function cli(args: string[]): Promise<CliRun> {
  const before = memory().numTensors;
  const r = await runCli(args);
  assert.equal(memory().numTensors, before, `${args.join(" ")}: tensors leaked`);
  return r;
}

function obj(x: unknown): Record<string, unknown> {
  assert.ok(
    x !== null && typeof x === "object" && !Array.isArray(x),
    `expected a JSON object, got ${JSON.stringify(x)}`,
  );
  return x as Record<string, unknown>;
}

test("a clean one-epoch checkpoint to tamper with", { skip }, async () => {
  const r = await cli([
    "train",
    "--dataset",
    "fashion-mnist",
    "--data-path",
    data,
    "--epochs",
    "1",
    "--out",
    clean,
    "--threads",
    "1",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
});

test(
  "apply --attack sra writes a backdoored checkpoint that records the attack and where it came from",
  { skip },
  async () => {
    const out = join(root, "sra");
    const r = await cli([
      "attack",
      "apply",
      "--attack",
      "sra",
      "--checkpoint",
      clean,
      "--out",
      out,
      "--attack-param",
      "targetClass=2",
      "--json",
    ]);
    assert.equal(r.code, 0, r.err);
    const j = obj(r.json());
    assert.equal(obj(j.attack).name, "sra");
    assert.ok((j.attackSuccessRate as number) > 0.95, `ASR ${String(j.attackSuccessRate)}`);
    assert.ok((j.attackSuccessRateBefore as number) < 0.5, "the clean model was not backdoored");
    assert.ok(
      Math.abs((j.cleanAccuracy as number) - (j.cleanAccuracyBefore as number)) < 0.1,
      "clean accuracy about kept",
    );
    const meta = await readCheckpointMeta(out);
    assert.equal(meta.training.attack?.name, "sra");
    assert.equal(meta.training.attack?.params.targetClass, 2);
    assert.equal(obj(meta.training.tampering).from, clean);
    assert.equal(meta.metrics.attackSuccessRate, j.attackSuccessRate);
    assert.equal(meta.training.history?.length, 1, "the clean model's history is kept");

    await assert.rejects(
      runCli(["attack", "apply", "--attack", "sra", "--checkpoint", clean, "--out", out]),
      /already exists and is not empty .*--force replaces it/,
    );

    // The defense reads the tampered checkpoint like any backdoored one; evaluate-defense rebuilds the attack from its record.
    const bundle = join(root, "sra-bundle");
    await defendCheckpoint({
      checkpoint: out,
      out: bundle,
      unlearn: { lr: 1e-4 },
      finetune: { epochs: 1 },
      splits: { calibration: 100, seed: 0 },
      silent: true,
      log: () => {},
    });
    const e = await evaluateBundle({ bundle });
    assert.equal(e.attack.name, "sra");
    assert.equal(e.attack.params.targetClass, 2);
    assert.ok(e.metrics.asrBefore > 0.9, `ASR before the defense ${e.metrics.asrBefore}`);
  },
);

test("apply --attack trojannn records its optimised trigger, which preview --checkpoint shows", { skip }, async () => {
  const out = join(root, "trojannn");
  const r = await cli([
    "attack",
    "apply",
    "--attack",
    "trojannn",
    "--checkpoint",
    clean,
    "--out",
    out,
    "--attack-param",
    "steps=20,count=300",
    "--seed",
    "4",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  assert.equal(j.attackSuccessRateBefore, null, "no trigger before tampering");
  assert.equal(j.poisonCount, 30);
  const trigger = String(obj(obj(j.attack).params).trigger).split(",");
  assert.equal(trigger.length, 64);
  const png = join(root, "trojannn.png");
  const p = await cli([
    "attack",
    "preview",
    "--checkpoint",
    out,
    "--count",
    "2",
    "--scale",
    "1",
    "--out",
    png,
    "--json",
  ]);
  assert.equal(p.code, 0, p.err);
  assert.equal(obj(p.json()).attack, "trojannn");
  assert.ok(existsSync(png));
  await assert.rejects(
    runCli([
      "attack",
      "preview",
      "--attack",
      "trojannn",
      "--dataset",
      "fashion-mnist",
      "--data-path",
      data,
      "--out",
      png,
    ]),
    /the trigger is optimised against a model by `badexpert attack apply`/,
  );
});

test(
  "apply refuses data-poisoning attacks, train refuses tampering ones, and bad parameters fail before any work",
  { skip },
  async () => {
    const poison = await cli([
      "attack",
      "apply",
      "--attack",
      "badnet",
      "--checkpoint",
      clean,
      "--out",
      join(root, "x"),
    ]);
    assert.equal(poison.code, 2);
    assert.match(
      poison.err,
      /'badnet' poisons training data \(use `badexpert train --attack badnet`\); apply takes the model-tampering attacks: ft, sra, trojannn/,
    );
    const tamperingInTrain = await cli([
      "train",
      "--dataset",
      "fashion-mnist",
      "--data-path",
      data,
      "--attack",
      "ft",
      "--out",
      join(root, "y"),
    ]);
    assert.equal(tamperingInTrain.code, 2, "a usage mistake, as badnet in attack apply is");
    assert.match(
      tamperingInTrain.err,
      /attack 'ft' tampers with a trained model: train a clean model, then run `badexpert attack apply --attack ft/,
    );
    const bad = await cli([
      "attack",
      "apply",
      "--attack",
      "ft",
      "--checkpoint",
      clean,
      "--out",
      join(root, "z"),
      "--attack-param",
      "epochs=0",
    ]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.err,
      /--attack-param: attack 'ft': parameter 'epochs' must be an integer >= 1 and <= 1000, got "0"/,
    );
    const missing = await cli(["attack", "apply", "--attack", "sra", "--out", join(root, "z")]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /--checkpoint/);
    assert.equal(existsSync(join(root, "x")) || existsSync(join(root, "y")) || existsSync(join(root, "z")), false);
  },
);

test(
  "the model cache applies a tampering attack to its cached clean model (trained first when missing)",
  { skip },
  async () => {
    process.env.BADEXPERT_MODEL_CACHE = join(root, "models");
    try {
      const spec = {
        dataset: "fashion-mnist",
        dataPath: data,
        attack: "sra",
        attackParams: { boost: 40 },
        epochs: 1,
        seed: 0,
      };
      const first = await cachedModel(spec, { log: () => {} });
      assert.equal(first.trained, true);
      assert.equal(first.dir, cachedModelPath(spec));
      const meta = await readCheckpointMeta(first.dir);
      assert.equal(meta.training.attack?.name, "sra");
      assert.equal(meta.training.attack?.params.boost, 40);
      assert.equal(obj(meta.training.tampering).from, cachedModelPath({ ...spec, attack: null, attackParams: {} }));
      assert.ok((meta.metrics.attackSuccessRate ?? 0) > 0.95);
      const again = await cachedModel(spec, { log: () => {} });
      assert.equal(again.trained, false, "a finished entry is reused");
    } finally {
      delete process.env.BADEXPERT_MODEL_CACHE;
    }
  },
);
