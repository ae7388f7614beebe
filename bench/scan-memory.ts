// `npm run bench:scan-memory [-- --bundle DIR] [-- --json]`: peak resident memory (VmHWM, from
// `/usr/bin/time -v`) of `badexpert scan` child processes over 1,000 / 10,000 / 60,000
// Fashion-MNIST inputs (dataset mode) and 1,000 / 10,000 PNG files (files mode). scan streams in
// batches of 256, so the peak should be flat in N (the dataset itself, 47 MB of uint8 for the
// training split, is loaded whole in dataset mode at every N).
// Without --bundle, a small bundle is built first (compact CNN, 1 epoch on 600 images): memory
// does not depend on how good the detector is.
import { execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import sharp from "sharp";
import { loadDataset } from "../src/data/registry.js";
import { printTable, round, wantsJson } from "./harness.js";

const CLI = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const run = promisify(execFile);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

/** Runs `badexpert ARGS` under /usr/bin/time -v: its peak RSS in MB and the stdout line count. */
function measure(args: string[]): Promise<{ peakMb: number; lines: number; code: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn("/usr/bin/time", ["-v", process.execPath, CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let lines = 0;
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      for (const b of c) if (b === 0x0a) lines++;
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
      if (err.length > 1e6) err = err.slice(-1e5);
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      if (!m) return reject(new Error(`no peak RSS in /usr/bin/time output (exit ${code}): ${err.slice(-2000)}`));
      resolve({ peakMb: Number(m[1]) / 1024, lines, code: code ?? -1, seconds: (Date.now() - t0) / 1000 });
    });
  });
}

async function cli(args: string[]): Promise<void> {
  await run(process.execPath, [CLI, ...args], { maxBuffer: 64 * 2 ** 20 });
}

const work = await mkdtemp(join(tmpdir(), "bx-scan-memory-"));
try {
  let bundle = arg("bundle");
  if (!bundle) {
    console.error("building a small bundle (compact CNN, 1 epoch on 600 images)…");
    const ckpt = join(work, "ckpt");
    bundle = join(work, "bundle");
    await cli(["train", "--dataset", "fashion-mnist", "--limit", "600", "--epochs", "1", "--out", ckpt]);
    await cli([
      "defend",
      "--checkpoint",
      ckpt,
      "--out",
      bundle,
      "--reserved",
      "300",
      "--calibration",
      "1000",
      "--unlearn-lr",
      "1e-4",
      "--finetune-epochs",
      "1",
    ]);
  }
  // Warm the decoded-dataset cache, so no run pays for decoding the IDX files.
  await cli(["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--split", "train", "--limit", "1"]);

  const rows: { mode: string; inputs: number; peakMb: number; seconds: number }[] = [];
  for (const n of [1000, 10000, 60000]) {
    const r = await measure([
      "scan",
      "--bundle",
      bundle,
      "--dataset",
      "fashion-mnist",
      "--split",
      "train",
      "--limit",
      String(n),
    ]);
    if (r.code !== 0 || r.lines !== n + 1) throw new Error(`dataset scan of ${n}: exit ${r.code}, ${r.lines} lines`);
    rows.push({ mode: "dataset", inputs: n, peakMb: r.peakMb, seconds: r.seconds });
  }

  const test = await loadDataset("fashion-mnist", { split: "test" });
  const dir = join(work, "files");
  await mkdir(dir);
  const files: string[] = [];
  for (let i = 0; i < 10000; i++) {
    const f = join(dir, `${i}.png`);
    await sharp(test.images.subarray(i * 784, (i + 1) * 784), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(f);
    files.push(f);
  }
  for (const n of [1000, 10000]) {
    const r = await measure(["scan", "--bundle", bundle, ...files.slice(0, n)]);
    if (r.code !== 0 || r.lines !== n + 1) throw new Error(`files scan of ${n}: exit ${r.code}, ${r.lines} lines`);
    rows.push({ mode: "files", inputs: n, peakMb: r.peakMb, seconds: r.seconds });
  }

  if (wantsJson()) console.log(JSON.stringify(rows));
  else
    printTable(
      "badexpert scan: peak resident memory (VmHWM of the child process)",
      rows.map((r) => [`${r.mode}, ${r.inputs} inputs`, `${round(r.peakMb, 0)} MB (${round(r.seconds, 1)} s)`]),
    );
} finally {
  await rm(work, { recursive: true, force: true });
}
