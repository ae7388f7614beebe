// evaluate-defense against the attack the user fears, end to end through the real CLI, on a
// backdoored TorchScript model written by real PyTorch (test/fixtures/pytorch/make-triggered.py:
// a small CNN with a smiley-outline trigger, not in our attack library): import --torchscript,
// defend, then --triggered FILE.npz, --triggered DIR, --trigger PNG (alpha mask, and a separate
// --mask). Every figure is checked against the same metrics computed here, independently, from
// the bundle's own scores of images this test triggers itself.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { memory } from "../../src/engine/index.js";
import { loadBundle } from "../../src/defense/bundle.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { defenseMetrics, type DefenseMetrics } from "../../src/defense/metrics.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { limited } from "../../src/jobs/compare.js";
import { ZipArchive } from "../../src/io/zip.js";
import { npyValues, parseNpy } from "../../src/io/npy.js";
import { runCli, tinyFashionMnist, type CliRun } from "../cli/fixtures.js";
import { fixture } from "../helpers/pytorch-fixtures.js";

const root = await mkdtemp(join(tmpdir(), "bx-triggered-"));
after(() => rm(root, { recursive: true, force: true }));
process.env.BADEXPERT_CACHE = join(root, "cache");
const data = await tinyFashionMnist(after, 100, 1000);
const bundle = join(root, "bundle");
const LIMIT = 400;
const TARGET = 3;
/** The smiley of make-triggered.py: rows 2..8, columns 2..8 of a 28x28 image. */
const SMILEY = ["0111110", "1000001", "1010101", "1000001", "1011101", "1000001", "0111110"];

async function cli(args: string[]): Promise<CliRun> {
  const before = memory();
  const r = await runCli(args);
  const now = memory();
  assert.equal(now.numTensors, before.numTensors, `${args[0]}: ${now.numTensors - before.numTensors} tensor(s) leaked`);
  assert.equal(
    now.numHandles,
    before.numHandles,
    `${args[0]}: ${now.numHandles - before.numHandles} native handle(s) leaked`,
  );
  return r;
}

/** The Python-written .npz, read here with the bare .npy parser: x [N, 28, 28] uint8, y, scalar target. */
async function npzSet(): Promise<{ images: Uint8Array; labels: Int32Array; target: number }> {
  const zip = new ZipArchive(await readFile(fixture("smiley-triggered.npz")), "npz");
  const x = parseNpy(zip.read("x.npy"), "x");
  assert.deepEqual(x.shape, [200, 28, 28]);
  return {
    images: new Uint8Array(x.data),
    labels: Int32Array.from(npyValues(parseNpy(zip.read("y.npy"), "y"))),
    target: Number(npyValues(parseNpy(zip.read("target.npy"), "target"))[0]),
  };
}

function stampSmiley(ds: ImageDataset): ImageDataset {
  const out = new Uint8Array(ds.images);
  for (let i = 0; i < ds.count; i++) {
    for (let r = 0; r < 7; r++)
      for (let c = 0; c < 7; c++) if (SMILEY[r]?.[c] === "1") out[i * 784 + (2 + r) * 28 + 2 + c] = 255;
  }
  return { ...ds, images: out };
}

/** The bundle's evaluation split (as evaluate-defense --evaluation-limit LIMIT picks it) and the metrics of `triggered` against it. */
async function expectedMetrics(
  triggered: ImageDataset,
  success: (pred: Int32Array) => Int32Array,
): Promise<DefenseMetrics> {
  const det = await loadBundle(bundle);
  try {
    const splits = det.info.creation.splits as { seed: number; reserved: number; calibration: number };
    const test = await loadDataset("fashion-mnist", { split: "test", path: data });
    const evaluation = subset(
      test,
      limited(defenseSplits(test.count, splits).evaluation, LIMIT, { seed: splits.seed }),
    );
    const c = det.scoreDataset(evaluation);
    const p = det.scoreDataset(triggered);
    return defenseMetrics(
      { pred: c.pred, score: c.score, label: evaluation.labels },
      { pred: p.pred, score: p.score, label: success(p.pred) },
      det.threshold,
    );
  } finally {
    det.dispose();
  }
}

async function evaluationSplit(): Promise<ImageDataset> {
  const det = await loadBundle(bundle);
  const splits = det.info.creation.splits as { seed: number; reserved: number; calibration: number };
  det.dispose();
  const test = await loadDataset("fashion-mnist", { split: "test", path: data });
  return subset(test, limited(defenseSplits(test.count, splits).evaluation, LIMIT, { seed: splits.seed }));
}

