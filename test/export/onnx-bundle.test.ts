// A real fitted detector (compact CNN on Fashion-MNIST) through `badexpert export` and
// `scan --engine onnxruntime`: onnxruntime agrees with libtorch under every score rule; the
// Triton repository describes the graph; NaN scores are flagged (fail closed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, noGrad, rand, tensor, tidy } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { fitBadExpert } from "../../src/defense/fit.js";
import { loadBundle, saveBundle } from "../../src/defense/bundle.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { BadExpertDetector } from "../../src/defense/detector.js";
import { SCORE_RULES, scoreAll } from "../../src/defense/scores.js";
import { Linear } from "../../src/nn/index.js";
import { main } from "../../src/cli/main.js";
import { OnnxDetector, imagesToFloat } from "../../src/export/onnx-detector.js";
import { decodeModel, DataType } from "../../src/export/onnx-proto.js";
import { assertAgree, assertWellFormed, splittingThreshold } from "./agreement.js";
import { QUICK_FIT } from "../helpers/quick-fit.js";

const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };

/** Runs the CLI, capturing stdout and stderr. */
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

test("a fitted bundle: export, Triton repository, scan --engine onnxruntime and every score rule agree with libtorch", async () => {
  const before = memory().numTensors;
  const fmnist = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(fmnist.count, { seed: 1, reserved: 256, calibration: 200 });
  manualSeed(2);
  const model = createModel("compact-cnn", spec);
  const fitted = await fitBadExpert(
    model,
    { spec, preprocessing, classNames: fmnist.classNames },
    subset(fmnist, s.reserved),
    subset(fmnist, s.calibration),
    QUICK_FIT,
  );
  model.dispose();
  const evalSet = subset(fmnist, s.evaluation.subarray(0, 300));
  const dir = await mkdtemp(join(tmpdir(), "bx-onnx-bundle-"));
  const opened: OnnxDetector[] = [];
  try {
    await saveBundle(join(dir, "bundle"), fitted);
    const det = await loadBundle(join(dir, "bundle"));
    try {
      const torch = det.scoreDataset(evalSet);
      assert.ok(
        torch.flagged.includes(1) && torch.flagged.includes(0),
        "the calibrated threshold flags some evaluation images and passes others",
      );

      // badexpert export --format onnx: the file, opened on its own, scores like libtorch.
      const file = join(dir, "detector.onnx");
      const exp = await run(["export", "--bundle", join(dir, "bundle"), "--out", file, "--json"]);
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
      const graph = decodeModel(bytes).graph;
      const thr = graph.initializer.find((t) => t.name === "threshold");
      assert.ok(thr !== undefined);
      assert.equal(new DataView(thr.raw_data.buffer, thr.raw_data.byteOffset, 8).getFloat64(0, true), det.threshold);
      const onnx = await OnnxDetector.open(file, { threads: 1 });
      opened.push(onnx);
      assert.deepEqual(
        { rule: onnx.rule, threshold: onnx.threshold, classNames: onnx.info.classNames },
        { rule: "triangle", threshold: det.threshold, classNames: fmnist.classNames },
      );
      assertAgree(torch, await onnx.scoreDataset(evalSet, { batchSize: 128 }), "fitted bundle");

      // --format triton: the same graph, and a config that names its tensors and types.
      const repo = join(dir, "repo");
      assert.equal(
        (
          await run([
            "export",
            "--bundle",
            join(dir, "bundle"),
            "--format",
            "triton",
            "--out",
            repo,
            "--name",
            "bx",
            "--max-batch-size",
            "64",
          ])
        ).code,
        0,
      );
      assert.deepEqual(new Uint8Array(await readFile(join(repo, "bx", "1", "model.onnx"))), bytes);
      const config = await readFile(join(repo, "bx", "config.pbtxt"), "utf8");
      assert.match(config, /^name: "bx"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 64\n/);
      assert.match(config, /name: "images"\n {4}data_type: TYPE_FP32\n {4}dims: \[ 1, 28, 28 \]/);
      for (const [name, type] of [
        ["pred", "TYPE_INT64"],
        ["expert_confidence", "TYPE_FP32"],
        ["score", "TYPE_FP64"],
        ["flagged", "TYPE_BOOL"],
      ]) {
        assert.match(
          config,
          new RegExp(
            `name: "${name}"\\n {4}data_type: ${type}\\n {4}dims: \\[ 1 \\]\\n {4}reshape: \\{ shape: \\[ \\] \\}`,
          ),
        );
      }
      assert.match(config, /dynamic_batching \{\n {2}max_queue_delay_microseconds: 1000\n\}/);

      // An existing --out is replaced only with --force, and only when badexpert exported it;
      // the repository's other models and anyone's files stay as they are.
      const triton = ["export", "--bundle", join(dir, "bundle"), "--format", "triton", "--out", repo, "--name", "bx"];
      await mkdir(join(repo, "theirs", "1"), { recursive: true });
      await writeFile(join(repo, "theirs", "config.pbtxt"), 'name: "theirs"');
      await assert.rejects(
        run(triton),
        /bx already exists and is not empty \(3 entries\); refusing to overwrite it \(--force replaces it\)/,
      );
      assert.equal((await run([...triton, "--force"])).code, 0);
      assert.equal(await readFile(join(repo, "theirs", "config.pbtxt"), "utf8"), 'name: "theirs"');
      await writeFile(join(repo, "bx", "labels.txt"), "mine");
      await assert.rejects(
        run([...triton, "--force"]),
        /bx holds a badexpert Triton model directory and 1 entry badexpert did not write \(labels\.txt\); refusing to replace it/,
      );
      assert.equal(await readFile(join(repo, "bx", "labels.txt"), "utf8"), "mine");
      const onnxArgs = ["export", "--bundle", join(dir, "bundle"), "--out", file];
      await assert.rejects(
        run(onnxArgs),
        /detector\.onnx already exists; refusing to overwrite it \(--force replaces an ONNX model badexpert exported\)/,
      );
      assert.equal((await run([...onnxArgs, "--force"])).code, 0);
      assert.deepEqual(new Uint8Array(await readFile(file)), bytes, "the same export again");
      const theirs = join(dir, "theirs.onnx");
      await writeFile(theirs, "not a model of ours");
      await assert.rejects(
        run(["export", "--bundle", join(dir, "bundle"), "--out", theirs, "--force"]),
        /theirs\.onnx is not an ONNX model badexpert exported \(not an ONNX model\); refusing to replace it/,
      );
      assert.equal(await readFile(theirs, "utf8"), "not a model of ours");

      // --model-only: M's logits and prediction.
      assert.equal(
        (await run(["export", "--bundle", join(dir, "bundle"), "--model-only", "--out", join(dir, "m.onnx")])).code,
        0,
      );
      assert.deepEqual(
        decodeModel(new Uint8Array(await readFile(join(dir, "m.onnx")))).graph.output.map((o) => o.name),
        ["logits", "pred"],
      );

      // scan --engine onnxruntime prints the same verdicts as the libtorch engine.
      const scanArgs = ["scan", "--bundle", join(dir, "bundle"), "--dataset", "fashion-mnist", "--limit", "40"];
      const viaTorch = await run(scanArgs);
      const viaOnnx = await run([...scanArgs, "--engine", "onnxruntime"]);
      assert.equal(viaOnnx.code, 0, viaOnnx.err.join("\n"));
      const verdicts = (lines: string[]) =>
        lines.slice(0, -1).map((l) => {
          const o: { pred: number; flagged: boolean } = JSON.parse(l);
          return [o.pred, o.flagged];
        });
      assert.equal(viaOnnx.out.length, 41);
      assert.deepEqual(verdicts(viaOnnx.out), verdicts(viaTorch.out));
      assert.match(viaOnnx.out.at(-1) ?? "", /"engine":"onnxruntime"/);

      // Every score rule, each with a threshold that splits these real scores.
      for (const rule of SCORE_RULES) {
        const scores = scoreAll(rule, torch.auxiliaryConfidence, torch.expertConfidence, torch.expertComplement);
        const d = det.withDecision(rule, splittingThreshold(scores));
        const o = await OnnxDetector.fromDetector(d, { threads: 1 });
        opened.push(o);
        assertAgree(
          d.scoreDataset(evalSet),
          await o.scoreBatch(imagesToFloat(evalSet, 0, evalSet.count), evalSet.count),
          `rule ${rule}`,
        );
      }
    } finally {
      det.dispose();
    }
  } finally {
    for (const o of opened) await o.release();
    fitted.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});

test("an expert so certain that b rounds to 1: c (1 − b over the other classes) keeps the scores apart, in libtorch and in the graph", async () => {
  const before = memory().numTensors;
  manualSeed(4);
  const parts = {
    model: createModel("compact-cnn", { imageSize: 8 }),
    expert: createModel("compact-cnn", { imageSize: 8 }),
    auxiliary: createModel("compact-cnn", { imageSize: 8 }),
  };
  // M always predicts class 0; B puts a margin of about 40 on class 0, so its float32 softmax
  // gives b = 1 exactly and 1 − b = 0 for every input, while the other classes still hold ~1e-17.
  const heads = [parts.model, parts.expert].map((m) => [...m.modules()].filter((l) => l instanceof Linear).at(-1));
  for (const [k, head] of heads.entries()) {
    assert.ok(head instanceof Linear && head.bias !== null);
    const bias = head.bias;
    noGrad(() =>
      tidy(() =>
        bias.add_(tensor(Float32Array.from({ length: 10 }, (_, i) => (i === 0 ? ([20, 40][k] as number) : 0)))),
      ),
    );
  }
  const info = {
    spec: { ...spec, imageSize: 8 },
    preprocessing: { ...preprocessing, imageSize: [8, 8] as [number, number] },
    classNames: Array.from({ length: 10 }, String),
    rule: "triangle" as const,
  };
  const open = BadExpertDetector.uncalibrated(parts, info);
  const x = rand([6, 1, 8, 8]);
  const pixels = x.data();
  assert.ok(pixels instanceof Float32Array);
  let onnx: OnnxDetector | null = null;
  try {
    const r = tidy(() => open.scoreBatch(x));
    assert.deepEqual(Array.from(r.pred), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(Array.from(r.expertConfidence), [1, 1, 1, 1, 1, 1], "b rounds to 1 in float32");
    for (const c of r.expertComplement)
      assert.ok(c > 1e-25 && c < 1e-12, `c = ${c}: the other classes' probabilities, not 1 − b = 0`);
    for (const s of r.score)
      assert.ok(s < 0 && s > -1e-10, `score ${s}: below the triangle's ceiling 0, which 1 − b would give`);
    assert.equal(new Set(r.score).size, 6, "six inputs, six different scores: no ties");
    onnx = await OnnxDetector.fromDetector(open.withDecision("triangle", splittingThreshold(r.score)), { threads: 1 });
    const d = tidy(() => open.withDecision("triangle", splittingThreshold(r.score)).scoreBatch(x));
    assertAgree(d, await onnx.scoreBatch(pixels, 6), "b = 1");
    assert.deepEqual(
      Array.from(d.flagged).filter((f) => f === 1).length,
      3,
      "a threshold between the tied-no-more scores splits them",
    );
  } finally {
    await onnx?.release();
    x.dispose();
    open.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("the exported graph flags NaN scores (fail closed) and compares with the threshold initializer", async () => {
  const before = memory().numTensors;
  manualSeed(3);
  const parts = {
    model: createModel("compact-cnn", { imageSize: 8 }),
    expert: createModel("compact-cnn", { imageSize: 8 }),
    auxiliary: createModel("compact-cnn", { imageSize: 8 }),
  };
  // B's last layer outputs NaN: b is NaN, and so is every score.
  const head = [...parts.expert.modules()].filter((m) => m instanceof Linear).at(-1);
  assert.ok(head instanceof Linear && head.bias !== null);
  const bias = head.bias;
  noGrad(() => bias.fill_(Number.NaN));
  const info = {
    spec: { ...spec, imageSize: 8 },
    preprocessing: { ...preprocessing, imageSize: [8, 8] as [number, number] },
    classNames: Array.from({ length: 10 }, String),
    rule: "triangle" as const,
  };
  const open = BadExpertDetector.uncalibrated(parts, info);
  const x = rand([3, 1, 8, 8]);
  const pixels = x.data();
  assert.ok(pixels instanceof Float32Array);
  const onnx: OnnxDetector[] = [];
  try {
    for (const rule of SCORE_RULES) {
      const o = await OnnxDetector.fromDetector(open.withDecision(rule, 0.5), { threads: 1 });
      onnx.push(o);
      const r = await o.scoreBatch(pixels, 3);
      assert.ok(
        Array.from(r.score).every(Number.isNaN),
        `rule ${rule}: NaN scores, got ${Array.from(r.score).join(", ")}`,
      );
      assert.deepEqual(Array.from(r.flagged), [1, 1, 1], `rule ${rule}: NaN scores are flagged`);
    }
    // An uncalibrated detector (threshold +Infinity) cannot be exported: it would pass every input.
    noGrad(() => bias.fill_(0));
    await assert.rejects(
      OnnxDetector.fromDetector(open, { threads: 1 }),
      /threshold is Infinity, not a finite number: it was never calibrated/,
    );
    const inMemory = tidy(() => open.scoreBatch(x));
    assert.ok(Array.from(inMemory.score).every(Number.isFinite));
    assert.deepEqual(Array.from(inMemory.flagged), [1, 1, 1], "in memory it flags every input until calibrated");
  } finally {
    for (const o of onnx) await o.release();
    x.dispose();
    open.dispose();
  }
  assert.equal(memory().numTensors, before);
});
