// `badexpert attack list|preview` and the preview grid (ISSBA's from a checkpoint storing its encoder).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { runCli } from "../cli/fixtures.js";
import { createAttack, saveArtifacts } from "../../src/attacks/index.js";
import { manualSeed } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { attackNames } from "../../src/attacks/registry.js";
import { attackPreview, imageGrid } from "../../src/attacks/preview.js";
import { generated, specOf } from "./fixtures.js";

const run = runCli;

test("imageGrid upscales with nearest neighbour and separates images by gaps", () => {
  // Two 1x2 grey images in one row, scale 2, gap 1: width 2*4 + 3 = 11, height 2 + 2 = 4.
  const g = imageGrid([Uint8Array.from([10, 20, 30, 40])], 2, 1, 2, 1, { scale: 2, gap: 1, background: 0 });
  assert.deepEqual([g.width, g.height, g.channels], [11, 4, 1]);
  assert.deepEqual(Array.from(g.data.subarray(11, 22)), [0, 10, 10, 20, 20, 0, 30, 30, 40, 40, 0]);
  assert.deepEqual(Array.from(g.data.subarray(22, 33)), [0, 10, 10, 20, 20, 0, 30, 30, 40, 40, 0]);
  assert.ok(g.data.subarray(0, 11).every((v) => v === 0));
});

test("attackPreview shows images that count for the attack, clean above triggered", () => {
  const test_ = generated(100, 16, 16, 3, 10, "test");
  const tact = createAttack("tact", {}, specOf(test_));
  const p = attackPreview(tact, test_, { count: 4, scale: 1, gap: 0 });
  assert.equal(p.indices.length, 4);
  assert.ok(
    Array.from(p.indices).every((i) => test_.labels[i] === 1),
    "TaCT previews its source class",
  );
  assert.deepEqual([p.picture.width, p.picture.height], [64, 32]);
  // Top-left image of the grid is test image indices[0], unchanged.
  const i = p.indices[0] as number;
  assert.deepEqual(
    Array.from(p.picture.data.subarray(0, 48)),
    Array.from(test_.images.subarray(i * 768, i * 768 + 48)),
  );
});

test("`attack list` prints every attack with its defaults; --json gives them as data", async () => {
  const text = await run(["attack", "list"]);
  assert.equal(text.code, 0);
  assert.match(
    text.out,
    /^badnet \(dirty-label, all-to-one\): .*\n {2}targetClass=0 {2}rate=0.003 {2}cells=3 {2}margin=1/m,
  );
  assert.match(text.out, /clean-label \(clean-label, all-to-one, needs a clean model\)/);
  const json = await run(["attack", "list", "--json", "--dataset", "gtsrb"]);
  const rows = JSON.parse(json.out.trim().split("\n").at(-1) ?? "") as {
    name: string;
    params: Record<string, { default: unknown }>;
  }[];
  assert.deepEqual(
    rows.map((r) => r.name),
    attackNames(),
  );
  assert.equal(rows.length, 17);
  assert.equal(rows[0]?.params.targetClass?.default, 2);
  assert.equal(rows[0]?.params.rate?.default, 0.01);
});

test("`attack` reports usage errors with exit code 2", async () => {
  assert.equal((await run(["attack"])).code, 2);
  const unknown = await run(["attack", "preview", "--attack", "nope", "--dataset", "fashion-mnist"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /--attack: expected one of badnet, blend, .*, got "nope"/);
  const sub = await run(["attack", "show"]);
  assert.match(sub.err, /unknown subcommand 'show'; valid: list, preview/);
});

const FASHION = "/usr/share/datasets/fashion-mnist";
test(
  "`attack preview` writes a PNG of 2 rows of 28x28 images upscaled 4 times",
  { skip: existsSync(FASHION) ? false : `${FASHION} is not on this machine` },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "badexpert-attack-"));
    try {
      const out = join(dir, "sub", "badnet.png");
      const r = await run([
        "attack",
        "preview",
        "--attack",
        "badnet",
        "--dataset",
        "fashion-mnist",
        "--count",
        "3",
        "--out",
        out,
        "--json",
      ]);
      assert.equal(r.code, 0, r.err);
      const meta = await sharp(out).metadata();
      // 3 columns of 112 pixels and 4 gaps of 2; 2 rows of 112 and 3 gaps.
      assert.deepEqual([meta.width, meta.height], [3 * 112 + 4 * 2, 2 * 112 + 3 * 2]);
      const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "") as {
        indices: number[];
        params: { rate: number };
      };
      assert.equal(result.indices.length, 3);
      assert.equal(result.params.rate, 0.003);
      const bad = await run([
        "attack",
        "preview",
        "--attack",
        "badnet",
        "--dataset",
        "fashion-mnist",
        "--attack-param",
        "rate=7",
        "--out",
        out,
      ]);
      assert.equal(bad.code, 2);
      assert.match(
        bad.err,
        /--attack-param: attack 'badnet': parameter 'rate' must be a number >= 0 and <= 1, got "7"/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);

test(
  "`attack preview` of an attack with a trained network needs the checkpoint that stores it",
  { skip: existsSync(FASHION) ? false : `${FASHION} is not on this machine` },
  async () => {
    const noCkpt = await run(["attack", "preview", "--attack", "issba", "--dataset", "fashion-mnist"]);
    assert.equal(noCkpt.code, 2);
    assert.match(noCkpt.err, /--checkpoint: attack 'issba' trains its trigger network while poisoning/);
    const dir = await mkdtemp(join(tmpdir(), "badexpert-attack-issba-"));
    try {
      // A checkpoint as `train --attack issba` writes it: the record with the network's digest, and attack.safetensors.
      const train = await loadDataset("fashion-mnist", { split: "train" });
      const slice = subset(
        train,
        Int32Array.from({ length: 300 }, (_, i) => i),
      );
      const p = await createAttack(
        "issba",
        { steps: 5, count: 300 },
        { numClasses: 10, height: 28, width: 28, channels: 1 },
      ).poison(slice, 0);
      manualSeed(0);
      const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
      const model = createModel("compact-cnn", spec);
      const ckpt = join(dir, "ckpt");
      await saveCheckpoint(
        ckpt,
        model,
        {
          model: spec,
          dataset: { name: "fashion-mnist" },
          preprocessing: { imageSize: [28, 28], channels: 1, mean: [0.286], std: [0.353] },
          classNames: train.classNames,
          training: { attack: { name: "issba", params: p.params ?? {} } },
          metrics: {},
        },
        { also: (d) => saveArtifacts(d, p.artifacts ?? new Map()) },
      );
      model.dispose();
      const out = join(dir, "issba.png");
      const r = await run(["attack", "preview", "--checkpoint", ckpt, "--count", "2", "--out", out, "--json"]);
      assert.equal(r.code, 0, r.err);
      const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "") as {
        attack: string;
        params: { generatorSha256: string };
      };
      assert.equal(result.attack, "issba");
      assert.equal(result.params.generatorSha256, p.params?.generatorSha256);
      assert.ok(existsSync(out));
      const other = await run(["attack", "preview", "--checkpoint", ckpt, "--attack", "dynamic", "--out", out]);
      assert.equal(other.code, 2);
      assert.match(other.err, /was not trained with attack 'dynamic'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
