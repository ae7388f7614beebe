// `npm run bench:attacks -- [--attacks a,b] [--epochs 6] [--param attack:key=value;...] [--json]
//   [--dataset fashion-mnist] [--data-path P] [--model M] [--no-clean]`
// Trains a model (default: the dataset recipe's, the compact CNN on Fashion-MNIST) clean and
// backdoored by each attack (cached), and prints clean accuracy vs the clean model and the ASR.
// --no-clean skips the clean model (no comparison column) when it is not cached and CPU is short
// (not with Clean-Label, which crafts its poison against it). Attacks that train a trigger network
// (ISSBA, Dynamic) also print what was measured while training it.
import { attackNames } from "../src/attacks/registry.js";
import { readCheckpointMeta } from "../src/train/checkpoint.js";
import { cachedModel } from "../src/jobs/model-cache.js";
import { parseParamOverrides } from "../src/attacks/params.js";
import { wantsJson } from "./harness.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const epochs = Number(arg("epochs") ?? 6);
const dataset = arg("dataset") ?? "fashion-mnist";
const dataPath = arg("data-path");
const model = arg("model");
const where = { dataset, ...(dataPath ? { dataPath } : {}), ...(model ? { model } : {}) };
const seed = Number(arg("seed") ?? 0);
const attacks = (arg("attacks") ?? attackNames().join(",")).split(",");
// --param "wanet:rate=0.1;blend:rate=0.01"
const overrides = new Map<string, Record<string, string>>();
for (const part of (arg("param") ?? "").split(";").filter(Boolean)) {
  const [name, text] = part.split(":");
  if (name && text) overrides.set(name, parseParamOverrides(text));
}
const pct = (x: number | undefined) => (x === undefined ? "n/a" : `${(100 * x).toFixed(2)}%`);

const noClean = process.argv.includes("--no-clean");
if (noClean && attacks.includes("clean-label"))
  throw new Error("--no-clean: clean-label crafts its poison against the clean model; leave it out or drop --no-clean");
const clean = noClean ? null : await cachedModel({ ...where, attack: null, epochs, seed });
const cleanCa = clean ? ((await readCheckpointMeta(clean.dir)).metrics.cleanAccuracy ?? Number.NaN) : Number.NaN;
if (clean) console.log(`| clean model | ${pct(cleanCa)} | — | — | — |`);
const rows: Record<string, unknown>[] = [{ attack: null, cleanAccuracy: cleanCa }];
for (const attack of attacks) {
  const params = overrides.get(attack) ?? {};
  const { dir, seconds } = await cachedModel({
    ...where,
    attack,
    attackParams: params,
    epochs,
    seed,
    ...(clean ? { cleanModel: clean.dir } : {}),
  });
  const meta = await readCheckpointMeta(dir);
  const ca = meta.metrics.cleanAccuracy ?? Number.NaN;
  const asr = meta.metrics.attackSuccessRate;
  const rec = meta.training.attack as {
    params: Record<string, unknown>;
    poisonCount: number;
    coverCount: number;
  } | null;
  const took = asr !== undefined && asr >= 0.9 && (noClean || cleanCa - ca <= 0.02);
  const details = (meta.training as { attackDetails?: Record<string, number> }).attackDetails;
  if (details) console.log(`${attack}: trigger network ${JSON.stringify(details)}`);
  console.log(
    `| ${attack} | ${pct(ca)}${noClean ? "" : ` (${((ca - cleanCa) * 100).toFixed(2)} pts)`} | ${pct(asr)} | ${rec?.poisonCount ?? "?"} / ${rec?.coverCount ?? "?"} | ${took ? "yes" : "no"} | ${JSON.stringify(rec?.params ?? {})} |`,
  );
  rows.push({
    attack,
    params: rec?.params,
    ...(details ? { details } : {}),
    cleanAccuracy: ca,
    attackSuccessRate: asr,
    poisonCount: rec?.poisonCount,
    coverCount: rec?.coverCount,
    trainSeconds: seconds,
  });
}
if (wantsJson()) console.log(JSON.stringify(rows));
