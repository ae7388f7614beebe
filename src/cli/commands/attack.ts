// `badexpert attack`: the backdoor attacks the toolkit implements. `attack list` prints each with
// its parameters and defaults; `attack preview` writes a PNG of clean test images above the same
// images with the attack's test-time trigger; `attack apply` runs a model-tampering attack on a
// clean checkpoint and writes the backdoored checkpoint.
import type { Command, OptionSpec } from "../command.js";
import { UsageError } from "../command.js";
import { SEED, emitJson, numWithDefault, requireStr, str, type Values } from "../args.js";
import { parseAttackParams } from "../attack-options.js";
import { datasetNames, loadDataset } from "../../data/registry.js";
import {
  AttackParamError,
  attackDefaults,
  attackInfo,
  attackNames,
  loadAttack,
  type Attack,
} from "../../attacks/index.js";
import { attackPreview, writePng } from "../../attacks/preview.js";
import { readCheckpointMeta } from "../../train/checkpoint.js";
import { runTampering, tamperingAttackNames } from "../../jobs/tamper.js";
import { requireDataPath } from "../../jobs/data-path.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";

const OPTIONS: Record<string, OptionSpec> = {
  attack: {
    type: "string",
    short: "a",
    description: `attack name: ${attackNames().join(", ")}`,
    value: { kind: "choice", values: attackNames() },
  },
  dataset: {
    type: "string",
    short: "d",
    description: `dataset name (list: shows its dataset-specific defaults): ${datasetNames().join(", ")}`,
    value: { kind: "choice", values: datasetNames() },
  },
  "data-path": {
    type: "string",
    description: "where the dataset lives (default: the dataset's standard location, if any)",
  },
  // --attack-param everywhere; --param was this command's old name for it.
  "attack-param": {
    type: "string",
    short: "p",
    description: "attack parameters, key=value,key=value",
    deprecatedAlias: "param",
  },
  count: { type: "string", description: "images per row", default: "8", value: { kind: "int", min: 1, max: 256 } },
  scale: {
    type: "string",
    description: "upscaling factor (nearest neighbour)",
    default: "4",
    value: { kind: "int", min: 1, max: 64 },
  },
  diff: {
    type: "string",
    description: "add a third row: |triggered - clean| times this gain (0: no row)",
    default: "0",
    value: { kind: "int", min: 0, max: 1000 },
  },
  seed: {
    type: "string",
    description: "preview: seed for the choice of test images; apply: seed of the finetuning slice and trigger start",
    default: "0",
    value: SEED,
  },
  out: {
    type: "string",
    short: "o",
    description: "preview: PNG to write (default: attack-<attack>-<dataset>.png); apply: checkpoint directory to write",
  },
  checkpoint: {
    type: "string",
    short: "c",
    description:
      "apply: the clean checkpoint to tamper with; preview: a backdoored checkpoint whose recorded attack (and parameters) to show",
  },
  force: { type: "boolean", description: "apply: replace an existing non-empty --out (otherwise refused)" },
  ...RUNTIME_OPTIONS,
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
      trainsNetwork: e.hasArtifacts === true,
      summary: e.summary,
      params: Object.fromEntries(
        Object.entries(e.params).map(([k, s]) => [
          k,
          { default: defaults[k], type: s.type, description: s.description },
        ]),
      ),
    };
  });
  if (v.json) {
    emitJson(v, rows);
    return 0;
  }
  for (const r of rows) {
    const needs = `${r.needsCleanModel ? ", needs a clean model" : ""}${r.trainsNetwork ? ", trains a trigger network while poisoning" : ""}`;
    console.log(`${r.name} (${r.kind}, ${r.targeting}${needs}): ${r.summary}`);
    const defaults = Object.entries(r.params).map(
      ([k, p]) => `${k}=${typeof p.default === "number" ? Number(p.default.toPrecision(6)) : String(p.default)}`,
    );
    console.log(`  ${defaults.join("  ")}`);
  }
  return 0;
}

