// `npm run bench:compare -- [--attacks badnet,blend,trojan,wanet] [--detectors all|a,b] [--epochs 6]
//   [--detector-param "strip:n=50;badexpert:unlearnLr=3e-4"] [--calibration-limit N]
//   [--evaluation-limit N] [--fpr 0.01] [--seed 0] [--json] [--dataset D --data-path P --model M]
//   [--param "sig:rate=0.08,delta=0.235294"]` (attack parameters, for the settings that take)
//   [--results bench/results/compare]` (one result file per attack, read by `npm run results`)
// For each attack: train (or reuse from the model cache) the backdoored model, then run the compare
// job — every detector on the same reserved / calibration / evaluation splits (defense/splits.ts)
// — and print one detector × attack table of AUROC and ASR after, with averages and the cost.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { cachedModel } from "../src/jobs/model-cache.js";
import { compareDetectors, type CompareResult } from "../src/jobs/compare.js";
import { parseDetectorList } from "../src/detectors/registry.js";
import { parseDetectorParams } from "../src/detectors/params.js";
import { wantsJson, helpAndExit } from "./harness.js";
import { writeFileAtomically } from "../src/util/atomic-file.js";
import { COMPARE_RESULT_VERSION, type CompareCellResult } from "./results-page.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:compare -- [options]

Every detector on the same defender splits of each attack's backdoored model (trained or taken
from the model cache); one detector x attack table of AUROC and ASR after, averages and the cost.

  --attacks a,b            attacks (default badnet,blend,trojan,wanet)
  --param "a:k=v;b:k=v"     attack parameters (e.g. "sig:rate=0.08,delta=0.235294")
  --detectors all|a,b      detectors (default all)
  --detector-param "d:k=v;e:k=v"  detector parameters (e.g. "strip:n=50;badexpert:unlearnLr=3e-4")
  --epochs N               training epochs of the models (default 6)
  --calibration-limit N    calibration images used (default all)
  --evaluation-limit N     evaluation images used (default all)
  --fpr F                  target false-positive rate (default 0.01)
  --seed N                 model, split and detector seed (default 0)
  --dataset D --data-path P --model M   another dataset or zoo model
  --results DIR            write one result file per attack there (bench/results/compare is
                           what \`npm run results\` reads: baselines beside BaDExpert)
  --json                   print the results as JSON on the last line
  --help                   this text`,
);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const optNum = (name: string) => (arg(name) === undefined ? undefined : Number(arg(name)));

const attacks = (arg("attacks") ?? "badnet,blend,trojan,wanet").split(",");
const detectors = parseDetectorList(arg("detectors") ?? "all");
const params = parseDetectorParams(arg("detector-param") ?? "");
// Attack parameters use the same "name:key=value,...;name:..." grammar as the detectors'.
const attackParams = parseDetectorParams(arg("param") ?? "");
const epochs = Number(arg("epochs") ?? 6);
const seed = Number(arg("seed") ?? 0);
const dataset = arg("dataset") ?? "fashion-mnist";
const dataPath = arg("data-path");
const model = arg("model");
const where = { dataset, ...(dataPath ? { dataPath } : {}), ...(model ? { model } : {}) };
const calibrationLimit = optNum("calibration-limit");
const evaluationLimit = optNum("evaluation-limit");
const targetFpr = optNum("fpr") ?? 0.01;
const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");

const resultsDir = arg("results");

