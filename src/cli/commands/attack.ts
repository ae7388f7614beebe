// `badexpert attack`: the backdoor attacks the toolkit implements. `attack list` prints each with
// its parameters and defaults; `attack preview` writes a PNG of clean test images above the same
// images with the attack's test-time trigger.
import type { Command, OptionSpec } from "../command.js";
import { UsageError } from "../command.js";
import { SEED, emitJson, numWithDefault, requireStr, str, type Values } from "../args.js";
import { parseAttackParams } from "../attack-options.js";
import { datasetNames, loadDataset } from "../../data/registry.js";
import { AttackParamError, attackDefaults, attackInfo, attackNames, createAttack, type Attack } from "../../attacks/index.js";
import { attackPreview, writePng } from "../../attacks/preview.js";

const OPTIONS: Record<string, OptionSpec> = {
  attack: { type: "string", short: "a", description: `attack name: ${attackNames().join(", ")}`, value: { kind: "choice", values: attackNames() } },
  dataset: {
    type: "string",
    short: "d",
    description: `dataset name (list: shows its dataset-specific defaults): ${datasetNames().join(", ")}`,
    value: { kind: "choice", values: datasetNames() },
  },
  "data-path": { type: "string", description: "where the dataset lives (default: the dataset's standard location, if any)" },
  // --attack-param everywhere; --param was this command's old name for it.
  "attack-param": { type: "string", short: "p", description: "attack parameters, key=value,key=value", deprecatedAlias: "param" },
  count: { type: "string", description: "images per row", default: "8", value: { kind: "int", min: 1, max: 256 } },
  scale: { type: "string", description: "upscaling factor (nearest neighbour)", default: "4", value: { kind: "int", min: 1, max: 64 } },
  diff: { type: "string", description: "add a third row: |triggered - clean| times this gain (0: no row)", default: "0", value: { kind: "int", min: 0, max: 1000 } },
  seed: { type: "string", description: "seed for the choice of test images", default: "0", value: SEED },
  out: { type: "string", short: "o", description: "PNG to write (default: attack-<attack>-<dataset>.png)" },
  json: { type: "boolean", description: "print a machine-readable result as the last stdout line" },
};

function listAttacks(v: Values): number {
  const dataset = str(v, "dataset");
  const rows = attackNames().map((name) => {
    const e = attackInfo(name);
    const defaults = attackDefaults(name, dataset);
    return {
      name,
      kind: e.kind,
      targeting: e.targeting,
      needsCleanModel: e.needsCleanModel,
      summary: e.summary,
      params: Object.fromEntries(Object.entries(e.params).map(([k, s]) => [k, { default: defaults[k], type: s.type, description: s.description }])),
    };
  });
  if (v.json) {
    emitJson(v, rows);
    return 0;
  }
  for (const r of rows) {
    console.log(`${r.name} (${r.kind}, ${r.targeting}${r.needsCleanModel ? ", needs a clean model" : ""}): ${r.summary}`);
    const defaults = Object.entries(r.params).map(([k, p]) => `${k}=${typeof p.default === "number" ? Number(p.default.toPrecision(6)) : String(p.default)}`);
    console.log(`  ${defaults.join("  ")}`);
  }
  return 0;
}

async function preview(v: Values): Promise<number> {
  const name = requireStr(v, "attack", `one of ${attackNames().join(", ")}`);
  if (!attackNames().includes(name)) throw new UsageError(`--attack: unknown attack '${name}'; valid: ${attackNames().join(", ")}`);
  const datasetName = requireStr(v, "dataset", `one of ${datasetNames().join(", ")}`);
  if (!datasetNames().includes(datasetName)) throw new UsageError(`--dataset: unknown dataset '${datasetName}'; valid: ${datasetNames().join(", ")}`);
  const path = str(v, "data-path");
  const count = numWithDefault(v, "count", OPTIONS);
  const scale = numWithDefault(v, "scale", OPTIONS);
  const diffGain = numWithDefault(v, "diff", OPTIONS);
  const seed = numWithDefault(v, "seed", OPTIONS);
  const out = str(v, "out") ?? `attack-${name}-${datasetName}.png`;
  const overrides = parseAttackParams(v);
  const test = await loadDataset(datasetName, { split: "test", ...(path ? { path } : {}) });
  let instance: Attack;
  try {
    instance = createAttack(name, overrides, {
      numClasses: test.classNames.length,
      height: test.height,
      width: test.width,
      channels: test.channels,
      dataset: datasetName,
    });
  } catch (e) {
    if (e instanceof AttackParamError) throw new UsageError(`--attack-param: ${e.message}`);
    throw e;
  }
  const { picture, indices } = attackPreview(instance, test, { count, scale, seed, diffGain });
  await writePng(out, picture);
  console.error(`wrote ${out}: ${indices.length} ${datasetName} test images, clean (top) and with the ${name} trigger (below)`);
  emitJson(v, { out, attack: name, dataset: datasetName, params: instance.params, indices: Array.from(indices), width: picture.width, height: picture.height });
  return 0;
}

export const attack: Command = {
  name: "attack",
  summary: "list the backdoor attacks, or preview an attack's trigger as a PNG",
  details: [
    "Subcommands:",
    "  attack list                      the attacks with their kinds and default parameters",
    "  attack preview --attack NAME --dataset NAME [--out file.png]",
    "                                   clean test images (top row) and the same images triggered (bottom row)",
    "",
    "Attack parameters: --attack-param key=value,key=value (numbers may be fractions, e.g. eps=8/255; lists continue",
    "after a comma, e.g. trainAlphas=0.5,0.3,rate=0.01). `attack list` shows every parameter and its default.",
    "",
    "Example: badexpert attack preview --attack badnet --dataset fashion-mnist --out badnet.png",
  ].join("\n"),
  options: OPTIONS,
  async run(v, positionals) {
    const [sub, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    switch (sub) {
      case "list":
        return listAttacks(v);
      case "preview":
        return preview(v);
      default:
        throw new UsageError(sub === undefined ? "expected a subcommand: list or preview" : `unknown subcommand '${sub}'; valid: list, preview`);
    }
  },
};
