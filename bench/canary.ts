// `npm run bench:canary -- [--attacks trojan,wanet] [--param "attack:k=v,...;..."] [--epochs 6] [--json]`
// How well does the defender-side choice of the unlearning rate (src/defense/canary.ts) land?
// For each backdoored Fashion-MNIST model: the real sweep (B re-extracted at every candidate rate,
// triangle rule calibrated at 1% FPR, scored on the attacker's poisoned evaluation data — used
// only to judge the choice, never to make it) and the canary tables of every canary kind at the
// same rates. Then every candidate selection rule is applied to the canary tables alone, and the
// real outcome at the rate it picks is printed. Per-model results are kept in
// out/bench/canary-study/ so a long study can be resumed.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { loadDataset } from "../src/data/registry.js";
import { loadCheckpoint } from "../src/train/checkpoint.js";
import { cachedModel } from "../src/jobs/model-cache.js";
import { parseParamOverrides } from "../src/attacks/params.js";
import { canaryFinetune, defenseDefaults } from "../src/defense/defaults.js";
import { createAttack } from "../src/attacks/registry.js";
import { CANARY_KINDS, DEFAULT_CANDIDATES, chooseUnlearnLr, measureCanary, type CanaryPlanting, type CanaryRecord, type SelectionRule } from "../src/defense/canary.js";
import { wantsJson } from "./harness.js";
import { defenderSplits, unlearningSweep, type SweepRow } from "./sweep.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const attacks = (arg("attacks") ?? "badnet,blend").split(",");
const epochs = Number(arg("epochs") ?? 6);
const seed = Number(arg("seed") ?? 0);
const overrides = new Map<string, Record<string, string>>();
for (const part of (arg("param") ?? "").split(";").filter(Boolean)) {
  const [name, text] = part.split(":");
  if (name && text) overrides.set(name, parseParamOverrides(text));
}
// --planting disjoint: canaries planted on half the calibration split (see CanaryPlanting).
const planting = (arg("planting") ?? "reserved") as CanaryPlanting;
const outDir = join("out", "bench", "canary-study");
mkdirSync(outDir, { recursive: true });

type RealRow = SweepRow;
interface Study { attack: string; params: Record<string, string>; real: RealRow[]; canaries: CanaryRecord[]; seconds: number }

async function study(attack: string): Promise<Study> {
  const params = overrides.get(attack) ?? {};
  const tag = `${attack}${Object.keys(params).length ? `-${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(",")}` : ""}-e${epochs}-seed${seed}`;
  const file = join(outDir, `${tag}${planting === "reserved" ? "" : `-${planting}`}.json`);
  const realFile = join(outDir, `${tag}.json`);
  // The real sweep does not depend on the planting: reuse it from another study of the same model.
  const known = existsSync(realFile) ? (JSON.parse(readFileSync(realFile, "utf8")) as Study).real : null;
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as Study;
  const t0 = Date.now();
  const { dir } = await cachedModel({ dataset: "fashion-mnist", attack, attackParams: params, epochs, seed });
  const { model, meta } = await loadCheckpoint(dir);
  const test = await loadDataset("fashion-mnist", { split: "test" });
  const { reserved, calibration, evaluation } = defenderSplits(test, meta, seed);
  const d = defenseDefaults(meta.model.name, "fashion-mnist");
  const norm = meta.preprocessing;
  const atk = createAttack(attack, params, { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" });
  const real = known ?? (await unlearningSweep(model, meta, { reserved, calibration, evaluation }, atk, d, seed, DEFAULT_CANDIDATES, (r) =>
    console.error(`${attack} real lr ${r.lr}: AUROC ${r.auroc.toFixed(4)} (B alone ${r.singleAuroc.toFixed(4)}), ASR after ${(100 * r.asrAfter).toFixed(2)}%`)));
  const canaries: CanaryRecord[] = [];
  for (const kind of CANARY_KINDS) {
    canaries.push(await measureCanary(model, { spec: meta.model, preprocessing: norm }, reserved, calibration, kind, { planting, unlearn: d.unlearn, finetune: canaryFinetune(d), augment: d.augment, seed, log: (l) => console.error(`${attack}: ${l}`) }));
  }
  model.dispose();
  const s: Study = { attack, params, real, canaries, seconds: (Date.now() - t0) / 1000 };
  writeFileSync(file, JSON.stringify(s, null, 1));
  return s;
}

const studies: Study[] = [];
for (const a of attacks) studies.push(await study(a));

// The rules under study; "canaries" says which canary tables each rule reads.
const RULES: { name: string; kinds: string[]; rule: SelectionRule }[] = [];
for (const kinds of [["blend"], ["patch"], ["blend", "patch"]]) {
  for (const combine of kinds.length > 1 ? (["mean", "min"] as const) : (["mean"] as const)) {
    RULES.push({ name: `peak`, kinds, rule: { pick: "peak", combine, tolerance: 0.001 } });
    RULES.push({ name: `peak-strong`, kinds, rule: { pick: "peak-strong", combine, tolerance: 0.001 } });
    for (const level of [0.9, 0.95, 0.98, 0.99]) RULES.push({ name: `strongest-above ${level}`, kinds, rule: { pick: "strongest-above", combine, level } });
  }
}
const pct = (x: number) => `${(100 * x).toFixed(1)}`;
const meets = (r: RealRow) => r.auroc >= 0.99 && r.asrAfter <= 0.05 && r.cleanAccuracyBefore - r.cleanAccuracyAfter <= 0.015;
console.log(`| attack | ${DEFAULT_CANDIDATES.join(" | ")} |`);
for (const s of studies) {
  console.log(`| ${s.attack} real AUROC / ASR after | ${s.real.map((r) => `${r.auroc.toFixed(3)} / ${pct(r.asrAfter)}${meets(r) ? " ✓" : ""}`).join(" | ")} |`);
  for (const c of s.canaries) console.log(`| ${s.attack} ${c.kind} canary AUROC (ASR ${pct(c.attackSuccessRate)}) | ${c.table.map((r) => r.auroc.toFixed(3)).join(" | ")} |`);
}
const summary: Record<string, unknown>[] = [];
console.log(`\n| rule | canaries | combine | ${studies.map((s) => s.attack).join(" | ")} | meets targets |`);
for (const r of RULES) {
  const picks = studies.map((s) => {
    // Inconclusive canaries: the static default, as selectUnlearnLr does.
    const lr = chooseUnlearnLr(s.canaries.filter((c) => r.kinds.includes(c.kind)).map((c) => c.table), r.rule) ?? defenseDefaults("compact-cnn", "fashion-mnist").unlearn.lr;
    const real = s.real.find((x) => x.lr === lr) as RealRow;
    return { attack: s.attack, lr, real };
  });
  const ok = picks.filter((p) => meets(p.real)).length;
  console.log(`| ${r.name} | ${r.kinds.join("+")} | ${r.rule.combine} | ${picks.map((p) => `${p.lr}: ${p.real.auroc.toFixed(3)}/${pct(p.real.asrAfter)}`).join(" | ")} | ${ok}/${picks.length} |`);
  summary.push({ rule: r.rule, kinds: r.kinds, picks: picks.map((p) => ({ attack: p.attack, lr: p.lr, meets: meets(p.real) })) });
}
if (wantsJson()) console.log(JSON.stringify({ studies, summary }));