/** One attack's comparison as a result file, named like the matrix cell it matches (plus FPR, limits and detector overrides). */
async function writeCompareResult(dir: string, r: CompareResult, params: Record<string, unknown>): Promise<string> {
  const p = Object.keys(params)
    .sort()
    .map((k) => `${k}=${String(params[k])}`)
    .join(",");
  const detectorParams = arg("detector-param") ?? "";
  const limits = [
    calibrationLimit !== undefined ? `cal${calibrationLimit}` : "",
    evaluationLimit !== undefined ? `eval${evaluationLimit}` : "",
  ]
    .filter(Boolean)
    .join(",");
  const name = `${r.dataset}-${r.model}-${r.attack.name}${p ? `-${p}` : ""}-e${epochs}-seed${seed}-fpr${targetFpr}${limits ? `-${limits}` : ""}${detectorParams ? `-params-${detectorParams.replace(/[^A-Za-z0-9=.,:+-]+/g, "_")}` : ""}.json`;
  const out: CompareCellResult & { finishedAt: string } = {
    version: COMPARE_RESULT_VERSION,
    cell: { dataset: r.dataset, model: r.model, attack: r.attack.name, attackParams: params, seed, epochs },
    targetFpr,
    detectorParams,
    splits: {
      calibrationUsed: r.splits.calibrationUsed,
      evaluationUsed: r.splits.evaluationUsed,
      poisonedUsed: r.splits.poisonedUsed,
    },
    rows: r.rows.map((row) => ({
      detector: row.detector,
      params: row.params,
      metrics: row.metrics,
      secondsPer1000: row.secondsPer1000,
      fitSeconds: row.fitSeconds,
    })),
    finishedAt: new Date().toISOString(),
  };
  const path = join(dir, name);
  await mkdir(dir, { recursive: true });
  await writeFileAtomically(path, `${JSON.stringify(out)}\n`);
  return path;
}

const results: CompareResult[] = [];
for (const attack of attacks) {
  // Clean-Label crafts its poison against a clean model of the same recipe (cached like the others).
  const clean = attack === "clean-label" ? await cachedModel({ ...where, attack: null, epochs, seed }) : null;
  const { dir } = await cachedModel({
    ...where,
    attack,
    attackParams: attackParams[attack] ?? {},
    epochs,
    seed,
    ...(clean ? { cleanModel: clean.dir } : {}),
  });
  console.error(`[bench:compare] ${attack}: ${dir}`);
  const r = await compareDetectors({
    checkpoint: dir,
    detectors,
    params,
    targetFpr,
    seed,
    splitSeed: seed,
    report: join("out", "bench", `compare-${dataset}-${attack}`),
    ...(calibrationLimit !== undefined ? { calibrationLimit } : {}),
    ...(evaluationLimit !== undefined ? { evaluationLimit } : {}),
    log: (l) => console.error(`[bench:compare] ${l}`),
  });
  results.push(r);
  if (resultsDir !== undefined)
    console.error(`[bench:compare] ${attack}: ${await writeCompareResult(resultsDir, r, attackParams[attack] ?? {})}`);
  console.log(
    `| ${attack} | ${r.rows.map((row) => `${row.metrics.auroc.toFixed(4)} / ${pct(row.metrics.asrAfter)}`).join(" | ")} |`,
  );
}

// detector × attack: "AUROC / ASR after", then the averages and the cost per input.
console.log(`\nAUROC / ASR after at ${pct(targetFpr)} FPR (${dataset}, ${epochs}-epoch models, seed ${seed})`);
console.log(`| detector | ${attacks.join(" | ")} | mean AUROC | mean ASR after | ms per input |`);
console.log(`|${"---|".repeat(attacks.length + 4)}`);
for (const d of detectors) {
  const rows = results.map((r) => r.rows.find((row) => row.detector === d));
  const cells = rows.map((row) => (row ? `${row.metrics.auroc.toFixed(4)} / ${pct(row.metrics.asrAfter)}` : "n/a"));
  const mean = (f: (row: NonNullable<(typeof rows)[number]>) => number) =>
    rows.reduce((a, row) => a + (row ? f(row) : Number.NaN), 0) / rows.length;
  console.log(
    `| ${d} | ${cells.join(" | ")} | ${mean((row) => row.metrics.auroc).toFixed(4)} | ${pct(mean((row) => row.metrics.asrAfter))} | ${mean((row) => row.secondsPer1000).toFixed(2)} |`,
  );
}
if (wantsJson())
  console.log(JSON.stringify(results.map((r) => ({ ...r, rows: r.rows.map(({ roc: _roc, ...row }) => row) }))));
