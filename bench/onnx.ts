// `npm run bench:onnx [-- --json] [--models compact-cnn,resnet18,ts-ds-resnet] [--batches 1,16,256] [--seconds 1]`:
// BaDExpert scoring throughput (normalise, M, B, M', score, verdict; random weights) on libtorch
// (BadExpertDetector.scoreBatch) and on onnxruntime (the exported graph, OnnxDetector), same
// thread count (BADEXPERT_THREADS, default all cores); and PyTorch eager
// (bench/reference/score_pytorch.py) where a python3 with torch is installed. The ts-* models
// are TorchScript-imported: the scripted fixtures of test/fixtures/pytorch/make_export.py, loaded
// as TorchScriptModule (libtorch runs their program; the ONNX graph is their translation).
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { getNumThreads, manualSeed, memory, rand, tidy } from "../src/engine/index.js";
import { createModel } from "../src/models/registry.js";
import { TorchScriptModule } from "../src/nn/torchscript-module.js";
import type { Module } from "../src/nn/index.js";
import { BadExpertDetector } from "../src/defense/detector.js";
import { OnnxDetector } from "../src/export/onnx-detector.js";
import { helpAndExit, printTable, round, wantsJson } from "./harness.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:onnx -- [options]

BaDExpert scoring throughput (normalise, M, B and M', score, verdict; random weights), images/s, on
libtorch, on onnxruntime (the exported graph) and in PyTorch eager (a python3 with torch, where
installed), with BADEXPERT_THREADS threads (default all cores).

  --models a,b        compact-cnn, resnet18, and TorchScript-imported ts-ds-resnet, ts-gelu-convnet,
                      ts-patch-transformer (default all)
  --batches 1,16,256  batch sizes (default 1,16,256)
  --seconds S         measuring time per cell after one warm-up call (default 1; 5 is steadier)
  --no-pytorch        skip PyTorch eager
  --json              print the rows as JSON on the last line
  --help              this text`,
);

const SHAPES: Record<string, [number, number]> = {
  "compact-cnn": [1, 28],
  resnet18: [3, 32],
  "ts-ds-resnet": [1, 28],
  "ts-gelu-convnet": [1, 28],
  "ts-patch-transformer": [1, 28],
};

/** A ts-* model: the scripted TorchScript fixture of that architecture. */
function scriptFixture(name: string): string {
  return fileURLToPath(new URL(`../../test/fixtures/pytorch/${name.slice(3)}-scripted.pt`, import.meta.url));
}

function listArg(name: string, fallback: string[]): string[] {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? (process.argv[i + 1] as string).split(",") : fallback;
}

/**
 * Images per second: one warm-up call, then calls until `budget` seconds have passed. A warm-up
 * call slower than `slow` seconds (ResNet-18 at batch 256 on a loaded 2-core machine) is the
 * measurement itself: its one-time costs are small next to it, and repeating it costs minutes.
 */
async function rate(batch: number, fn: () => Promise<void> | void, budget = 1, slow = 10): Promise<number> {
  const w0 = process.hrtime.bigint();
  await fn();
  const warm = Number(process.hrtime.bigint() - w0) / 1e9;
  if (warm >= slow) return batch / warm;
  let n = 0;
  const t0 = process.hrtime.bigint();
  for (;;) {
    await fn();
    n++;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (s >= budget) return (batch * n) / s;
  }
}

interface Row {
  model: string;
  batch: number;
  libtorch: number;
  onnxruntime: number;
  pytorch?: number;
}

/** Debian's python3 first (python3-torch), then the python3 on PATH (pip install torch). */
function pythonWithTorch(): string | null {
  return (
    ["/usr/bin/python3", "python3"].find((py) => {
      try {
        execFileSync(py, ["-c", "import torch"], { stdio: "ignore" });
        return true;
      } catch {
        return false;
      }
    }) ?? null
  );
}

function pytorchEager(): { version: string; rates: Map<string, number> } | null {
  const script = fileURLToPath(new URL("../../bench/reference/score_pytorch.py", import.meta.url));
  const python = pythonWithTorch();
  if (python === null) {
    console.error(
      "[bench:onnx] PyTorch eager skipped: no python3 with torch (apt-get install python3-torch, or pip install torch)",
    );
    return null;
  }
  try {
    const pass = ["models", "batches", "seconds"].flatMap((k) =>
      process.argv.includes(`--${k}`)
        ? [`--${k}`, listArg(k, [])[0] !== undefined ? listArg(k, []).join(",") : ""]
        : [],
    );
    const out = execFileSync(python, [script, ...pass], {
      encoding: "utf8",
      env: { ...process.env, BADEXPERT_THREADS: String(getNumThreads()) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const parsed: { torch: string; rows: { model: string; batch: number; imagesPerSecond: number }[] } = JSON.parse(
      out.trim().split("\n").at(-1) ?? "{}",
    );
    return {
      version: parsed.torch,
      rates: new Map(parsed.rows.map((r) => [`${r.model}@${r.batch}`, r.imagesPerSecond])),
    };
  } catch (e) {
    console.error(`[bench:onnx] PyTorch eager skipped: ${(e as Error).message.split("\n")[0] ?? ""}`);
    return null;
  }
}

// Seconds of calls per measurement after the warm-up (1 s leaves ResNet-18 at batch 16 with two or
// three calls, whose spread is ±15%; 5 s is steadier).
const budget = Number(listArg("seconds", ["1"])[0]);
if (!(budget > 0))
  throw new RangeError(`--seconds: expected a positive number, got ${listArg("seconds", ["1"])[0] ?? ""}`);
manualSeed(0);
const before = memory().numTensors;
const threads = getNumThreads();
const rows: Row[] = [];
for (const name of listArg("models", Object.keys(SHAPES))) {
  const shape = SHAPES[name];
  if (!shape)
    throw new RangeError(`--models: ${name} has no benchmark input size; valid: ${Object.keys(SHAPES).join(", ")}`);
  const [c, size] = shape;
  const imported = name.startsWith("ts-");
  const spec = { name: imported ? "torchscript" : name, numClasses: 10, inChannels: c, imageSize: size };
  const make = (): Module => (imported ? TorchScriptModule.load(scriptFixture(name)) : createModel(name, spec));
  const parts = { model: make(), expert: make(), auxiliary: make() };
  const preprocessing = {
    imageSize: [size, size] as [number, number],
    channels: c,
    mean: new Array<number>(c).fill(0.45),
    std: new Array<number>(c).fill(0.25),
  };
  const det = BadExpertDetector.uncalibrated(parts, {
    spec,
    preprocessing,
    classNames: Array.from({ length: 10 }, String),
    rule: "triangle",
  }).withDecision("triangle", 0);
  const onnx = await OnnxDetector.fromDetector(det, { threads });
  for (const batch of listArg("batches", ["1", "16", "256"]).map(Number)) {
    const x = rand([batch, c, size, size]);
    const pixels = x.data();
    if (!(pixels instanceof Float32Array)) throw new TypeError("rand gave no float32 data");
    const libtorch = await rate(batch, () => void tidy(() => det.scoreBatch(x)), budget);
    const onnxruntime = await rate(batch, async () => void (await onnx.scoreBatch(pixels, batch)), budget);
    x.dispose();
    rows.push({ model: name, batch, libtorch: round(libtorch), onnxruntime: round(onnxruntime) });
    console.error(
      `[bench:onnx] ${name} batch ${batch}: libtorch ${round(libtorch)}/s, onnxruntime ${round(onnxruntime)}/s`,
    );
  }
  await onnx.release();
  det.dispose();
}
const eager = process.argv.includes("--no-pytorch") ? null : pytorchEager();
for (const r of rows) {
  const p = eager?.rates.get(`${r.model}@${r.batch}`);
  if (p !== undefined) r.pytorch = p;
}
if (memory().numTensors !== before) throw new Error(`bench:onnx leaked ${memory().numTensors - before} tensors`);

printTable(
  `BaDExpert scoring throughput, images/s (${threads} thread(s); triangle rule; random weights${eager ? `; PyTorch ${eager.version}` : ""})`,
  rows.map((r) => [
    `${r.model} batch ${r.batch}`,
    `libtorch ${r.libtorch}  onnxruntime ${r.onnxruntime} (${round(r.onnxruntime / r.libtorch, 2)}x)` +
      (r.pytorch !== undefined
        ? `  pytorch eager ${r.pytorch} (onnxruntime ${round(r.onnxruntime / r.pytorch, 2)}x, libtorch ${round(r.libtorch / r.pytorch, 2)}x)`
        : ""),
  ]),
);
if (wantsJson()) console.log(JSON.stringify({ threads, ...(eager ? { pytorch: eager.version } : {}), rows }));
