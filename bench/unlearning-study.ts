// `npm run bench:unlearning -- --attack tact [--epochs 6] [--seed 0] [--mappings shift,random] [--rates 1e-4,3e-4] [--json]`
// Why does B lose a backdoor? For one cached backdoored model (never trained here: the model
// cache entry must be complete), M' and the calibration split fixed as in `defend`, B is
// re-extracted for every unlearning label mapping × rate, and each B is described on the
// evaluation split: its clean accuracy, what it predicts on the triggered inputs (the attack's
// target, or the answer its unlearning taught for the true class), its mean confidence b in M's
// label on clean and triggered inputs, and the detection it gives (B alone and the triangle rule
// at 1% FPR). The poisoned evaluation data only describes; nothing here chooses a setting.
import { parseArgs } from "node:util";
import { loadDataset } from "../src/data/registry.js";
import { loadCheckpoint, readCheckpointMeta } from "../src/train/checkpoint.js";
import { cachedModelPath } from "../src/jobs/model-cache.js";
import { parseParamOverrides } from "../src/attacks/params.js";
import { createAttack } from "../src/attacks/registry.js";
import { defenseDefaults, UNLEARN_LABEL_MAPPINGS, type UnlearnLabelMapping } from "../src/defense/defaults.js";
import { extractBackdoorExpert, unlearningLabels } from "../src/defense/fit.js";
import { AUXILIARY_HEADS, finetuneAuxiliaryWithHead, type AuxiliaryHead } from "./auxiliary-head.js";
import { BadExpertDetector } from "../src/defense/detector.js";
import { calibrationFor } from "../src/defense/recalibrate.js";
import { evaluateDefense, type ScoredInputs } from "../src/defense/evaluate.js";
import { evaluateModel } from "../src/train/evaluate.js";
import { auroc } from "../src/defense/metrics.js";
import { DEFAULT_CANDIDATES } from "../src/defense/canary.js";
import { wantsJson, helpAndExit, usageFailure } from "./harness.js";
import { defenderSplits } from "./sweep.js";

const HELP = `npm run bench:unlearning -- --attack NAME [options]

  --attack NAME        the cached Fashion-MNIST model's attack (required)
  --param k=v,..       its parameters (as in the model cache key)
  --epochs N           its training epochs (default 6)
  --seed N             training = split = defense seed (default 0)
  --mappings a,b       unlearning label mappings (${UNLEARN_LABEL_MAPPINGS.join(", ")}; default all)
  --rates a,b          Adam learning rates of B (default the canary candidates)
  --finetune-lr x      SGD learning rate of M' (default: the architecture's fixed rate, 0.01 for
                       the compact CNN; defend chooses among 0.01-0.1 there, so pass the rate a
                       matrix cell's finetune.lr records to reproduce it)
  --aux-head keep|reset  M''s output layer: kept (the paper's) or re-initialised before finetuning
  --json               the rows as JSON on the last line
  --help               this text`;

