// `npm run bench:compare -- [--attacks badnet,blend,trojan,wanet] [--detectors all|a,b] [--epochs 6]
//   [--detector-param "strip:n=50;badexpert:unlearnLr=3e-4"] [--calibration-limit N]
//   [--evaluation-limit N] [--fpr 0.01] [--seed 0] [--json] [--dataset D --data-path P --model M]
//   [--param "sig:rate=0.08,delta=0.235294"]` (attack parameters, for the settings that take)
// For each attack: train (or reuse from the model cache) the backdoored model, then run the compare
// job — every detector on the same reserved / calibration / evaluation splits (defense/splits.ts)
// — and print one detector × attack table of AUROC and ASR after, with averages and the cost.
import { join } from "node:path";
import { cachedModel } from "../src/jobs/model-cache.js";
import { compareDetectors, type CompareResult } from "../src/jobs/compare.js";
import { parseDetectorList } from "../src/detectors/registry.js";
import { parseDetectorParams } from "../src/detectors/params.js";
import { wantsJson, helpAndExit } from "./harness.js";

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

const results: CompareResult[] = [];
for (const attack of attacks) {
  // Clean-Label crafts its poison against a clean model of the same recipe (cached like the others).
  const clean = attack === "clean-label" ? await cachedModel({ ...where, attack: null, epochs, seed }) : null;
  const { dir } = await cachedModel({ ...where, attack, attackParams: attackParams[attack] ?? {}, epochs, seed, ...(clean ? { cleanModel: clean.dir } : {}) });
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
  console.log(`| ${attack} | ${r.rows.map((row) => `${row.metrics.auroc.toFixed(4)} / ${pct(row.metrics.asrAfter)}`).join(" | ")} |`);
}

// detector × attack: "AUROC / ASR after", then the averages and the cost per input.
console.log(`\nAUROC / ASR after at ${pct(targetFpr)} FPR (${dataset}, ${epochs}-epoch models, seed ${seed})`);
console.log(`| detector | ${attacks.join(" | ")} | mean AUROC | mean ASR after | ms per input |`);
console.log(`|${"---|".repeat(attacks.length + 4)}`);
for (const d of detectors) {
  const rows = results.map((r) => r.rows.find((row) => row.detector === d));
  const cells = rows.map((row) => (row ? `${row.metrics.auroc.toFixed(4)} / ${pct(row.metrics.asrAfter)}` : "n/a"));
  const mean = (f: (row: NonNullable<(typeof rows)[number]>) => number) => rows.reduce((a, row) => a + (row ? f(row) : Number.NaN), 0) / rows.length;
  console.log(`| ${d} | ${cells.join(" | ")} | ${mean((row) => row.metrics.auroc).toFixed(4)} | ${pct(mean((row) => row.metrics.asrAfter))} | ${mean((row) => row.secondsPer1000).toFixed(2)} |`);
}
if (wantsJson()) console.log(JSON.stringify(results.map((r) => ({ ...r, rows: r.rows.map(({ roc: _roc, ...row }) => row) }))));
