// Every command end to end on tiny real data (600 Fashion-MNIST training and test images, one
// epoch): parse → run → the JSON result on the last stdout line. The tests run in order and share
// the checkpoint and bundle they make.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { memory } from "../../src/engine/index.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { loadBundle } from "../../src/defense/bundle.js";
import { FINETUNE_RATE_CANDIDATES, FINETUNE_RETAINED } from "../../src/defense/defaults.js";
import { OptionError } from "../../src/jobs/errors.js";
import { readCheckpointMeta } from "../../src/train/checkpoint.js";
import { FASHION_MNIST, runCli, tinyFashionMnist, type CliRun } from "./fixtures.js";

const root = await mkdtemp(join(tmpdir(), "bx-cli-"));
after(() => rm(root, { recursive: true, force: true }));
// Decoded-dataset cache of these throw-away folders: kept out of the user's cache.
process.env.BADEXPERT_CACHE = join(root, "cache");
const data = await tinyFashionMnist(after, 600, 600);
const ckpt = join(root, "ckpt");
const bundle = join(root, "bundle");

/** Runs the CLI and checks that it left no tensor or native handle behind. */
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

function obj(x: unknown): Record<string, unknown> {
  assert.ok(
    x !== null && typeof x === "object" && !Array.isArray(x),
    `expected a JSON object, got ${JSON.stringify(x)}`,
  );
  return x as Record<string, unknown>;
}

test("info --json describes the engine", async () => {
  const r = await cli(["info", "--json"]);
  assert.equal(r.code, 0);
  const j = obj(r.json());
  assert.equal(j.cuda, false);
  assert.equal(typeof j.libtorch, "string");
  assert.ok(Number.isInteger(j.threads) && (j.threads as number) >= 1);
});