const { values } = parseArgs({
  options: {
    attack: { type: "string" },
    param: { type: "string" },
    epochs: { type: "string", default: "6" },
    seed: { type: "string", default: "0" },
    mappings: { type: "string" },
    rates: { type: "string" },
    "finetune-lr": { type: "string" },
    "aux-head": { type: "string", default: "keep" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  strict: true,
});
helpAndExit(values.help, HELP);
const fail: (msg: string) => never = usageFailure("bench:unlearning");
const list = (s: string | undefined) => (s ?? "").split(",").map((x) => x.trim()).filter(Boolean);
const attackName = values.attack ?? fail("--attack: required");
const params = values.param ? check(() => parseParamOverrides(values.param ?? "")) : {};
const epochs = Number(values.epochs);
const seed = Number(values.seed);
if (!Number.isInteger(epochs) || epochs < 1) fail(`--epochs: expected a positive integer, got ${values.epochs}`);
if (!Number.isInteger(seed) || seed < 0) fail(`--seed: expected a non-negative integer, got ${values.seed}`);
const mappings = (values.mappings ? list(values.mappings) : [...UNLEARN_LABEL_MAPPINGS]).map((m) => {
  if (!(UNLEARN_LABEL_MAPPINGS as readonly string[]).includes(m)) fail(`--mappings: expected some of ${UNLEARN_LABEL_MAPPINGS.join(", ")}, got ${JSON.stringify(m)}`);
  return m as UnlearnLabelMapping;
});
const rates = values.rates ? list(values.rates).map((s) => {
  const r = Number(s);
  if (!(r > 0)) fail(`--rates: expected positive numbers, got ${JSON.stringify(s)}`);
  return r;
}) : [...DEFAULT_CANDIDATES];
/** Registry errors (unknown attack or parameter, with the valid names) as one usage line. */
function check<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    return fail((e as Error).message);
  }
}
const attack = check(() => createAttack(attackName, params, { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" }));

const dir = cachedModelPath({ dataset: "fashion-mnist", attack: attackName, attackParams: params, epochs, seed });
const meta0 = await readCheckpointMeta(dir).catch(() => fail(`no cached model at ${dir} (train it first, e.g. with bench:matrix)`));
if ((meta0.training.history?.length ?? 0) < epochs || meta0.metrics.attackSuccessRate === undefined) fail(`the cached model at ${dir} is not finished (still training?)`);

const { model, meta } = await loadCheckpoint(dir);
const test = await loadDataset("fashion-mnist", { split: "test" });
const { reserved, calibration, evaluation } = defenderSplits(test, meta, seed);
const d0 = defenseDefaults(meta.model.name, "fashion-mnist");
const finetuneLr = values["finetune-lr"] === undefined ? d0.finetune.lr : Number(values["finetune-lr"]);
if (!(finetuneLr > 0)) fail(`--finetune-lr: expected a positive number, got ${values["finetune-lr"]}`);
const head = values["aux-head"] as AuxiliaryHead;
if (!AUXILIARY_HEADS.includes(head)) fail(`--aux-head: expected one of ${AUXILIARY_HEADS.join(", ")}, got ${JSON.stringify(values["aux-head"])}`);
const d = { ...d0, finetune: { ...d0.finetune, lr: finetuneLr } };
const norm = { normalization: meta.preprocessing };
const poisoned = attack.poisonedTestSet(evaluation);
const target = Array.from(poisoned.targetLabels);

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
/** b (or a) over one of the AUROC's sets: clean inputs M gets right, triggered inputs that fool M. */
function inSet(s: ScoredInputs, key: "a" | "b"): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.pred.length; i++) if (s.pred[i] === s.label[i]) out.push(s[key][i] as number);
  return out;
}
const setMeans = (s: ScoredInputs, key: "a" | "b") => mean(inSet(s, key));
/** Share of triggered inputs on which `m` predicts the attack's target, and the mapped true class. */
function expertAnswers(m: Parameters<typeof evaluateModel>[0], mapped: Int32Array | null): { target: number; mapped: number } {
  const x = poisoned.dataset;
  const pred = evaluateModel(m, x, norm).predictions;
  let t = 0;
  let c = 0;
  for (let i = 0; i < pred.length; i++) {
    if (pred[i] === target[i]) t++;
    if (mapped && pred[i] === mapped[i]) c++;
  }
  return { target: t / pred.length, mapped: mapped ? c / pred.length : Number.NaN };
}

const t0 = Date.now();
const aux = await finetuneAuxiliaryWithHead(model, meta.model, reserved, { finetune: d.finetune, augment: d.augment, normalization: meta.preprocessing, seed, silent: true }, head);
const auxAnswers = expertAnswers(aux, null);
const auxCleanAccuracy = evaluateModel(aux, evaluation, norm).accuracy;
// M's own confidence in its label: on clean inputs it gets right, and on triggered inputs that fool it.
const self = evaluateDefense(BadExpertDetector.uncalibrated({ model, expert: model, auxiliary: model }, { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames, rule: "single" }), evaluation, attack);
const modelConfidence = { clean: setMeans(self.clean, "b"), triggered: setMeans(self.poisoned, "b") };
console.error(`${attackName}: M's confidence in its label: ${modelConfidence.clean.toFixed(3)} on clean inputs it gets right, ${modelConfidence.triggered.toFixed(3)} on triggered inputs that fool it`);
console.error(`${attackName}: M' (finetune lr ${finetuneLr}, head ${head}) predicts the target on ${(100 * auxAnswers.target).toFixed(1)}% of the triggered inputs, clean accuracy ${(100 * auxCleanAccuracy).toFixed(2)}% (M: ${(100 * (meta.metrics.attackSuccessRate ?? Number.NaN)).toFixed(1)}% on the test set)`);

interface Row {
  mapping: UnlearnLabelMapping; lr: number; expertCleanAccuracy: number; expertTarget: number; expertMapped: number;
  bClean: number; bTriggered: number; aClean: number; aTriggered: number; singleAuroc: number; singleTpr: number; auroc: number; tpr: number; fpr: number; cleanAccuracyAfter: number; asrBefore: number; asrAfter: number;
}
const rows: Row[] = [];
console.log(`| mapping | lr | B clean acc | B → target / mapped class (triggered) | b clean / triggered | AUROC B alone (TPR at 1% FPR) | AUROC triangle | TPR / FPR | CA after | ASR before → after |`);
console.log(`|---|---|---|---|---|---|---|---|---|---|`);
try {
  for (const mapping of mappings) {
    // The answer B's unlearning teaches for each triggered input's true class (none for "random").
    const mappedAll = mapping === "random" ? null : unlearningLabels(evaluation, mapping, seed);
    const mapped = mappedAll ? Int32Array.from(poisoned.sourceIndices, (i) => mappedAll[i] as number) : null;
    for (const lr of rates) {
      const expert = await extractBackdoorExpert(model, meta.model, reserved, { unlearn: { ...d.unlearn, lr, labels: mapping }, augment: d.augment, normalization: meta.preprocessing, seed, silent: true });
      try {
        const base = BadExpertDetector.uncalibrated({ model, expert, auxiliary: aux }, { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames, rule: "triangle" });
        const cal = calibrationFor(base, "triangle", 0.01, calibration);
        const tri = evaluateDefense(base.withDecision("triangle", cal.threshold, cal), evaluation, attack);
        const calSingle = calibrationFor(base, "single", 0.01, calibration);
        const bPos = inSet(tri.poisoned, "b");
        const singleTpr = bPos.filter((b) => b > calSingle.threshold).length / Math.max(bPos.length, 1);
        const ans = expertAnswers(expert, mapped);
        const m = tri.metrics;
        const row: Row = {
          mapping, lr, expertCleanAccuracy: evaluateModel(expert, evaluation, norm).accuracy, expertTarget: ans.target, expertMapped: ans.mapped,
          bClean: setMeans(tri.clean, "b"), bTriggered: setMeans(tri.poisoned, "b"), aClean: setMeans(tri.clean, "a"), aTriggered: setMeans(tri.poisoned, "a"),
          singleAuroc: auroc(bPos, inSet(tri.clean, "b")), singleTpr, auroc: m.auroc, tpr: m.tpr, fpr: m.fpr, cleanAccuracyAfter: m.cleanAccuracyAfter, asrBefore: m.asrBefore, asrAfter: m.asrAfter,
        };
        rows.push(row);
        const p = (x: number) => `${(100 * x).toFixed(1)}%`;
        console.log(`| ${mapping} | ${lr} | ${p(row.expertCleanAccuracy)} | ${p(row.expertTarget)} / ${mapping === "random" ? "–" : p(row.expertMapped)} | ${row.bClean.toFixed(3)} / ${row.bTriggered.toFixed(3)} | ${row.singleAuroc.toFixed(4)} (${p(row.singleTpr)}) | ${row.auroc.toFixed(4)} | ${p(row.tpr)} / ${p(row.fpr)} | ${p(row.cleanAccuracyAfter)} | ${p(row.asrBefore)} → ${p(row.asrAfter)} |`);
      } finally {
        expert.dispose();
      }
    }
  }
} finally {
  aux.dispose();
  model.dispose();
}
console.error(`bench:unlearning: ${rows.length} rows in ${((Date.now() - t0) / 1000).toFixed(0)} s; M' a on clean / triggered: ${rows[0]?.aClean.toFixed(3)} / ${rows[0]?.aTriggered.toFixed(3)}`);
if (wantsJson()) console.log(JSON.stringify({ attack: attackName, params, epochs, seed, model: dir, finetuneLr, auxiliaryHead: head, auxiliaryTarget: auxAnswers.target, auxiliaryCleanAccuracy: auxCleanAccuracy, modelConfidence, rows }));
