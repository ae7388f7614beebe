// A TorchScript model as a user brings it: `import --torchscript`, `defend`, then `export --format
// onnx|triton` and `scan --engine onnxruntime` work on the bundle and agree with libtorch; a model
// with an operator outside the exporter's set is refused by both, naming the operator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/engine/index.js";
import { liveScriptModules } from "../../src/engine/jit.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { loadBundle } from "../../src/defense/bundle.js";
import { importModel } from "../../src/jobs/import.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { main } from "../../src/cli/main.js";
import { OnnxDetector } from "../../src/export/onnx-detector.js";
import { decodeModel, DataType } from "../../src/export/onnx-proto.js";
import { assertAgree, assertWellFormed, onnxCheckerMissing, runOnnxChecker } from "./agreement.js";
import { fixture } from "../helpers/pytorch-fixtures.js";

const quiet = (): void => {};

async function run(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    return { code: await main(args), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function defended(dir: string, file: string): Promise<string> {
  await importModel({
    out: join(dir, "ck"),
    torchscript: fixture(file),
    dataset: "fashion-mnist",
    verify: false,
    log: quiet,
  });
  await defendCheckpoint({
    checkpoint: join(dir, "ck"),
    out: join(dir, "bundle"),
    splits: { reserved: 256, calibration: 200 },
    unlearn: { lr: 3e-4 },
    finetune: { lr: 0.01, epochs: 1 },
    silent: true,
    log: quiet,
  });
  return join(dir, "bundle");
}

test("import --torchscript, defend, then export (onnx and triton) and scan --engine onnxruntime agree with libtorch", async () => {
  const before = memory().numTensors;
  const modules = liveScriptModules();
  const dir = await mkdtemp(join(tmpdir(), "bx-ts-bundle-"));
  let onnx: OnnxDetector | null = null;
  try {
    const bundle = await defended(dir, "patch-transformer-traced.pt");
    const file = join(dir, "detector.onnx");
    const exp = await run(["export", "--bundle", bundle, "--out", file, "--json"]);
    assert.equal(exp.code, 0, exp.err.join("\n"));
    const bytes = new Uint8Array(await readFile(file));
    assertWellFormed(bytes, {
      inputDims: ["batch", 1, 28, 28],
      outputs: [
        ["pred", DataType.INT64],
        ["expert_confidence", DataType.FLOAT],
        ["expert_complement", DataType.FLOAT],
        ["auxiliary_confidence", DataType.FLOAT],
        ["score", DataType.DOUBLE],
        ["flagged", DataType.BOOL],
      ],
    });
    if (onnxCheckerMissing() === null) await runOnnxChecker(bytes, dir);
    // Each network's weights under its role and state-dict name: B's and M''s are their own.
    const names = new Set(decodeModel(bytes).graph.initializer.map((t) => t.name));
    for (const role of ["model", "expert", "auxiliary"])
      assert.ok(names.has(`${role}.blocks.0.attn.qkv.weight`), `${role}.blocks.0.attn.qkv.weight in the graph`);
    assert.equal(
      decodeModel(bytes).metadata_props.find((p) => p.key === "badexpert.architecture")?.value,
      "torchscript",
    );

    const fmnist = await loadDataset("fashion-mnist", { split: "test" });
    const evalSet = subset(
      fmnist,
      Int32Array.from({ length: 256 }, (_, i) => fmnist.count - 1 - i),
    );
    const det = await loadBundle(bundle);
    try {
      onnx = await OnnxDetector.open(file, { threads: 1 });
      assertAgree(
        det.scoreDataset(evalSet),
        await onnx.scoreDataset(evalSet, { batchSize: 64 }),
        "exported TorchScript bundle",
      );
    } finally {
      det.dispose();
    }

    const repo = join(dir, "repo");
    const tri = await run(["export", "--bundle", bundle, "--format", "triton", "--out", repo]);
    assert.equal(tri.code, 0, tri.err.join("\n"));
    assert.deepEqual(new Uint8Array(await readFile(join(repo, "badexpert", "1", "model.onnx"))), bytes);

    const scanArgs = ["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--limit", "48"];
    const viaTorch = await run(scanArgs);
    const viaOnnx = await run([...scanArgs, "--engine", "onnxruntime"]);
    assert.equal(viaOnnx.code, 0, viaOnnx.err.join("\n"));
    const verdicts = (lines: string[]) =>
      lines.slice(0, -1).map((l) => {
        const o: { pred: number; flagged: boolean } = JSON.parse(l);
        return [o.pred, o.flagged];
      });
    assert.equal(viaOnnx.out.length, 49);
    assert.deepEqual(verdicts(viaOnnx.out), verdicts(viaTorch.out));
    assert.match(viaOnnx.out.at(-1) ?? "", /"engine":"onnxruntime"/);
  } finally {
    await onnx?.release();
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
  assert.equal(liveScriptModules(), modules);
});

test("export and scan --engine onnxruntime refuse a TorchScript model with an unsupported operator, naming it and where it is", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-ts-unsupported-"));
  try {
    const bundle = await defended(dir, "unsupported-op-scripted.pt");
    // The CLI's entry prints the message and exits 1; main() rejects with it.
    const named = /aten::cumsum in head \(code\/__torch__\.py:\d+: torch\.cumsum\) is not supported/;
    await assert.rejects(run(["export", "--bundle", bundle, "--out", join(dir, "d.onnx")]), named);
    await assert.rejects(stat(join(dir, "d.onnx")), { code: "ENOENT" }, "no file is written");
    await assert.rejects(
      run(["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--limit", "4", "--engine", "onnxruntime"]),
      named,
    );
    // libtorch scores it.
    const lib = await run(["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--limit", "4"]);
    assert.equal(lib.code, 0, lib.err.join("\n"));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
