// `badexpert explain` end to end on the small real service bundle (5% FPR, so a few clean inputs
// are flagged): one overlay per flagged input at the model's size, the float maps, the summary,
// and usage errors before any work.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { memory } from "../../src/engine/index.js";
import { loadTensors } from "../../src/io/weights.js";
import { fixtureBundle, fixturePngs } from "../serve/fixture.js";
import { runCli } from "./fixtures.js";

const work = await mkdtemp(join(tmpdir(), "bx-explain-"));
after(() => rm(work, { recursive: true, force: true }));

test("explain writes an overlay per flagged input, the maps and a summary whose counts agree", async () => {
  const before = memory().numTensors;
  const bundle = await fixtureBundle();
  const files: string[] = [];
  for (const [i, png] of (await fixturePngs(40)).entries()) {
    const f = join(work, `in-${i}.png`);
    await writeFile(f, png);
    files.push(f);
  }
  const out = join(work, "out");
  const r = await runCli(["explain", "--bundle", bundle, "--out", out, "--method", "gradient-x-input", ...files]);
  assert.equal(r.code, 0, r.err);
  const s = r.json() as {
    inputs: number;
    flagged: number;
    explained: number;
    method: string;
    target: { class: number; share: number } | null;
    trigger: { compact: boolean };
  };
  assert.equal(s.inputs, 40);
  assert.equal(s.method, "gradient-x-input");
  assert.ok(s.flagged > 0 && s.flagged < 40, `the 5%-FPR fixture flags a few clean inputs, got ${s.flagged}`);
  assert.equal(s.explained, s.flagged);
  assert.ok(s.target !== null && s.target.share > 0);
  const overlays = await readdir(join(out, "overlays"));
  assert.equal(overlays.length, s.flagged);
  for (const f of overlays) {
    const meta = await sharp(join(out, "overlays", f)).metadata();
    assert.deepEqual([meta.width, meta.height, meta.format], [28, 28, "png"], f);
  }
  const summary = JSON.parse(await readFile(join(out, "summary.json"), "utf8")) as {
    explainedInputs: { input: string; flagged: boolean; overlay: string }[];
  };
  assert.equal(summary.explainedInputs.length, s.flagged);
  assert.ok(summary.explainedInputs.every((e) => e.flagged && overlays.includes(e.overlay.replace("overlays/", ""))));
  const { tensors, metadata } = await loadTensors(join(out, "saliency.safetensors"));
  const maps = tensors.get("maps");
  assert.deepEqual(maps?.shape, [s.flagged, 28, 28]);
  assert.deepEqual(
    JSON.parse(metadata.inputs ?? "[]"),
    summary.explainedInputs.map((e) => e.input),
  );
  for (const t of tensors.values()) t.dispose();
  for (const f of ["mean-map.png", "trigger-estimate.png"])
    assert.equal((await sharp(join(out, f)).metadata()).width, 28);

  // --all explains every input; an existing --out needs --force.
  const again = await runCli([
    "explain",
    "--bundle",
    bundle,
    "--out",
    out,
    "--method",
    "gradient",
    "--all",
    ...files.slice(0, 5),
  ]);
  assert.equal(again.code, 2);
  assert.match(
    again.err,
    /--out .* already exists and is not empty \(\d+ entries\); refusing to overwrite it \(--force replaces it\)/,
  );
  const all = await runCli([
    "explain",
    "--bundle",
    bundle,
    "--out",
    out,
    "--method",
    "gradient",
    "--all",
    "--force",
    ...files.slice(0, 5),
  ]);
  assert.equal(all.code, 0, all.err);
  assert.equal((all.json() as { explained: number }).explained, 5);
  assert.equal((await readdir(join(out, "overlays"))).length, 5);
  assert.equal(memory().numTensors, before);
});

test("explain: usage errors name the problem before any work", async () => {
  const noFiles = await runCli(["explain", "--bundle", "x", "--out", join(work, "o2")]);
  assert.equal(noFiles.code, 2);
  assert.match(noFiles.err, /nothing to explain: give image files/);
  const badMethod = await runCli(["explain", "--bundle", "x", "--out", join(work, "o3"), "--method", "lime", "a.png"]);
  assert.equal(badMethod.code, 2);
  assert.match(
    badMethod.err,
    /gradient-x-input, smoothgrad, gradient, occlusion, grad-cam, expert-contrast, model-contrast/,
  );
  const noOut = await runCli(["explain", "--bundle", "x", "a.png"]);
  assert.equal(noOut.code, 2);
  assert.match(noOut.err, /--out/);
  const help = await runCli(["explain", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /trigger-estimate\.png/);
});