test("train: a backdoored compact CNN on 600 real images, one epoch", async () => {
  const r = await cli([
    "train",
    "--dataset",
    "fashion-mnist",
    "--data-path",
    data,
    "--attack",
    "badnet",
    "--attack-param",
    "rate=0.05",
    "--epochs",
    "1",
    "--out",
    ckpt,
    "--threads",
    "1",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  assert.equal(j.checkpoint, ckpt);
  assert.equal(j.model, "compact-cnn");
  assert.equal(obj(j.attack).name, "badnet");
  assert.equal(j.epochs, 1);
  assert.ok(
    (j.cleanAccuracy as number) > 0.2 && (j.cleanAccuracy as number) <= 1,
    `clean accuracy ${String(j.cleanAccuracy)}`,
  );
  assert.ok(existsSync(join(ckpt, "model.safetensors")));
  // Every epoch records the backdoor's success so far; after the last one it is the final figure.
  const meta = await readCheckpointMeta(ckpt);
  const last = meta.training.history?.at(-1);
  assert.equal(meta.training.history?.length, 1);
  assert.equal(typeof last?.attackSuccessRate, "number");
  assert.equal(last?.attackSuccessRate, meta.metrics.attackSuccessRate);
});

test("evaluate: the checkpoint on its 600 test images", async () => {
  const r = await cli(["evaluate", "--checkpoint", ckpt, "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  assert.equal(j.count, 600);
  assert.equal(j.split, "test");
  assert.equal((j.perClass as unknown[]).length, 10);
});

test("attack list and attack preview (with the deprecated --param alias)", async () => {
  const list = await cli(["attack", "list", "--json"]);
  assert.equal(list.code, 0);
  assert.equal((list.json() as unknown[]).length, 17);
  const png = join(root, "preview.png");
  const r = await cli([
    "attack",
    "preview",
    "--attack",
    "badnet",
    "--dataset",
    "fashion-mnist",
    "--data-path",
    data,
    "--count",
    "2",
    "--scale",
    "1",
    "--param",
    "targetClass=3",
    "--out",
    png,
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /--param is deprecated; use --attack-param/);
  const j = obj(r.json());
  assert.equal(obj(j.params).targetClass, 3);
  const meta = await sharp(png).metadata();
  assert.equal(meta.width, j.width);
  const both = await cli([
    "attack",
    "preview",
    "--attack",
    "badnet",
    "--dataset",
    "fashion-mnist",
    "--param",
    "targetClass=3",
    "--attack-param",
    "targetClass=4",
  ]);
  assert.equal(both.code, 2);
  assert.match(both.err, /give --attack-param or its old name --param, not both/);
});

test("defend refuses a calibration set smaller than 1/FPR before any training", async () => {
  const t0 = Date.now();
  const r = await cli(["defend", "--checkpoint", ckpt, "--out", bundle, "--calibration", "50", "--unlearn-lr", "1e-4"]);
  assert.equal(r.code, 2);
  assert.match(
    r.err,
    /calibration: 50 calibration images cannot calibrate a threshold at FPR 0\.01: it needs at least 1\/FPR = 100/,
  );
  assert.equal(existsSync(bundle), false);
  assert.ok(Date.now() - t0 < 5000, "refused before finetuning");
});

test("defend: a bundle from the checkpoint, on the device it was given", async () => {
  const r = await cli([
    "defend",
    "--checkpoint",
    ckpt,
    "--out",
    bundle,
    "--unlearn-lr",
    "1e-4",
    "--finetune-epochs",
    "1",
    "--device",
    "cpu",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  assert.equal(j.bundle, bundle);
  assert.deepEqual(j.splits, { reserved: 30, calibration: 120, evaluation: 450 });
  assert.equal(j.detector, "badexpert");
  const options = obj(obj(j.badexpert).options);
  // The device reaches the job (it used to be dropped by the CLI).
  assert.equal(options.device, "cpu");
  assert.equal(obj(options.unlearn).lr, 1e-4);
  assert.equal(obj(options.finetune).epochs, 1);
  assert.ok(Number.isFinite(j.threshold));
  // B's rate was given; M''s is chosen by default (defense/procedure.ts), among the candidates.
  assert.equal(obj(j.badexpert).unlearnLrSource, "given");
  const sel = obj(obj(j.badexpert).finetuneSelection);
  assert.ok(FINETUNE_RATE_CANDIDATES.includes(sel.lr as number), String(sel.lr));
  assert.equal(obj(options.finetune).lr, sel.lr);
});

test("defend --finetune-lr 0.01: a given rate wins over the default", async () => {
  const out = join(root, "bundle-fixed");
  const r = await cli([
    "defend",
    "--checkpoint",
    ckpt,
    "--out",
    out,
    "--unlearn-lr",
    "1e-4",
    "--finetune-lr",
    "0.01",
    "--finetune-epochs",
    "1",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  assert.equal(obj(j.badexpert).finetuneSelection, null);
  assert.equal(obj(obj(obj(j.badexpert).options).finetune).lr, 0.01);
  assert.doesNotMatch(r.err, /choosing the finetuning rate/);
});

test("defend --finetune-lr auto: M' at the candidates strongest first, the rule's pick, recorded in the bundle", async () => {
  const out = join(root, "bundle-auto");
  const r = await cli([
    "defend",
    "--checkpoint",
    ckpt,
    "--out",
    out,
    "--unlearn-lr",
    "1e-4",
    "--finetune-lr",
    "auto",
    "--finetune-epochs",
    "1",
    "--json",
  ]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  const sel = obj(obj(j.badexpert).finetuneSelection);
  const table = sel.table as { lr: number; calibrationAccuracy: number; kept: boolean }[];
  // The candidates strongest first, up to the first that keeps 80% of M's accuracy above chance (else all of them).
  assert.deepEqual(
    table.map((t) => t.lr),
    FINETUNE_RATE_CANDIDATES.slice(0, table.length),
  );
  const floor = 0.1 + FINETUNE_RETAINED * ((sel.modelAccuracy as number) - 0.1);
  for (const t of table) assert.equal(t.kept, t.calibrationAccuracy >= floor);
  assert.ok(table.slice(0, -1).every((t) => !t.kept));
  assert.equal(sel.lr, (table[table.length - 1] as { lr: number }).lr);
  assert.equal(sel.conclusive, (table[table.length - 1] as { kept: boolean }).kept);
  if (sel.conclusive !== true) assert.equal(table.length, FINETUNE_RATE_CANDIDATES.length);
  assert.equal(obj(obj(obj(j.badexpert).options).finetune).lr, sel.lr);
  assert.match(r.err, /M': (chose|no rate kept)/);
  const back = await loadBundle(out);
  try {
    assert.deepEqual(back.info.creation?.finetuneSelection, sel);
    assert.equal(back.info.creation?.finetune?.lr, sel.lr);
  } finally {
    back.dispose();
  }
  const bad = await cli(["defend", "--checkpoint", ckpt, "--out", join(root, "never"), "--finetune-lr", "fast"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--finetune-lr/);
});

test("--device cuda on this CPU build is one clear usage error for defend, scan and evaluate-defense", async () => {
  for (const args of [
    ["defend", "--checkpoint", ckpt, "--out", join(root, "never")],
    ["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--data-path", data],
    ["evaluate-defense", "--bundle", bundle],
  ]) {
    const r = await cli([...args, "--device", "cuda"]);
    assert.equal(r.code, 2, `${args[0]}: ${r.err}`);
    assert.match(r.err, /--device: device "cuda": CUDA is not available/);
    assert.equal(r.out, "");
  }
  assert.equal(existsSync(join(root, "never")), false);
  // The jobs check it themselves too (library callers never pass through the CLI).
  await assert.rejects(
    defendCheckpoint({ checkpoint: ckpt, out: join(root, "never"), device: "cuda" }),
    (e: unknown) => e instanceof OptionError && e.option === "device",
  );
  await assert.rejects(
    evaluateBundle({ bundle, device: "cuda" }),
    (e: unknown) => e instanceof OptionError && /CUDA is not available/.test(e.message),
  );
  await assert.rejects(
    evaluateBundle({ bundle, device: "cuda:x" }),
    (e: unknown) => e instanceof OptionError && /expected "cpu", "cuda" or "cuda:N"/.test(e.message),
  );
});

test("evaluate-defense: metrics on the held-out split and a report", async () => {
  const report = join(root, "report");
  const r = await cli(["evaluate-defense", "--bundle", bundle, "--report", report, "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  assert.equal(obj(j.attack).name, "badnet");
  assert.equal(j.cleanCount, 450);
  assert.ok((j.auroc as number) >= 0 && (j.auroc as number) <= 1);
  assert.ok(existsSync(join(report, "report.html")));
  assert.equal(j.parts, undefined, "M, B and M' on their own only when asked");
});

test("evaluate-defense --parts: M, B and M' on their own; M's figures are the metrics' before columns", async () => {
  const r = await cli(["evaluate-defense", "--bundle", bundle, "--parts", "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = obj(r.json());
  const parts = obj(j.parts);
  const m = obj(parts.model);
  // The same evaluation split and triggered set as the metrics, measured by another path.
  assert.equal(m.cleanAccuracy, j.cleanAccuracyBefore);
  assert.equal(m.toTarget, j.asrBefore);
  for (const name of ["expert", "auxiliary"]) {
    const p = obj(parts[name]);
    for (const k of ["cleanAccuracy", "toTarget"])
      assert.ok((p[k] as number) >= 0 && (p[k] as number) <= 1, `${name}.${k}`);
  }
  assert.match(r.out, /\| model \| clean accuracy \| triggered sent to the target \|/);
  assert.match(r.out, /\| B \| \d+\.\d\d% \| \d+\.\d\d% \|/);
});

test("scan a dataset split: one line per input as it goes, then a summary", async () => {
  const r = await cli([
    "scan",
    "--bundle",
    bundle,
    "--dataset",
    "fashion-mnist",
    "--data-path",
    data,
    "--limit",
    "300",
  ]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.lines.length, 301);
  const first = obj(JSON.parse(r.lines[0] ?? ""));
  assert.equal(first.input, "fashion-mnist/test/0");
  assert.equal(typeof first.flagged, "boolean");
  assert.ok(Number.isInteger(first.label));
  const s = obj(r.json());
  assert.deepEqual([s.inputs, s.scored, s.failed], [300, 300, 0]);
});

test("scan files: a bad file is its own error line, the others are scored, exit status 1", async () => {
  const dir = join(root, "images");
  await mkdir(join(dir, "a-folder.png"), { recursive: true });
  const good: string[] = [];
  for (let i = 0; i < 3; i++) {
    const f = join(dir, `img${i}.png`);
    await sharp(Buffer.alloc(28 * 28, 40 * i), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(f);
    good.push(f);
  }
  const corrupt = join(dir, "corrupt.png");
  await writeFile(corrupt, "not a png at all");
  const missing = join(dir, "missing.png");
  const r = await cli([
    "scan",
    "--bundle",
    bundle,
    good[0] as string,
    join(dir, "a-folder.png"),
    corrupt,
    good[1] as string,
    missing,
    good[2] as string,
  ]);
  assert.equal(r.code, 1);
  const lines = r.lines.map((l) => obj(JSON.parse(l)));
  assert.equal(lines.length, 7);
  assert.deepEqual(
    lines.slice(0, 6).map((l) => l.input),
    [good[0], join(dir, "a-folder.png"), corrupt, good[1], missing, good[2]],
  );
  assert.match(String(lines[1]?.error), /a-folder\.png: a folder with no image files in it/);
  assert.match(String(lines[2]?.error), /corrupt\.png: cannot decode/);
  assert.match(String(lines[4]?.error), /missing\.png: no such file/);
  for (const i of [0, 3, 5]) assert.equal(typeof lines[i]?.flagged, "boolean");
  for (const i of [1, 2, 4]) assert.equal(lines[i]?.flagged, undefined, "an error line never carries a verdict");
  assert.deepEqual([lines[6]?.inputs, lines[6]?.scored, lines[6]?.failed], [6, 3, 3]);
  const ok = await cli(["scan", "--bundle", bundle, ...good]);
  assert.equal(ok.code, 0);
  assert.equal(obj(ok.json()).scored, 3);
});

test("the tiny Fashion-MNIST fixture comes from the real files", () => {
  assert.ok(existsSync(join(FASHION_MNIST, "t10k-images-idx3-ubyte.gz")));
});
