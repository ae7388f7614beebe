// `npm run bench:auxiliary -- --models tact:e6:s0,badnet:e6:s1,issba(rate=0.1):e2:s0 [--rates 0.01,0.02,0.05,0.1] [--unlearn-lr 3e-4] [--json]`
// How M''s finetuning rate changes detection, and what the defender-side rule
// (src/defense/auxiliary-rate.ts: the strongest rate whose M' stays within a tolerance of M's
// calibration accuracy) would pick. For each cached Fashion-MNIST model (never trained here), with
// defend's splits and seed, B is extracted once at a fixed rate and M' is finetuned at every
// candidate rate; each pair is calibrated at 1% FPR and evaluated against the real attack. The
// poisoned evaluation data only describes the outcome of a rate; the rule sees only clean data.
import { parseArgs } from "node:util";
import { loadDataset } from "../src/data/registry.js";
import { loadCheckpoint, readCheckpointMeta } from "../src/train/checkpoint.js";
import { cachedModelPath } from "../src/jobs/model-cache.js";
import { parseParamOverrides } from "../src/attacks/params.js";
import { loadAttack } from "../src/attacks/load.js";
import type { ParamValue } from "../src/attacks/attack.js";
import { auxiliaryRateCandidates, defenseDefaults } from "../src/defense/defaults.js";
import { extractBackdoorExpert, finetuneAuxiliary } from "../src/defense/fit.js";
import { BadExpertDetector } from "../src/defense/detector.js";
import { calibrationFor } from "../src/defense/recalibrate.js";
import { evaluateDefense } from "../src/defense/evaluate.js";
import { evaluateModel } from "../src/train/evaluate.js";
import { AUXILIARY_RATE_FACTORS, chooseFinetuneLr } from "../src/defense/auxiliary-rate.js";
import { wantsJson, helpAndExit, usageFailure } from "./harness.js";
import { defenderSplits } from "./sweep.js";

const HELP = `npm run bench:auxiliary -- --models LIST [options]

  --models LIST      cached Fashion-MNIST models: attack[(k=v;k=v)]:eN:sN, comma-separated
                     (e.g. tact:e6:s0,issba(rate=0.1):e2:s0); seed = training = split = defense seed
  --rates a,b        M' finetuning rates (default ${AUXILIARY_RATE_FACTORS.join(", ")} x the reference rate)
  --unlearn-lr x     B's Adam rate, fixed for all rows (default 3e-4, the compact CNN's static default)
  --tolerances a,b   rule tolerances in points of accuracy to report (default 1,1.5,2,3,4,5)
  --json             the rows as JSON on the last line
  --help             this text`;

