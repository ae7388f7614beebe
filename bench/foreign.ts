// `npm run bench:foreign -- [options]`
// BaDExpert on the foreign zoo: models trained in plain PyTorch outside badexpert
// (bench/foreign/train.py), delivered as TorchScript with their own triggered inputs. For each
// model in the zoo's cache, what a user does: `badexpert import --torchscript`, `badexpert defend`
// with the defaults (no option but the output), and evaluate-defense against the model's own
// triggered set (`--triggered triggered.npz`, the evaluate-defense job). One result JSON per model
// under --results, in the matrix results' shape (unlearn, finetune, evaluations, parts, scores,
// seconds), then a table. Resumable: a model whose result records the same TorchScript file is
// skipped. Nothing is tuned here: these are the figures of defend's defaults as they stand.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { evaluateBundle } from "../src/jobs/evaluate-defense.js";
import { aurocSets } from "./matrix/cells.js";
import type { DefenseMetrics } from "../src/defense/metrics.js";
import type { DetectorParts } from "../src/defense/parts.js";
import { readRegularTextFile } from "../src/util/read-regular-file.js";
import { helpAndExit, usageFailure, wantsJson } from "./harness.js";

const HELP = `npm run bench:foreign -- [options]

For every model of the foreign zoo (bench/foreign/train.py; see docs/foreign-zoo.md):
badexpert import --torchscript, defend with the defaults, evaluate-defense --triggered with the
model's own triggered set; one result JSON per model, then a table.

  --zoo DIR        the zoo's cache (default $FOREIGN_CACHE/foreign or ~/.cache/badexpert/foreign;
                   the development zoo, train.py --set dev: ~/.cache/badexpert/dev)
  --work DIR       checkpoints, bundles and CLI logs (default ~/.cache/badexpert/foreign-runs)
  --results DIR    result files (default bench/results/foreign)
  --only a,b       model ids
  --dataset NAME   fashion-mnist or cifar10
  --force          run models whose result is already there
  --keep           keep each model's checkpoint and bundle (default: removed after its result)
  --table-only     print the table of the existing results, run nothing
  --json           print the results as JSON on the last line
  --help           this text`;

