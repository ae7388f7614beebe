// Two promises of the command line, end to end. --force replaces only what badexpert wrote: a
// --out holding anyone else's files is refused before any work, with a message naming them, and
// every file survives. Usage mistakes (a missing or conflicting option) exit 2 with a message
// that names the option; failures of the work itself exit 1.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { manualSeed } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import { runCli } from "./fixtures.js";

const root = await mkdtemp(join(tmpdir(), "bx-force-"));
after(() => rm(root, { recursive: true, force: true }));

/** A user's directory: files and a subdirectory badexpert never wrote. */
async function userDir(name: string): Promise<{ dir: string; intact: () => Promise<void> }> {
  const dir = join(root, name);
  await mkdir(join(dir, "photos"), { recursive: true });
  await writeFile(join(dir, "thesis.tex"), "years of work");
  await writeFile(join(dir, "photos", "cat.jpg"), "meow");
  return {
    dir,
    intact: async () => {
      assert.deepEqual((await readdir(dir)).sort(), ["photos", "thesis.tex"]);
      assert.equal(await readFile(join(dir, "thesis.tex"), "utf8"), "years of work");
      assert.equal(await readFile(join(dir, "photos", "cat.jpg"), "utf8"), "meow");
    },
  };
}

/** An untrained compact CNN checkpoint (enough for the refusals, which come before any work). */
async function checkpoint(): Promise<string> {
  manualSeed(0);
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
  const model = createModel("compact-cnn", spec);
  const dir = join(root, "ckpt");
  try {
    await saveCheckpoint(dir, model, {
      model: spec,
      dataset: { name: "fashion-mnist" },
      preprocessing: { imageSize: [28, 28], channels: 1, mean: [0.286], std: [0.353] },
      classNames: Array.from({ length: 10 }, (_, i) => String(i)),
      training: {},
      metrics: {},
    });
  } finally {
    model.dispose();
  }
  return dir;
}

const ckpt = await checkpoint();
const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** Runs the CLI as its own process (a failure exits 1 there; in-process it is a rejection). */
function runProcess(args: string[]): Promise<{ code: number; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, BADEXPERT_THREADS: "1" }, timeout: 120_000 },
      (e, _out, err) => {
        resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, err });
      },
    );
  });
}

test("defend --force --out <a user's directory> is refused before any fitting, and the files are intact", async () => {
  const { dir, intact } = await userDir("defend-home");
  const r = await runProcess(["defend", "--checkpoint", ckpt, "--out", dir, "--force", "--unlearn-lr", "1e-4"]);
  assert.equal(r.code, 1, r.err);
  assert.match(
    r.err,
    /--out .*defend-home is not a badexpert detector bundle \(no detector\.json\): it holds 2 entries badexpert did not write \((photos\/, thesis\.tex|thesis\.tex, photos\/)\); refusing to replace it/,
  );
  // The refusal is all it printed: no dataset read, no expert extracted.
  assert.equal(r.err.trim().split("\n").length, 1, r.err);
  await intact();
  // A baseline detector's defend too.
  const b = await runProcess(["defend", "--detector", "strip", "--checkpoint", ckpt, "--out", dir, "--force"]);
  assert.equal(b.code, 1, b.err);
  assert.match(b.err, /is not a badexpert detector bundle/);
  await intact();
  assert.deepEqual(
    (await readdir(root)).filter((n) => n.startsWith(".")),
    [],
    "no temporary directory left",
  );
});

test("train, attack apply and import with --force on a user's directory are refused; a checkpoint is not a bundle", async () => {
  const { dir, intact } = await userDir("train-home");
  const train = await runProcess([
    "train",
    "--dataset",
    "fashion-mnist",
    "--epochs",
    "1",
    "--limit",
    "10",
    "--out",
    dir,
    "--force",
  ]);
  assert.equal(train.code, 1, train.err);
  assert.match(
    train.err,
    /--out .*train-home is not a badexpert checkpoint \(no model\.json\): it holds 2 entries badexpert did not write/,
  );
  await intact();
  const apply = await runProcess(["attack", "apply", "--attack", "ft", "--checkpoint", ckpt, "--out", dir, "--force"]);
  assert.equal(apply.code, 1, apply.err);
  assert.match(apply.err, /is not a badexpert checkpoint/);
  await intact();
  const imp = await runProcess([
    "import",
    "--torchscript",
    fixture("tiny-mixer-scripted.pt"),
    "--input",
    "1x28x28",
    "--mean",
    "0.5",
    "--std",
    "0.5",
    "--classes",
    "10",
    "--out",
    dir,
    "--force",
  ]);
  assert.equal(imp.code, 1, imp.err);
  assert.match(imp.err, /is not a badexpert checkpoint/);
  await intact();
  // defend's --out pointed at a checkpoint: ours, but not a bundle, so not replaced.
  const wrongKind = await runProcess(["defend", "--checkpoint", ckpt, "--out", ckpt, "--force"]);
  assert.equal(wrongKind.code, 1);
  assert.match(wrongKind.err, /ckpt is not a badexpert detector bundle \(no detector\.json\)/);
  assert.deepEqual((await readdir(ckpt)).sort(), ["model.json", "model.safetensors"]);
  // import --force replaces a checkpoint it wrote.
  const out = join(root, "imported");
  const args = [
    "import",
    "--torchscript",
    fixture("tiny-mixer-scripted.pt"),
    "--input",
    "1x28x28",
    "--mean",
    "0.5",
    "--std",
    "0.5",
    "--classes",
    "10",
    "--out",
    out,
  ];
  assert.equal((await runCli(args)).code, 0);
  const again = await runProcess(args);
  assert.equal(again.code, 1);
  assert.match(
    again.err,
    /imported already exists and is not empty \(3 entries\); refusing to overwrite it \(--force replaces it\)/,
  );
  assert.equal((await runCli([...args, "--force"])).code, 0);
});

