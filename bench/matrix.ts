// `npm run bench:matrix -- --datasets D,.. --models M,.. --attacks A,.. --seeds 0,1,2 [options]`
// The evaluation matrix: every dataset × model × attack × seed cell through the model cache and
// the defend / evaluate-defense jobs, one result JSON per cell under --results (resumable: a
// finished cell is skipped), then the aggregated tables (mean ± std over seeds, bootstrap 95%
// interval of the mean AUROC, override rows included) printed with --render. RESULTS.md is built
// from the same files by `npm run results`.
import { parseArgs } from "node:util";
import { attackNames, createAttack } from "../src/attacks/registry.js";
import { parseParamOverrides } from "../src/attacks/params.js";
import { datasetInfo, datasetNames } from "../src/data/registry.js";
import { modelInfo } from "../src/models/registry.js";
import { recipeFor } from "../src/train/recipes.js";
import {
  cellId,
  defaultEpochs,
  pendingCells,
  readAllResults,
  runMatrix,
  type MatrixCell,
  type MatrixDefense,
} from "./matrix/cells.js";
import { UNLEARN_LABEL_MAPPINGS, type UnlearnLabelMapping } from "../src/defense/defaults.js";
import { aggregateMatrix, renderMatrixTables } from "./matrix/tables.js";
import { wantsJson, helpAndExit, usageFailure } from "./harness.js";

const HELP = `npm run bench:matrix -- [options]

Runs dataset × model × attack × seed through the model cache and BaDExpert's defend and
evaluate jobs; one result JSON per cell under --results; finished cells are skipped (resumable).

  --datasets a,b      dataset names (${datasetNames().join(", ")})
  --models a,b        zoo models (default: each dataset's recipe model)
  --attacks a,b       attack names (${attackNames().join(", ")})
  --seeds 0,1,2       training seed = split seed = defense seed (default 0)
  --epochs N|d=N,..   training epochs, one number or per dataset (default: the dataset recipe's)
  --data-path d=P,..  dataset paths, per dataset (needed for cifar10-folder, gtsrb, ...)
  --param "a:k=v,..;b:k=v"  attack parameter overrides
  --defense k=v,..    defend options other than the defaults, part of each cell's identity:
                      unlearnLabels=${UNLEARN_LABEL_MAPPINGS.join("|")}, finetuneLr=X|auto (the SGD rate of M'),
                      unlearnLr=X|auto (B's rate: given, for diagnosis; or unlearning until forgotten)
  --fprs f,g          FPRs to evaluate at (default: the dataset's, 0.1% GTSRB / 1% otherwise, and 1%)
  --results DIR       result files (default bench/results/matrix, kept in git: RESULTS.md is
                      built from them by \`npm run results\`, on a fresh clone too)
  --render            after running, print every result's table (override rows included)
  --render-only       print the tables of the existing results only, run nothing
  --dry-run           list the cells and which are pending, run nothing
  --json              print the aggregated groups as JSON on the last line
  --help              this text`;

const { values } = parseArgs({
  options: {
    datasets: { type: "string" },
    models: { type: "string" },
    attacks: { type: "string" },
    seeds: { type: "string", default: "0" },
    epochs: { type: "string" },
    "data-path": { type: "string" },
    param: { type: "string" },
    fprs: { type: "string" },
    defense: { type: "string" },
    results: { type: "string", default: "bench/results/matrix" },
    render: { type: "boolean", default: false },
    "render-only": { type: "boolean", default: false },
    "dry-run": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
  allowPositionals: false,
  strict: true,
});

const fail: (msg: string) => never = usageFailure("bench:matrix");

const list = (s: string | undefined) =>
  (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

/** "6" for every dataset, or "fashion-mnist=6,gtsrb=8". */
function perDataset(name: string, s: string | undefined): Map<string, string> | string | undefined {
  if (s === undefined) return undefined;
  if (!s.includes("=")) return s;
  const m = new Map<string, string>();
  for (const part of list(s)) {
    const [k, v] = part.split("=");
    if (!k || v === undefined) fail(`--${name}: expected dataset=value pairs, got ${JSON.stringify(part)}`);
    m.set(k, v);
  }
  return m;
}

helpAndExit(values.help, HELP);

const resultsDir = values.results;
const renderTables = values.render || values["render-only"];

async function render(): Promise<void> {
  const rows = await readAllResults(resultsDir);
  // A wrong --results path renders nothing: say so rather than print no table.
  if (rows.length === 0) fail(`--results: no finished cell results under ${resultsDir}; nothing to render`);
  const groups = aggregateMatrix(rows);
  const tables = renderMatrixTables(groups);
  console.error(
    `bench:matrix: ${groups.length} table(s) from ${resultsDir}; \`npm run results\` writes RESULTS.md from the default rows`,
  );
  console.log(tables);
  if (wantsJson()) console.log(JSON.stringify(groups));
}

if (values["render-only"]) {
  await render();
  process.exit(0);
}

// ---- validation, before any work ----
const datasets = list(values.datasets);
const attacks = list(values.attacks);
if (datasets.length === 0) fail("--datasets: give at least one dataset");
if (attacks.length === 0) fail("--attacks: give at least one attack");
/** Registry look-ups throw with the valid names; here that is one line, not a stack trace. */
function check<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    return fail((e as Error).message);
  }
}
for (const d of datasets) check(() => datasetInfo(d));
const seeds = list(values.seeds).map((s) => {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) fail(`--seeds: expected non-negative integers, got ${JSON.stringify(s)}`);
  return n;
});
const epochsArg = perDataset("epochs", values.epochs);
const pathArg = perDataset("data-path", values["data-path"]);
if (typeof pathArg === "string") fail("--data-path: give dataset=path pairs");
for (const k of pathArg?.keys() ?? [])
  if (!datasets.includes(k)) fail(`--data-path: ${k} is not one of --datasets (${datasets.join(", ")})`);
