// `npm run bench:defense -- [--attacks badnet,blend] [--epochs 6] [--json]
//   [--param "attack:k=v,...;..."] [--unlearn-lr auto|N] [--dataset D --data-path P --model M]`
// For each attack (default: Fashion-MNIST, the compact CNN): train (or reuse) the backdoored model,
// build the BaDExpert detector with the defaults, and evaluate it on the held-out split.
import { join } from "node:path";
import { readCheckpointMeta } from "../src/train/checkpoint.js";
import { cachedModel } from "../src/jobs/model-cache.js";
import { defendCheckpoint } from "../src/jobs/defend.js";
import { evaluateBundle } from "../src/jobs/evaluate-defense.js";
import { parseParamOverrides } from "../src/attacks/params.js";
import { round, wantsJson } from "./harness.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const attacks = (arg("attacks") ?? "badnet,blend").split(",");
const epochs = Number(arg("epochs") ?? 6);
const dataset = arg("dataset") ?? "fashion-mnist";
const dataPath = arg("data-path");
const modelName = arg("model");
const where = { dataset, ...(dataPath ? { dataPath } : {}), ...(modelName ? { model: modelName } : {}) };
const lrArg = arg("unlearn-lr");
const unlearnLr = lrArg === undefined ? undefined : lrArg === "auto" ? ("auto" as const) : Number(lrArg);
const overrides = new Map<string, Record<string, string>>();
for (const part of (arg("param") ?? "").split(";").filter(Boolean)) {
  const [name, text] = part.split(":");
  if (name && text) overrides.set(name, parseParamOverrides(text));
}
const seed = Number(arg("seed") ?? 0);
const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

const rows: Record<string, unknown>[] = [];
for (const attack of attacks) {
  const params = overrides.get(attack) ?? {};
  const { dir } = await cachedModel({ ...where, attack, attackParams: params, epochs, seed });
  const meta = await readCheckpointMeta(dir);
  const tag = `${dataset}-${attack}`;
  const bundle = join("out", "bench", `${tag}-detector`);
  const r = await defendCheckpoint({
    checkpoint: dir,
    out: bundle,
    force: true,
    seed,
    splits: { seed },
    silent: true,
    ...(unlearnLr !== undefined ? { unlearn: { lr: unlearnLr } } : {}),
    log: () => {},
  });
  const d = r.badexpert as NonNullable<typeof r.badexpert>;
  const e = await evaluateBundle({ bundle, report: join("out", "bench", `${tag}-report`) });
  const m = e.metrics;
  const row = {
    attack,
    modelCleanAccuracy: meta.metrics.cleanAccuracy,
    modelAsr: meta.metrics.attackSuccessRate,
    params,
    unlearnLr: d.options.unlearn.lr,
    finetuneLr: d.options.finetune.lr,
    finetuneSelection: d.finetuneSelection,
    ...m,
    fitSeconds: d.seconds,
    scoringRate: e.scoringRate,
  };
  rows.push(row);
  console.log(
    `| ${attack} | ${d.options.unlearn.lr}${d.unlearning ? " (auto)" : ""} | ${d.options.finetune.lr}${d.finetuneSelection ? " (auto)" : ""} | ${pct(m.cleanAccuracyBefore)} → ${pct(m.cleanAccuracyAfter)} | ${pct(m.asrBefore)} → ${pct(m.asrAfter)} | ${m.auroc.toFixed(4)} | ${pct(m.tpr)} | ${pct(m.fpr)} | ` +
      // With M''s rate chosen, M' is the selection's model: its time is the M' selection's.
      `${round(d.seconds.expert)} / ${d.finetuneSelection ? "–" : round(d.seconds.auxiliary)} / ${round(d.seconds.calibration)} s` +
      `${d.finetuneSelection ? ` (+ ${round(d.seconds.finetuneSelection)} s M'-rate selection)` : ""} | ${e.scoringRate.toFixed(0)}/s |`,
  );
}
if (wantsJson()) console.log(JSON.stringify(rows));