test("explain --force on a user's directory is a usage error, refused before scoring", async () => {
  const { dir, intact } = await userDir("explain-home");
  const r = await runCli(["explain", "--bundle", join(root, "no-bundle"), "--out", dir, "--force", "x.png"]);
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /--out .*explain-home is not a badexpert explain output \(no badexpert-output\.json\)/);
  await intact();
});

test("usage mistakes exit 2 and name the option", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["import", "--weights", "x.pt", "--dataset", "fashion-mnist", "--out", join(root, "i1")],
      /--weights needs --arch \(one of resnet18, /,
    ],
    [
      [
        "import",
        "--weights",
        "x.pt",
        "--arch",
        "compact-cnn",
        "--torchscript",
        "y.pt",
        "--dataset",
        "fashion-mnist",
        "--out",
        join(root, "i2"),
      ],
      /give one of --weights FILE \(with --arch NAME\) and --torchscript FILE, not both/,
    ],
    [
      ["import", "--out", join(root, "i3"), "--dataset", "fashion-mnist"],
      /give the model: --weights FILE \(with --arch NAME\) or --torchscript FILE/,
    ],
    [
      ["import", "--torchscript", fixture("tiny-mixer-scripted.pt"), "--out", join(root, "i4")],
      /say what the model expects: --dataset NAME, or all of --input CxHxW .*\(missing: --input, --mean, --std, --classes\)/,
    ],
    [
      [
        "import",
        "--torchscript",
        fixture("tiny-mixer-scripted.pt"),
        "--input",
        "1x28x28",
        "--mean",
        "0.5",
        "--std",
        "0.5",
        "--out",
        join(root, "i5"),
      ],
      /\(missing: --classes\)/,
    ],
    [
      ["import", "--weights", "x.pt", "--arch", "nope", "--dataset", "fashion-mnist", "--out", join(root, "i6")],
      /--arch: unknown architecture "nope"/,
    ],
    [
      [
        "import",
        "--torchscript",
        fixture("tiny-mixer-scripted.pt"),
        "--arch",
        "compact-cnn",
        "--dataset",
        "fashion-mnist",
        "--out",
        join(root, "i7"),
      ],
      /--arch goes with --weights/,
    ],
    [
      ["import", "--torchscript", fixture("tiny-mixer-scripted.pt"), "--dataset", "cifar10", "--out", join(root, "i8")],
      /--data-path: dataset 'cifar10' has no default location; give its path with --data-path/,
    ],
    [
      [
        "import",
        "--torchscript",
        fixture("tiny-mixer-scripted.pt"),
        "--input",
        "1x28x28",
        "--mean",
        "0.5,0.5",
        "--std",
        "0.5",
        "--classes",
        "10",
        "--out",
        join(root, "i9"),
      ],
      /--mean has 2 values but --input has 1 channels/,
    ],
    [
      [
        "import",
        "--torchscript",
        fixture("tiny-mixer-scripted.pt"),
        "--input",
        "1x28x28",
        "--mean",
        "0.5",
        "--std",
        "0.5",
        "--classes",
        "1",
        "--out",
        join(root, "i10"),
      ],
      /--classes: expected at least 2 classes/,
    ],
    [
      ["train", "--dataset", "fashion-mnist", "--epochs", "2", "--warmup-epochs", "3", "--out", join(root, "t1")],
      /--warmup-epochs: expected at most the training epochs \(2\), got 3/,
    ],
    [
      ["train", "--dataset", "cifar10", "--out", join(root, "t1")],
      /--data-path: dataset 'cifar10' has no default location; give its path with --data-path \(cifar-10-batches-bin/,
    ],
    [
      ["attack", "preview", "--attack", "badnet", "--dataset", "gtsrb", "--out", join(root, "p.png")],
      /give its path with --data-path/,
    ],
    [["evaluate", "--checkpoint", ckpt, "--dataset", "cifar10"], /give its path with --data-path/],
    [
      ["defend", "--checkpoint", ckpt, "--dataset", "cifar10", "--out", join(root, "d1")],
      /give its path with --data-path/,
    ],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.err}`);
    assert.match(r.err, expected, args.join(" "));
  }
  assert.deepEqual(
    (await readdir(root)).filter((n) => /^(i\d+|t1|d1|p\.png)$/.test(n)),
    [],
    "nothing written",
  );
});

test("import refuses a model whose logits a detector cannot use (exit 1, the reason named)", async () => {
  const r = await runProcess([
    "import",
    "--torchscript",
    fixture("unusable-batch-mean.pt"),
    "--dataset",
    "fashion-mnist",
    "--out",
    join(root, "unusable"),
  ]);
  assert.equal(r.code, 1, r.err);
  assert.match(
    r.err,
    /unusable-batch-mean\.pt maps a batch of 4 inputs \[4, 1, 28, 28\] to \[1, 10\], expected \[4, 10\]/,
  );
  assert.deepEqual(
    (await readdir(root)).filter((n) => n.includes("unusable")),
    [],
    "no checkpoint written",
  );
});