async function preview(v: Values): Promise<number> {
  // With --checkpoint the attack, its parameters and the dataset default to the recorded ones
  // (TrojanNN's trigger exists only there; ISSBA's and Dynamic's networks are stored there).
  const ckpt = str(v, "checkpoint");
  const recorded = ckpt ? await readCheckpointMeta(ckpt) : null;
  if (recorded && !recorded.training.attack && str(v, "attack") === undefined)
    throw new UsageError(`--checkpoint: ${ckpt} records no attack; give --attack`);
  const name =
    str(v, "attack") ??
    recorded?.training.attack?.name ??
    requireStr(v, "attack", `one of ${attackNames().join(", ")}`);
  if (!attackNames().includes(name))
    throw new UsageError(`--attack: unknown attack '${name}'; valid: ${attackNames().join(", ")}`);
  const datasetName =
    str(v, "dataset") ?? recorded?.dataset.name ?? requireStr(v, "dataset", `one of ${datasetNames().join(", ")}`);
  if (!datasetNames().includes(datasetName))
    throw new UsageError(`--dataset: unknown dataset '${datasetName}'; valid: ${datasetNames().join(", ")}`);
  const fromRecord = recorded?.training.attack?.name === name ? recorded.training.attack.params : {};
  if (attackInfo(name).hasArtifacts && !ckpt) {
    throw new UsageError(
      `--checkpoint: attack '${name}' trains its trigger network while poisoning; preview it from a checkpoint trained with it (--checkpoint DIR)`,
    );
  }
  if (attackInfo(name).hasArtifacts && recorded?.training.attack?.name !== name) {
    throw new UsageError(
      `--checkpoint: ${ckpt} was not trained with attack '${name}', so it holds no ${name} trigger network`,
    );
  }
  const path = str(v, "data-path") ?? recorded?.dataset.path;
  const count = numWithDefault(v, "count", OPTIONS);
  const scale = numWithDefault(v, "scale", OPTIONS);
  const diffGain = numWithDefault(v, "diff", OPTIONS);
  const seed = numWithDefault(v, "seed", OPTIONS);
  const out = str(v, "out") ?? `attack-${name}-${datasetName}.png`;
  const overrides = { ...fromRecord, ...parseAttackParams(v) };
  requireDataPath(datasetName, path);
  const test = await loadDataset(datasetName, { split: "test", ...(path ? { path } : {}) });
  let instance: Attack;
  try {
    const spec = {
      numClasses: test.classNames.length,
      height: test.height,
      width: test.width,
      channels: test.channels,
      dataset: datasetName,
    };
    instance = await loadAttack(name, overrides, spec, ckpt);
  } catch (e) {
    if (e instanceof AttackParamError) throw new UsageError(`--attack-param: ${e.message}`);
    throw e;
  }
  const { picture, indices } = attackPreview(instance, test, { count, scale, seed, diffGain });
  await writePng(out, picture);
  console.error(
    `wrote ${out}: ${indices.length} ${datasetName} test images, clean (top) and with the ${name} trigger (below)`,
  );
  emitJson(v, {
    out,
    attack: name,
    dataset: datasetName,
    params: instance.params,
    indices: Array.from(indices),
    width: picture.width,
    height: picture.height,
  });
  return 0;
}

async function apply(v: Values): Promise<number> {
  const valid = tamperingAttackNames();
  const name = requireStr(v, "attack", `one of ${valid.join(", ")}`);
  if (!valid.includes(name)) {
    throw new UsageError(
      attackNames().includes(name)
        ? `--attack: '${name}' poisons training data (use \`badexpert train --attack ${name}\`); apply takes the model-tampering attacks: ${valid.join(", ")}`
        : `--attack: unknown attack '${name}'; apply takes: ${valid.join(", ")}`,
    );
  }
  const checkpoint = requireStr(v, "checkpoint", "the clean checkpoint directory");
  const out = requireStr(v, "out", "the checkpoint directory to write");
  const seed = numWithDefault(v, "seed", OPTIONS);
  const params = parseAttackParams(v);
  const { device } = applyRuntimeOptions(v);
  const dataPath = str(v, "data-path");
  let r;
  try {
    r = await runTampering({
      attack: name,
      params,
      checkpoint,
      out,
      seed,
      device,
      force: v.force === true,
      ...(dataPath ? { dataPath } : {}),
    });
  } catch (e) {
    if (e instanceof AttackParamError) throw new UsageError(`--attack-param: ${e.message}`);
    throw e;
  }
  emitJson(v, {
    checkpoint: r.checkpoint,
    attack: r.meta.training.attack ?? null,
    cleanAccuracyBefore: r.cleanAccuracyBefore,
    cleanAccuracy: r.cleanAccuracy,
    attackSuccessRateBefore: r.attackSuccessRateBefore,
    attackSuccessRate: r.attackSuccessRate,
    poisonCount: r.poisonCount,
    details: r.details,
    seconds: r.seconds,
  });
  return 0;
}

export const attack: Command = {
  name: "attack",
  summary:
    "list the backdoor attacks, preview an attack's trigger as a PNG, or apply a model-tampering attack to a checkpoint",
  details: [
    "Subcommands:",
    "  attack list                      the attacks with their kinds and default parameters",
    "  attack preview --attack NAME --dataset NAME [--out file.png]",
    "                                   clean test images (top row) and the same images triggered (bottom row);",
    "                                   --checkpoint DIR takes the attack, parameters and dataset recorded there",
    `  attack apply --attack ${tamperingAttackNames().join("|")} --checkpoint CLEAN --out DIR [--seed N] [--force]`,
    "                                   tamper with a clean checkpoint; writes a checkpoint recording the attack,",
    "                                   clean accuracy and attack success rate (evaluate-defense and the benches read it)",
    "",
    "Attack parameters: --attack-param key=value,key=value (numbers may be fractions, e.g. eps=8/255; lists continue",
    "after a comma, e.g. trainAlphas=0.5,0.3,rate=0.01). `attack list` shows every parameter and its default.",
  ].join("\n"),
  examples: [
    "badexpert attack list",
    "badexpert attack preview --attack badnet --dataset fashion-mnist --out badnet.png",
    "badexpert attack apply --attack sra --checkpoint runs/fmnist --out runs/fmnist-sra",
  ],
  options: OPTIONS,
  async run(v, positionals) {
    const [sub, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    switch (sub) {
      case "list":
        return listAttacks(v);
      case "preview":
        return preview(v);
      case "apply":
        return apply(v);
      default:
        throw new UsageError(
          sub === undefined
            ? "expected a subcommand: list, preview or apply"
            : `unknown subcommand '${sub}'; valid: list, preview, apply`,
        );
    }
  },
};