function assertSameMetrics(got: Record<string, unknown>, want: DefenseMetrics, what: string): void {
  for (const k of [
    "cleanCount",
    "poisonCount",
    "cleanAccuracyBefore",
    "cleanAccuracyAfter",
    "asrBefore",
    "asrAfter",
    "auroc",
    "tpr",
    "fpr",
    "threshold",
  ] as const) {
    const g = got[k] as number;
    const w = want[k];
    assert.ok(Number.isNaN(w) ? Number.isNaN(g) : Math.abs(g - w) <= 1e-12, `${what}: ${k} is ${g}, expected ${w}`);
  }
}

test("a TorchScript model with no attack recorded is imported and defended; evaluate-defense without a source says how to give one", async () => {
  const imp = await cli([
    "import",
    "--torchscript",
    fixture("smiley-cnn-scripted.pt"),
    "--dataset",
    "fashion-mnist",
    "--data-path",
    data,
    "--out",
    join(root, "ck"),
    "--json",
  ]);
  assert.equal(imp.code, 0, imp.err);
  const expected = JSON.parse(await readFile(fixture("smiley-expected.json"), "utf8")) as {
    attackSuccessRate: number;
    npzAttackSuccessRate: number;
  };
  // PyTorch measured a working backdoor: the figures below are about a real one.
  assert.ok(expected.attackSuccessRate > 0.9 && expected.npzAttackSuccessRate > 0.9, JSON.stringify(expected));
  const d = await cli([
    "defend",
    "--checkpoint",
    join(root, "ck"),
    "--out",
    bundle,
    "--reserved",
    "256",
    "--calibration",
    "200",
    "--unlearn-lr",
    "1e-4",
    "--finetune-lr",
    "0.01",
    "--finetune-epochs",
    "1",
    "--fpr",
    "0.05",
  ]);
  assert.equal(d.code, 0, d.err);
  // A failure of the work (exit 1 at the entry point) is thrown by main().
  const none = await runCli(["evaluate-defense", "--bundle", bundle]);
  assert.equal(none.code, 2, "a usage mistake: exit 2");
  assert.match(
    none.err,
    /the model's checkpoint records none \(give --attack NAME, your own triggered inputs with --triggered DIR\|FILE\.npz, or a trigger image with --trigger PNG\)/,
  );
});

test("--triggered FILE.npz and the same images as a folder with labels.csv give the metrics computed from the bundle's scores", async () => {
  const npz = await npzSet();
  assert.equal(npz.target, TARGET);
  const triggered: ImageDataset = {
    name: "t",
    split: "test",
    images: npz.images,
    labels: npz.labels,
    count: 200,
    height: 28,
    width: 28,
    channels: 1,
    classNames: Array.from({ length: 10 }, (_, i) => String(i)),
    source: "npz",
  };
  const want = await expectedMetrics(triggered, () => new Int32Array(200).fill(TARGET));
  assert.equal(want.poisonCount, 200);
  assert.ok(want.asrBefore > 0.9, `the imported model's ASR on the fixture's triggered images: ${want.asrBefore}`);

  const report = join(root, "report");
  const r = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--triggered",
    fixture("smiley-triggered.npz"),
    "--evaluation-limit",
    String(LIMIT),
    "--report",
    report,
    "--explain-inputs",
    "4",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = r.json() as Record<string, unknown>;
  assertSameMetrics(j, want, "--triggered .npz");
  assert.equal(j.asrMeaning, "target");
  assert.deepEqual((j.attack as { name: string }).name, "triggered-set");
  const written = JSON.parse(await readFile(join(report, "metrics.json"), "utf8")) as Record<string, unknown>;
  assert.equal((written.attack as { name: string }).name, "triggered-set");
  assert.equal(written.asrBefore, want.asrBefore);
  assert.match(await readFile(join(report, "report.md"), "utf8"), /triggered-set/);

  // The same images as PNG files, listed in shuffled order (the file order is the CSV's).
  const dir = join(root, "triggered-png");
  await mkdir(join(dir, "sub"), { recursive: true });
  const rows = ["file,label,target"];
  for (let i = 0; i < 200; i++) {
    const name = i % 2 === 0 ? `img-${i}.png` : `sub/img-${i}.png`;
    await sharp(Buffer.from(npz.images.subarray(i * 784, (i + 1) * 784)), {
      raw: { width: 28, height: 28, channels: 1 },
    })
      .png()
      .toFile(join(dir, name));
    rows.push(`${name},${npz.labels[i]},${TARGET}`);
  }
  await writeFile(join(dir, "labels.csv"), `${[rows[0], ...rows.slice(1).reverse()].join("\r\n")}\r\n`);
  const f = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--triggered",
    dir,
    "--evaluation-limit",
    String(LIMIT),
    "--json",
  ]);
  assert.equal(f.code, 0, f.err);
  assertSameMetrics(f.json() as Record<string, unknown>, want, "--triggered DIR");

  // Without a target column, ASR counts triggered inputs whose prediction is not their true label, and the output says so.
  await writeFile(
    join(dir, "labels.csv"),
    ["file,label", ...rows.slice(1).map((l) => l.split(",").slice(0, 2).join(","))].join("\n"),
  );
  const wantNoTarget = await expectedMetrics(triggered, (pred) =>
    Int32Array.from(pred, (p, i) => (p === npz.labels[i] ? -1 : p)),
  );
  const u = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--triggered",
    dir,
    "--evaluation-limit",
    String(LIMIT),
    "--json",
  ]);
  assert.equal(u.code, 0, u.err);
  const ju = u.json() as Record<string, unknown>;
  assertSameMetrics(ju, wantNoTarget, "--triggered DIR without targets");
  assert.equal(ju.asrMeaning, "misclassified");
  assert.match(u.out, /\| Triggered inputs misclassified \(ASR, no target known\) \|/);
  assert.match(
    u.out,
    /no target class known: ASR is the share of triggered inputs whose prediction differs from their true label/,
  );
  // Here every input sent to the target is misclassified, and some inputs may be misclassified elsewhere.
  assert.ok(wantNoTarget.asrBefore >= want.asrBefore, `${wantNoTarget.asrBefore} < ${want.asrBefore}`);
  // --target supplies the missing one: the figures of the set with targets again.
  const t = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--triggered",
    dir,
    "--target",
    String(TARGET),
    "--evaluation-limit",
    String(LIMIT),
    "--json",
  ]);
  assert.equal(t.code, 0, t.err);
  assertSameMetrics(t.json() as Record<string, unknown>, want, "--triggered DIR --target");
});

