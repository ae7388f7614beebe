// The registry through the CLI: `defend --detector NAME` writes a baseline bundle from the same
// splits, `scan --bundle` reads it like BaDExpert's; unknown names and BaDExpert-only options are
// usage errors. Real Fashion-MNIST test images, an untrained model, tiny splits (fast).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory } from "../../src/engine/index.js";
import { runCli } from "../cli/fixtures.js";
import { untrainedFashionCheckpoint } from "./fixtures.js";

test("defend --detector strip writes a baseline bundle that scan reads; bad names and options are usage errors", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "badexpert-defend-baseline-"));
  try {
    manualSeed(0);
    const ckpt = join(dir, "ckpt");
    await untrainedFashionCheckpoint(ckpt);
    const out = join(dir, "strip");
    const common = ["--checkpoint", ckpt, "--reserved", "64", "--calibration", "100", "--fpr", "0.05"];
    const r = await runCli([
      "defend",
      ...common,
      "--detector",
      "strip",
      "--detector-param",
      "n=2",
      "--out",
      out,
      "--json",
    ]);
    assert.equal(r.code, 0, r.err);
    const result = JSON.parse(r.out.trim().split("\n").at(-1) ?? "") as {
      detector: string;
      params: { n: number };
      threshold: number;
      splits: { reserved: number; calibration: number };
    };
    assert.equal(result.detector, "strip");
    assert.equal(result.params.n, 2);
    assert.deepEqual([result.splits.reserved, result.splits.calibration], [64, 100]);
    const manifest = JSON.parse(await readFile(join(out, "detector.json"), "utf8")) as {
      format: string;
      calibration: { threshold: number };
    };
    assert.equal(manifest.format, "badexpert-baseline-detector");
    assert.equal(manifest.calibration.threshold, result.threshold);

    const s = await runCli(["scan", "--bundle", out, "--dataset", "fashion-mnist", "--limit", "12"]);
    assert.equal(s.code, 0, s.err);
    const lines = s.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 13);
    for (const l of lines.slice(0, 12)) {
      assert.equal(typeof l.score, "number");
      assert.equal(l.flagged, (l.score as number) > result.threshold);
      assert.equal(l.expertConfidence, undefined);
    }
    assert.deepEqual(
      [lines[12]?.summary, lines[12]?.detector, lines[12]?.inputs, lines[12]?.threshold],
      [true, "strip", 12, result.threshold],
    );

    const unknown = await runCli(["defend", ...common, "--detector", "nope", "--out", join(dir, "x")]);
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.err,
      /--detector: unknown detector 'nope'; valid names: badexpert, strip, scale-up, teco, ibd-psc, cd, frequency, sentinet/,
    );
    const mixed = await runCli([
      "defend",
      ...common,
      "--detector",
      "strip",
      "--unlearn-lr",
      "3e-4",
      "--out",
      join(dir, "y"),
    ]);
    assert.equal(mixed.code, 2);
    assert.match(mixed.err, /--unlearn-lr: only for --detector badexpert/);
    const badParam = await runCli([
      "defend",
      ...common,
      "--detector",
      "strip",
      "--detector-param",
      "n=0",
      "--out",
      join(dir, "z"),
    ]);
    assert.equal(badParam.code, 2);
    assert.match(badParam.err, /parameter 'n' must be an integer >= 1, got "0"/);
    const onnx = await runCli([
      "scan",
      "--bundle",
      out,
      "--engine",
      "onnxruntime",
      "--dataset",
      "fashion-mnist",
      "--limit",
      "2",
    ]);
    assert.equal(onnx.code, 2);
    assert.match(onnx.err, /--engine onnxruntime: the strip detector scores with libtorch only/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