const epochsFor = (d: string): number => {
  const raw = typeof epochsArg === "string" ? epochsArg : epochsArg?.get(d);
  const n = raw === undefined ? defaultEpochs(d) : Number(raw);
  if (!Number.isInteger(n) || n < 1) fail(`--epochs: expected a positive integer for ${d}, got ${JSON.stringify(raw)}`);
  return n;
};
const fprs =
  values.fprs === undefined
    ? undefined
    : list(values.fprs).map((s) => {
        const f = Number(s);
        if (!(f > 0 && f < 1)) fail(`--fprs: expected numbers in (0, 1), got ${JSON.stringify(s)}`);
        return f;
      });
const overrides = new Map<string, Record<string, string>>();
for (const part of (values.param ?? "").split(";").filter(Boolean)) {
  const [name, text] = part.split(":");
  if (!name || !text) fail(`--param: expected "attack:k=v,...", got ${JSON.stringify(part)}`);
  if (!attacks.includes(name)) fail(`--param: ${name} is not one of --attacks (${attacks.join(", ")})`);
  overrides.set(name, parseParamOverrides(text));
}

const defense: MatrixDefense = {};
for (const part of list(values.defense)) {
  const [k, v] = part.split("=");
  if (k === "unlearnLabels") {
    if (!(UNLEARN_LABEL_MAPPINGS as readonly string[]).includes(v ?? ""))
      fail(`--defense: unlearnLabels must be one of ${UNLEARN_LABEL_MAPPINGS.join(", ")}, got ${JSON.stringify(v)}`);
    defense.unlearnLabels = v as UnlearnLabelMapping;
  } else if (k === "finetuneLr") {
    const x = Number(v);
    if (v !== "auto" && !(x > 0 && x <= 10))
      fail(`--defense: finetuneLr must be "auto" or a number in (0, 10], got ${JSON.stringify(v)}`);
    defense.finetuneLr = v === "auto" ? "auto" : x;
  } else if (k === "unlearnLr") {
    const x = Number(v);
    if (v !== "auto" && !(x > 0 && x <= 10))
      fail(`--defense: unlearnLr must be "auto" or a number in (0, 10], got ${JSON.stringify(v)}`);
    defense.unlearnLr = v === "auto" ? "auto" : x;
  } else {
    fail(`--defense: expected unlearnLabels=..., finetuneLr=... or unlearnLr=..., got ${JSON.stringify(part)}`);
  }
}
const hasDefense = Object.keys(defense).length > 0;

const cells: MatrixCell[] = [];
for (const dataset of datasets) {
  const info = check(() => datasetInfo(dataset));
  const models = list(values.models);
  const dataPath = pathArg?.get(dataset);
  for (const model of models.length ? models : [undefined]) {
    const name = model ?? recipeFor(dataset).model;
    check(() => modelInfo(name));
    for (const attack of attacks) {
      const params = overrides.get(attack) ?? {};
      // Unknown attacks and bad parameters fail here, not after an hour of training.
      const size = info.imageSize ?? { height: 32, width: 32 };
      check(() =>
        createAttack(attack, params, {
          numClasses: info.numClasses ?? 10,
          height: size.height,
          width: size.width,
          channels: info.channels ?? 3,
          dataset,
        }),
      );
      for (const seed of seeds)
        cells.push({
          dataset,
          model: name,
          attack,
          attackParams: params,
          seed,
          epochs: epochsFor(dataset),
          ...(dataPath ? { dataPath } : {}),
          ...(hasDefense ? { defense } : {}),
        });
    }
  }
}

if (values["dry-run"]) {
  const pending = new Set((await pendingCells(resultsDir, cells, fprs)).map(cellId));
  const rows = cells.map((c) => ({ cell: cellId(c), pending: pending.has(cellId(c)) }));
  for (const r of rows) console.log(`${r.pending ? "pending " : "finished"}  ${r.cell}`);
  if (wantsJson()) console.log(JSON.stringify(rows));
  process.exit(0);
}

const t0 = Date.now();
const r = await runMatrix(cells, {
  resultsDir,
  ...(fprs ? { fprs } : {}),
  log: (l) => console.error(`bench:matrix: ${l}`),
  onCell: (res, done, total) => {
    const m = res.evaluations[0]?.metrics;
    console.error(
      `bench:matrix: [${done}/${total}] ${cellId(res.cell)}: AUROC ${m?.auroc.toFixed(4)}, ASR ${m ? (100 * m.asrBefore).toFixed(2) : "?"}% → ${m ? (100 * m.asrAfter).toFixed(2) : "?"}% (${((Date.now() - t0) / 60000).toFixed(1)} min so far)`,
    );
  },
});
console.error(
  `bench:matrix: ${r.ran} cell(s) run, ${r.skipped} already finished, in ${((Date.now() - t0) / 60000).toFixed(1)} min`,
);
if (renderTables || values.json) await render();