test("--trigger PNG stamps the trigger on the evaluation images of other classes; an alpha mask and a separate --mask agree", async () => {
  const evaluation = await evaluationSplit();
  const others = Int32Array.from(
    Array.from({ length: evaluation.count }, (_, i) => i).filter((i) => evaluation.labels[i] !== TARGET),
  );
  const triggered = stampSmiley(subset(evaluation, others));
  const want = await expectedMetrics(triggered, () => new Int32Array(others.length).fill(TARGET));
  assert.ok(others.length < evaluation.count && want.poisonCount === others.length);

  const r = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--trigger",
    fixture("smiley-trigger.png"),
    "--target",
    String(TARGET),
    "--evaluation-limit",
    String(LIMIT),
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = r.json() as Record<string, unknown>;
  assertSameMetrics(j, want, "--trigger (alpha)");
  assert.equal(j.leftOut, evaluation.count - others.length);
  assert.deepEqual((j.attack as { params: Record<string, unknown> }).params.mask, "alpha channel");

  const m = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--trigger",
    fixture("smiley-trigger-rgb.png"),
    "--mask",
    fixture("smiley-mask.png"),
    "--target",
    String(TARGET),
    "--evaluation-limit",
    String(LIMIT),
    "--json",
  ]);
  assert.equal(m.code, 0, m.err);
  assertSameMetrics(m.json() as Record<string, unknown>, want, "--trigger --mask");

  // An opaque trigger without a mask covers the whole image: blended at 0.5 it is the mean of both.
  const half = subset(evaluation, others);
  const blended = {
    ...half,
    images: Uint8Array.from(half.images, (v, k) =>
      Math.round(0.5 * v + 0.5 * (SMILEY[Math.floor((k % 784) / 28) - 2]?.[(k % 28) - 2] === "1" ? 255 : 0)),
    ),
  };
  const wantBlend = await expectedMetrics(blended, () => new Int32Array(others.length).fill(TARGET));
  const b = await cli([
    "evaluate-defense",
    "--bundle",
    bundle,
    "--trigger",
    fixture("smiley-trigger-rgb.png"),
    "--trigger-alpha",
    "0.5",
    "--target",
    String(TARGET),
    "--evaluation-limit",
    String(LIMIT),
    "--json",
  ]);
  assert.equal(b.code, 0, b.err);
  assertSameMetrics(b.json() as Record<string, unknown>, wantBlend, "--trigger --trigger-alpha 0.5");
});