const { values } = parseArgs({
  options: {
    zoo: { type: "string" },
    work: { type: "string" },
    results: { type: "string", default: "bench/results/foreign" },
    only: { type: "string" },
    dataset: { type: "string" },
    force: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "table-only": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  allowPositionals: false,
  strict: true,
});
helpAndExit(values.help, HELP);
const fail = usageFailure("bench:foreign");

const cacheRoot = process.env.FOREIGN_CACHE ?? join(homedir(), ".cache", "badexpert");
const zoo = resolve(values.zoo ?? join(cacheRoot, "foreign"));
const work = resolve(values.work ?? join(homedir(), ".cache", "badexpert", "foreign-runs"));
const resultsDir = resolve(values.results);
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cli", "main.js");
export const FOREIGN_RESULT_VERSION = 1;

/** What train.py writes into manifest.json, as far as this bench reads it. */
interface Manifest {
  id: string;
  architecture: string;
  dataset: string;
  badexpert: { dataset: string; dataPath: string; input: [number, number, number]; mean: number[]; std: number[] };
  backdoored: boolean;
  trigger: { family: string; inBadexpertLibrary: boolean } | null;
  probeTrigger: { family: string; target: number } | null;
  poisonRate: number;
  target: number | null;
  cleanAccuracy: number;
  attackSuccessRate: number;
  torchscript: { file: string; sha256: string; export: string };
}

export interface ForeignModelRecord {
  id: string;
  architecture: string;
  dataset: string;
  backdoored: boolean;
  /** The trigger family, and whether our attack library has that family; a clean model's probe trigger. */
  trigger: { family: string; inBadexpertLibrary: boolean } | null;
  probeTrigger: { family: string; target: number } | null;
  poisonRate: number;
  target: number | null;
  torchscriptSha256: string;
  /** Measured in PyTorch by train.py. */
  python: { cleanAccuracy: number; attackSuccessRate: number };
  /** Measured by `badexpert import` on the dataset's test split. */
  importAccuracy: number | null;
}

/** A model badexpert could not defend or evaluate: where it stopped and what it said. */
export interface ForeignFailure {
  version: number;
  model: ForeignModelRecord;
  failure: { stage: "import" | "defend" | "evaluate"; message: string };
  finishedAt: string;
}

export interface ForeignResult {
  version: number;
  model: ForeignModelRecord;
  defend: { command: string[] };
  unlearn: { lr: number; source: string; conclusive?: boolean; canaries?: unknown[]; trace?: Record<string, unknown> };
  finetune: { lr: number; source: "default" | "auto"; selection?: unknown };
  evaluations: { targetFpr: number; threshold: number; metrics: DefenseMetrics; triggered: string }[];
  parts?: DetectorParts;
  scores: { positives: number[]; negatives: number[] };
  seconds: {
    import: number;
    defend: number;
    expert: number;
    auxiliary: number;
    calibration: number;
    selection: number;
    evaluation: number;
  };
  scoringRate: number;
  finishedAt: string;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

async function readJson(path: string, what: string): Promise<unknown> {
  return JSON.parse(await readRegularTextFile(path, { maxBytes: 64 * 2 ** 20, what })) as unknown;
}

async function readManifest(dir: string): Promise<Manifest | null> {
  const path = join(dir, "manifest.json");
  if (!existsSync(path)) return null;
  const m = await readJson(path, "manifest");
  const b = isObject(m) ? m.badexpert : undefined;
  const ts = isObject(m) ? m.torchscript : undefined;
  if (
    !isObject(m) ||
    typeof m.id !== "string" ||
    !isObject(b) ||
    !isObject(ts) ||
    typeof ts.sha256 !== "string" ||
    !Array.isArray(b.input) ||
    !Array.isArray(b.mean) ||
    !Array.isArray(b.std)
  ) {
    throw new Error(
      `${path}: not a foreign-zoo manifest (expected id, badexpert {dataset, dataPath, input, mean, std}, torchscript {sha256})`,
    );
  }
  return m as unknown as Manifest;
}

type Outcome = ForeignResult | ForeignFailure;

function failed(r: Outcome): r is ForeignFailure {
  return "failure" in r;
}

async function readResult(id: string): Promise<Outcome | null> {
  const path = join(resultsDir, `${id}.json`);
  if (!existsSync(path)) return null;
  try {
    const r = await readJson(path, "result");
    return isObject(r) && r.version === FOREIGN_RESULT_VERSION && (Array.isArray(r.evaluations) || isObject(r.failure))
      ? (r as unknown as Outcome)
      : null;
  } catch {
    return null;
  }
}

async function writeResult(id: string, r: Outcome): Promise<void> {
  await mkdir(resultsDir, { recursive: true });
  const path = join(resultsDir, `${id}.json`);
  await writeFile(`${path}.tmp`, `${JSON.stringify(r, null, 1)}\n`);
  await rename(`${path}.tmp`, path);
}

class StageError extends Error {
  constructor(
    readonly stage: ForeignFailure["failure"]["stage"],
    message: string,
  ) {
    super(message);
  }
}

/** Runs `fn`, naming the stage it failed in. */
async function stage<T>(name: StageError["stage"], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw e instanceof StageError ? e : new StageError(name, e instanceof Error ? e.message : String(e));
  }
}

function modelRecord(m: Manifest, importAccuracy: number | null): ForeignModelRecord {
  return {
    id: m.id,
    architecture: m.architecture,
    dataset: m.dataset,
    backdoored: m.backdoored,
    trigger: m.trigger ? { family: m.trigger.family, inBadexpertLibrary: m.trigger.inBadexpertLibrary } : null,
    probeTrigger: m.probeTrigger ? { family: m.probeTrigger.family, target: m.probeTrigger.target } : null,
    poisonRate: m.poisonRate,
    target: m.target,
    torchscriptSha256: m.torchscript.sha256,
    python: { cleanAccuracy: m.cleanAccuracy, attackSuccessRate: m.attackSuccessRate },
    importAccuracy,
  };
}

/** Runs the badexpert CLI in a child process (it inherits this process's priority); its output goes to `log` as it comes. */
async function badexpert(args: string[], log: string): Promise<{ seconds: number; json: unknown }> {
  const t0 = Date.now();
  const chunks: Buffer[] = [];
  const file = createWriteStream(log);
  file.write(`$ badexpert ${args.join(" ")}\n`);
  const code = await new Promise<number>((ok, bad) => {
    const child = spawn(process.execPath, [CLI, ...args, "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    const take = (d: Buffer) => {
      chunks.push(d);
      file.write(d);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", bad);
    child.on("close", (c) => ok(c ?? 1));
  });
  await new Promise<void>((ok) => file.end(ok));
  const text = Buffer.concat(chunks).toString("utf8");
  if (code !== 0)
    throw new Error(`badexpert ${args[0]} exited ${code}; see ${log}:\n${text.split("\n").slice(-6).join("\n")}`);
  const lines = text
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"));
  return {
    seconds: (Date.now() - t0) / 1000,
    json: lines.length ? (JSON.parse(lines[lines.length - 1] as string) as unknown) : null,
  };
}

async function runModel(dir: string, m: Manifest): Promise<ForeignResult> {
  const here = join(work, m.id);
  await rm(here, { recursive: true, force: true });
  await mkdir(here, { recursive: true });
  const ck = join(here, "checkpoint");
  const bundle = join(here, "bundle");
  const b = m.badexpert;
  const say = (line: string) => console.error(`[${m.id}] ${line}`);
  say("import");
  const imp = await stage("import", () =>
    badexpert(
      [
        "import",
        "--torchscript",
        join(dir, m.torchscript.file),
        "--dataset",
        b.dataset,
        "--data-path",
        b.dataPath,
        "--input",
        b.input.join("x"),
        "--mean",
        b.mean.join(","),
        "--std",
        b.std.join(","),
        "--out",
        ck,
      ],
      join(here, "import.log"),
    ),
  );
  const importAccuracy = isObject(imp.json) && typeof imp.json.accuracy === "number" ? imp.json.accuracy : null;
  say(
    `imported (test accuracy ${importAccuracy === null ? "n/a" : (100 * importAccuracy).toFixed(2)}%, PyTorch ${(100 * m.cleanAccuracy).toFixed(2)}%); defend with the defaults`,
  );
  const defendArgs = ["defend", "--checkpoint", ck, "--out", bundle];
  const d = await stage("defend", () => badexpert(defendArgs, join(here, "defend.log")));
  const manifest = await readJson(join(bundle, "detector.json"), "bundle manifest");
  const creation = isObject(manifest) && isObject(manifest.creation) ? manifest.creation : {};
  const unlearn = isObject(creation.unlearn) ? creation.unlearn : {};
  const finetune = isObject(creation.finetune) ? creation.finetune : {};
  const selection = isObject(creation.unlearnSelection) ? creation.unlearnSelection : null;
  const secs = isObject(creation.seconds) ? creation.seconds : {};
  say(
    `defended in ${d.seconds.toFixed(0)} s (B up to ${String(unlearn.lr)} from ${String(creation.unlearnLrSource)}, M' ${String(finetune.lr)}); evaluate-defense --triggered`,
  );
  const triggered = join(dir, "triggered.npz");
  const e = await stage("evaluate", () => evaluateBundle({ bundle, triggered, parts: true }));
  const result: ForeignResult = {
    version: FOREIGN_RESULT_VERSION,
    model: modelRecord(m, importAccuracy),
    defend: { command: ["badexpert", ...defendArgs.map((a) => a.replace(here, "<work>"))] },
    unlearn: {
      lr: Number(unlearn.lr),
      source: String(creation.unlearnLrSource ?? "unknown"),
      ...(selection
        ? {
            conclusive: selection.conclusive === true,
            canaries: Array.isArray(selection.canaries) ? selection.canaries : [],
          }
        : {}),
      ...(isObject(creation.unlearning) ? { trace: creation.unlearning } : {}),
    },
    finetune: {
      lr: Number(finetune.lr),
      source: creation.finetuneSelection !== undefined ? "auto" : "default",
      ...(creation.finetuneSelection !== undefined ? { selection: creation.finetuneSelection } : {}),
    },
    evaluations: [{ targetFpr: e.targetFpr, threshold: e.threshold, metrics: e.metrics, triggered: "triggered.npz" }],
    ...(e.parts ? { parts: e.parts } : {}),
    scores: aurocSets(e.clean, e.poisoned),
    seconds: {
      import: imp.seconds,
      defend: d.seconds,
      expert: Number(secs.expert ?? 0),
      auxiliary: Number(secs.auxiliary ?? 0),
      calibration: Number(secs.calibration ?? 0),
      selection: selection && typeof selection.seconds === "number" ? selection.seconds : 0,
      evaluation: e.seconds,
    },
    scoringRate: e.scoringRate,
    finishedAt: new Date().toISOString(),
  };
  await writeResult(m.id, result);
  if (!values.keep) await rm(here, { recursive: true, force: true });
  return result;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");

function table(all: Outcome[]): string {
  const rs = all.filter((r): r is ForeignResult => !failed(r));
  const head = [
    "model",
    "trigger (in library)",
    "CA (PyTorch)",
    "ASR (PyTorch)",
    "B rate (source)",
    "M' rate",
    "AUROC",
    "TPR",
    "FPR",
    "CA before → after",
    "ASR before → after",
    "defend s",
  ];
  const rows = rs.map((r) => {
    const m = r.evaluations[0]?.metrics as DefenseMetrics;
    const trig = r.model.trigger
      ? `${r.model.trigger.family} (${r.model.trigger.inBadexpertLibrary ? "yes" : "no"})`
      : `clean (probe: ${r.model.probeTrigger?.family ?? "?"})`;
    return [
      r.model.id,
      trig,
      pct(r.model.python.cleanAccuracy),
      pct(r.model.python.attackSuccessRate),
      `${r.unlearn.lr} (${r.unlearn.source})`,
      `${r.finetune.lr} (${r.finetune.source})`,
      Number.isFinite(m.auroc) ? m.auroc.toFixed(4) : "n/a",
      pct(m.tpr),
      pct(m.fpr),
      `${pct(m.cleanAccuracyBefore)} → ${pct(m.cleanAccuracyAfter)}`,
      `${pct(m.asrBefore)} → ${pct(m.asrAfter)}`,
      r.seconds.defend.toFixed(0),
    ];
  });
  for (const f of all.filter(failed)) {
    const trig = f.model.trigger
      ? `${f.model.trigger.family} (${f.model.trigger.inBadexpertLibrary ? "yes" : "no"})`
      : `clean (probe: ${f.model.probeTrigger?.family ?? "?"})`;
    const why = (
      f.failure.message.split("\n").find((l) => l.startsWith("badexpert:")) ??
      f.failure.message.split("\n")[0] ??
      ""
    ).slice(0, 160);
    rows.push([
      f.model.id,
      trig,
      pct(f.model.python.cleanAccuracy),
      pct(f.model.python.attackSuccessRate),
      `**${f.failure.stage} failed**: ${why}`,
      "",
      "",
      "",
      "",
      "",
      "",
      "",
    ]);
  }
  rows.sort((a, b) => (a[0] as string).localeCompare(b[0] as string));
  const lines = [
    `| ${head.join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
  const bd = rs.filter((r) => r.model.backdoored);
  if (bd.length > 0) {
    const ms = bd.map((r) => r.evaluations[0]?.metrics as DefenseMetrics);
    const mean = (f: (m: DefenseMetrics) => number) => ms.reduce((s, m) => s + f(m), 0) / ms.length;
    const aurocs = ms.map((m) => m.auroc).filter(Number.isFinite);
    lines.push(
      "",
      `backdoored models evaluated: ${bd.length}; mean AUROC ${(aurocs.reduce((s, x) => s + x, 0) / Math.max(aurocs.length, 1)).toFixed(4)} (lowest ${aurocs.length ? Math.min(...aurocs).toFixed(4) : "n/a"}), ` +
        `mean ASR after ${pct(mean((m) => m.asrAfter))}, mean CA drop ${(100 * mean((m) => m.cleanAccuracyBefore - m.cleanAccuracyAfter)).toFixed(2)} points, mean FPR ${pct(mean((m) => m.fpr))}`,
    );
  }
  const clean = rs.filter((r) => !r.model.backdoored);
  if (clean.length > 0) {
    const ms = clean.map((r) => r.evaluations[0]?.metrics as DefenseMetrics);
    lines.push(
      `clean models evaluated: ${clean.length}; mean FPR ${pct(ms.reduce((s, m) => s + m.fpr, 0) / ms.length)}, mean CA drop ${((100 * ms.reduce((s, m) => s + m.cleanAccuracyBefore - m.cleanAccuracyAfter, 0)) / ms.length).toFixed(2)} points`,
    );
  }
  const f = all.filter(failed);
  if (f.length > 0)
    lines.push(
      `not evaluated (badexpert failed on them): ${f.map((x) => `${x.model.id} (${x.failure.stage})`).join(", ")}`,
    );
  return lines.join("\n");
}

if (values.dataset !== undefined && !["fashion-mnist", "cifar10"].includes(values.dataset))
  fail(`--dataset: expected fashion-mnist or cifar10, got ${JSON.stringify(values.dataset)}`);
const only = values.only
  ? new Set(
      values.only
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
    )
  : null;
if (!existsSync(zoo))
  fail(`--zoo: ${zoo} does not exist (train the zoo first: nice -n 15 python3 bench/foreign/train.py)`);
const models: { dir: string; m: Manifest }[] = [];
for (const name of (await readdir(zoo)).sort()) {
  if (name.startsWith(".")) continue;
  const m = await readManifest(join(zoo, name));
  if (m === null || (only && !only.has(m.id)) || (values.dataset !== undefined && m.dataset !== values.dataset))
    continue;
  models.push({ dir: join(zoo, name), m });
}
if (only)
  for (const id of only) if (!models.some((x) => x.m.id === id)) fail(`--only: no delivered model ${id} in ${zoo}`);
if (models.length === 0) fail(`no delivered models in ${zoo}${values.dataset ? ` for ${values.dataset}` : ""}`);

const results: Outcome[] = [];
for (const { dir, m } of models) {
  const done = await readResult(m.id);
  if (values["table-only"]) {
    if (done) results.push(done);
    continue;
  }
  if (done && done.model.torchscriptSha256 === m.torchscript.sha256 && !values.force) {
    console.error(`[${m.id}] result in ${resultsDir}: skipped`);
    results.push(done);
    continue;
  }
  try {
    results.push(await runModel(dir, m));
  } catch (e) {
    if (!(e instanceof StageError)) throw e;
    // A model badexpert cannot defend is a result too: recorded, not retried until --force.
    console.error(`[${m.id}] ${e.stage} failed: ${e.message}`);
    const record: ForeignFailure = {
      version: FOREIGN_RESULT_VERSION,
      model: modelRecord(m, null),
      failure: { stage: e.stage, message: e.message.slice(0, 4000) },
      finishedAt: new Date().toISOString(),
    };
    await writeResult(m.id, record);
    results.push(record);
    process.exitCode = 1;
  }
}
console.log(table(results));
if (wantsJson())
  console.log(
    JSON.stringify(
      results.map((r) =>
        failed(r)
          ? { id: r.model.id, failure: r.failure }
          : {
              id: r.model.id,
              metrics: r.evaluations[0]?.metrics,
              unlearn: { lr: r.unlearn.lr, source: r.unlearn.source },
              finetune: { lr: r.finetune.lr, source: r.finetune.source },
            },
      ),
    ),
  );