const { values } = parseArgs({
  options: {
    models: { type: "string" },
    rates: { type: "string" },
    "unlearn-lr": { type: "string", default: "3e-4" },
    tolerances: { type: "string", default: "1,1.5,2,3,4,5" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  strict: true,
});
helpAndExit(values.help, HELP);
const fail: (msg: string) => never = usageFailure("bench:auxiliary");
const positives = (s: string, name: string) => s.split(",").map((x) => x.trim()).filter(Boolean).map((x) => {
  const r = Number(x);
  if (!(r > 0 && Number.isFinite(r))) fail(`${name}: expected positive numbers, got ${JSON.stringify(x)}`);
  return r;
});
const unlearnLr = positives(values["unlearn-lr"] ?? "", "--unlearn-lr")[0] ?? fail("--unlearn-lr: required");
const tolerances = positives(values.tolerances ?? "", "--tolerances").map((t) => t / 100);

interface ModelRef { attack: string; params: Record<string, ParamValue>; epochs: number; seed: number; label: string }
const MODEL = /^([a-z0-9-]+)(?:\(([^)]*)\))?:e(\d+):s(\d+)$/;
function parseModels(text: string): ModelRef[] {
  return text.split(",").map((x) => x.trim()).filter(Boolean).map((label) => {
    const m = MODEL.exec(label);
    if (!m) fail(`--models: expected attack[(k=v;...)]:eN:sN, got ${JSON.stringify(label)}`);
    let params: Record<string, ParamValue> = {};
    try {
      params = m[2] ? parseParamOverrides((m[2]).replaceAll(";", ",")) : {};
    } catch (e) {
      fail(`--models ${label}: ${(e as Error).message}`);
    }
    return { attack: m[1] as string, params, epochs: Number(m[3]), seed: Number(m[4]), label };
  });
}
const models = parseModels(values.models ?? fail("--models: required"));

interface RateRow { lr: number; auxiliaryCalibrationAccuracy: number; auroc: number; tpr: number; fpr: number; cleanAccuracyAfter: number; asrBefore: number; asrAfter: number }
interface ModelResult { model: string; modelCalibrationAccuracy: number; rows: RateRow[]; picks: { tolerance: number; lr: number }[] }

const test = await loadDataset("fashion-mnist", { split: "test" });
const results: ModelResult[] = [];
const p = (x: number) => `${(100 * x).toFixed(2)}%`;
for (const ref of models) {
  const t0 = Date.now();
  const dir = cachedModelPath({ dataset: "fashion-mnist", attack: ref.attack, attackParams: ref.params, epochs: ref.epochs, seed: ref.seed });
  const meta0 = await readCheckpointMeta(dir).catch(() => fail(`no cached model at ${dir} (train it first, e.g. with bench:matrix)`));
  if ((meta0.training.history?.length ?? 0) < ref.epochs || meta0.metrics.attackSuccessRate === undefined) fail(`the cached model at ${dir} is not finished`);
  // The attack as the model was trained with it (resolved parameters, trained trigger networks).
  const rec = meta0.training.attack ?? fail(`${dir}: the cached model records no attack`);
  const attack = await loadAttack(rec.name, rec.params, { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" }, dir);
  const { model, meta } = await loadCheckpoint(dir);
  try {
    const split = defenderSplits(test, meta, ref.seed);
    const d = defenseDefaults(meta.model.name, "fashion-mnist");
    const rates = values.rates ? positives(values.rates, "--rates") : auxiliaryRateCandidates(d);
    const norm = { normalization: meta.preprocessing };
    const modelCalibrationAccuracy = evaluateModel(model, split.calibration, norm).accuracy;
    const expert = await extractBackdoorExpert(model, meta.model, split.reserved, { unlearn: { ...d.unlearn, lr: unlearnLr }, augment: d.augment, normalization: meta.preprocessing, seed: ref.seed, silent: true });
    const rows: RateRow[] = [];
    try {
      console.log(`\n${ref.label} (B at ${unlearnLr}; M's calibration accuracy ${p(modelCalibrationAccuracy)})`);
      console.log(`| M' lr | M' calibration acc | AUROC | TPR / FPR | CA after | ASR before → after |`);
      console.log(`|---|---|---|---|---|---|`);
      for (const lr of rates) {
        const aux = await finetuneAuxiliary(model, meta.model, split.reserved, { finetune: { ...d.finetune, lr }, augment: d.augment, normalization: meta.preprocessing, seed: ref.seed, silent: true });
        try {
          const base = BadExpertDetector.uncalibrated({ model, expert, auxiliary: aux }, { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames, rule: "triangle" });
          const cal = calibrationFor(base, "triangle", 0.01, split.calibration);
          const m = evaluateDefense(base.withDecision("triangle", cal.threshold, cal), split.evaluation, attack).metrics;
          const row = { lr, auxiliaryCalibrationAccuracy: evaluateModel(aux, split.calibration, norm).accuracy, auroc: m.auroc, tpr: m.tpr, fpr: m.fpr, cleanAccuracyAfter: m.cleanAccuracyAfter, asrBefore: m.asrBefore, asrAfter: m.asrAfter };
          rows.push(row);
          console.log(`| ${lr} | ${p(row.auxiliaryCalibrationAccuracy)} | ${row.auroc.toFixed(4)} | ${p(row.tpr)} / ${p(row.fpr)} | ${p(row.cleanAccuracyAfter)} | ${p(row.asrBefore)} → ${p(row.asrAfter)} |`);
        } finally {
          aux.dispose();
        }
      }
    } finally {
      expert.dispose();
    }
    const picks = tolerances.map((tolerance) => ({ tolerance, lr: chooseFinetuneLr(rows.map((r) => ({ lr: r.lr, calibrationAccuracy: r.auxiliaryCalibrationAccuracy })), modelCalibrationAccuracy, tolerance) }));
    console.log(`rule picks: ${picks.map((k) => `${(100 * k.tolerance).toFixed(1)} pt → ${k.lr}`).join(", ")} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    results.push({ model: ref.label, modelCalibrationAccuracy, rows, picks });
  } finally {
    model.dispose();
  }
}

// Per tolerance: the mean AUROC and ASR after over the models of the rate it picks, against the fixed rates.
console.log(`\n| M' rate | mean AUROC | min AUROC | mean ASR after |`);
console.log(`|---|---|---|---|`);
const summary = (label: string, pick: (r: ModelResult) => RateRow) => {
  const chosen = results.map(pick);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  console.log(`| ${label} | ${mean(chosen.map((r) => r.auroc)).toFixed(4)} | ${Math.min(...chosen.map((r) => r.auroc)).toFixed(4)} | ${p(mean(chosen.map((r) => r.asrAfter)))} |`);
};
const rateList = results[0]?.rows.map((r) => r.lr) ?? [];
for (const [i, lr] of rateList.entries()) summary(`fixed ${lr}`, (r) => r.rows[i] as RateRow);
for (const [i, t] of tolerances.entries()) summary(`rule, ${(100 * t).toFixed(1)} pt`, (r) => r.rows.find((x) => x.lr === r.picks[i]?.lr) as RateRow);
if (wantsJson()) console.log(JSON.stringify({ unlearnLr, results }));