test("usage mistakes exit 2 naming the option; bad triggered inputs fail naming the file", async () => {
  const usage: [string[], RegExp][] = [
    [
      ["--attack", "badnet", "--triggered", fixture("smiley-triggered.npz")],
      /give one of --attack, --triggered and --trigger, not --attack and --triggered/,
    ],
    [
      ["--triggered", fixture("smiley-triggered.npz"), "--trigger", fixture("smiley-trigger.png")],
      /not --triggered and --trigger/,
    ],
    [
      ["--triggered", fixture("smiley-triggered.npz"), "--mask", fixture("smiley-mask.png")],
      /--mask goes with --trigger PNG/,
    ],
    [
      ["--triggered", fixture("smiley-triggered.npz"), "--attack-param", "targetClass=1"],
      /--attack-param goes with a built-in attack/,
    ],
    [["--target", "3"], /--target goes with --trigger or --triggered/],
    [
      ["--triggered", fixture("smiley-triggered.npz"), "--target", "2"],
      /target: .*smiley-triggered\.npz records its own targets/,
    ],
    [
      ["--trigger", fixture("smiley-trigger.png"), "--target", "10"],
      /target: expected a class index in 0\.\.9, got 10/,
    ],
    [
      ["--trigger", fixture("smiley-trigger.png"), "--trigger-alpha", "1.5"],
      /--trigger-alpha: expected a decimal number in \(0, 1\]/,
    ],
  ];
  for (const [args, re] of usage) {
    const r = await cli(["evaluate-defense", "--bundle", bundle, ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}, ${r.err}`);
    assert.match(r.err, re, args.join(" "));
  }
  // --parts needs a target: with one it runs, without one it is refused before any scoring.
  const dir = join(root, "no-target");
  await mkdir(dir);
  await sharp(Buffer.alloc(784, 9), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(join(dir, "a.png"));
  await writeFile(join(dir, "labels.csv"), "file,label\na.png,1\n");
  const parts = await cli(["evaluate-defense", "--bundle", bundle, "--triggered", dir, "--parts"]);
  assert.equal(parts.code, 2);
  assert.match(parts.err, /parts: .*give the target class/);

  const failures: [string, RegExp][] = [];
  // An image of another size is refused, not resized.
  const big = join(root, "big");
  await mkdir(big);
  await sharp(Buffer.alloc(32 * 32, 9), { raw: { width: 32, height: 32, channels: 1 } })
    .png()
    .toFile(join(big, "a.png"));
  await writeFile(join(big, "labels.csv"), "file,label,target\na.png,1,3\n");
  failures.push([big, /the triggered images are 32x32 but the model takes 28x28 inputs \(they are not resized/]);
  // An image the labels file does not list.
  const extra = join(root, "extra");
  await mkdir(extra);
  for (const n of ["a.png", "b.png"])
    await sharp(Buffer.alloc(784, 9), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(join(extra, n));
  await writeFile(join(extra, "labels.csv"), "file,label,target\na.png,1,3\n");
  failures.push([extra, /1 image file\(s\) are not listed in labels\.csv \(b\.png\)/]);
  // A label outside the model's classes, and a path outside the folder.
  const badLabel = join(root, "bad-label");
  await mkdir(badLabel);
  await sharp(Buffer.alloc(784, 9), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(join(badLabel, "a.png"));
  await writeFile(join(badLabel, "labels.csv"), "file,label,target\na.png,12,3\n");
  failures.push([badLabel, /label 12 of image 0 is not a class of the model \(0\.\.9\)/]);
  const escape = join(root, "escape");
  await mkdir(escape);
  await writeFile(join(escape, "labels.csv"), "file,label,target\n../big/a.png,1,3\n");
  failures.push([escape, /"\.\.\/big\/a\.png" is not inside/]);
  // Only images of the target class: nothing can show the attack.
  const allTarget = join(root, "all-target");
  await mkdir(allTarget);
  await sharp(Buffer.alloc(784, 9), { raw: { width: 28, height: 28, channels: 1 } })
    .png()
    .toFile(join(allTarget, "a.png"));
  await writeFile(join(allTarget, "labels.csv"), "file,label,target\na.png,3,3\n");
  failures.push([allTarget, /every triggered image's true class is its target/]);
  const before = memory().numTensors;
  for (const [path, re] of failures)
    await assert.rejects(runCli(["evaluate-defense", "--bundle", bundle, "--triggered", path]), re, path);
  await assert.rejects(
    runCli(["evaluate-defense", "--bundle", bundle, "--trigger", join(big, "a.png")]),
    /the trigger image is 32x32 but the model takes 28x28 inputs/,
  );
  assert.equal(memory().numTensors, before, "a refused evaluation left tensors behind");
});
