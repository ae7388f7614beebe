// RESULTS.md and the README's results table: which result files count (ranWithDefaults, the one
// rule), what the page says about them (values, baselines, the commands that reproduce them),
// and that the committed RESULTS.md, charts and README table are what `npm run results` builds
// from the committed result files, byte for byte.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { cellId, readCellResult, type MatrixCellResult } from "../../bench/matrix/cells.js";
import type { DefenseMetrics } from "../../src/defense/metrics.js";
import {
  RESULTS_BEGIN,
  RESULTS_END,
  extraDefendOptions,
  matrixSettings,
  ranWithDefaults,
  readResultFiles,
  renderResultsPage,
  replaceResultsTable,
  reproduceCommands,
  type CompareCellResult,
  type ResultFiles,
} from "../../bench/results-page.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const SCRIPT = join(ROOT, "dist", "bench", "results.js");
const MATRIX = join(ROOT, "bench", "results", "matrix");

function runResults(args: string[]): Promise<{ code: number; err: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [SCRIPT, ...args], { cwd: ROOT, timeout: 300_000 }, (e, _out, err) =>
      done({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, err }),
    );
  });
}

/** The committed matrix results that count, with their file names. */
async function countedMatrixFiles(): Promise<{ name: string; r: MatrixCellResult }[]> {
  const out: { name: string; r: MatrixCellResult }[] = [];
  for (const name of (await readdir(MATRIX)).filter((n) => n.endsWith(".json")).sort()) {
    const r = await readCellResult(join(MATRIX, name));
    if (r && ranWithDefaults(matrixSettings(r))) out.push({ name, r });
  }
  return out;
}

test("the rule: a result with a -defense- settings tag never counts, nor one whose rates the defaults would not have set", async () => {
  const counted = await countedMatrixFiles();
  assert.ok(counted.length > 0, "at least one committed matrix result ran with the current defaults");
  for (const { name, r } of counted) {
    assert.doesNotMatch(name, /-defense-/, name);
    assert.equal(`${cellId(r.cell)}.json`, name, "the file name is the cell's identity");
  }
  const { r } = counted[0] as { r: MatrixCellResult };
  assert.equal(ranWithDefaults(matrixSettings(r)), true);
  assert.equal(
    ranWithDefaults(matrixSettings({ ...r, cell: { ...r.cell, defense: { finetuneLr: 0.05 } } })),
    false,
    "a settings tag",
  );
  assert.equal(
    ranWithDefaults(matrixSettings({ ...r, cell: { ...r.cell, defense: {} } })),
    true,
    "an empty settings object is the defaults (no tag)",
  );
  assert.equal(
    ranWithDefaults(matrixSettings({ ...r, unlearn: { lr: 0.123, source: "given" } })),
    false,
    "B's rate set otherwise than the defaults set it",
  );
  // The foreign zoo's command: only --checkpoint and --out are the defaults.
  assert.deepEqual(
    extraDefendOptions(["badexpert", "defend", "--checkpoint", "<work>/checkpoint", "--out", "<work>/bundle"]),
    [],
  );
  assert.deepEqual(
    extraDefendOptions(["badexpert", "defend", "--checkpoint", "c", "--unlearn-lr", "3e-4", "--out", "b"]),
    ["--unlearn-lr", "3e-4"],
  );
});

test("readResultFiles keeps exactly the committed results that ran with the defaults, and counts the rest", async () => {
  const files = await readResultFiles(join(ROOT, "bench", "results"));
  const counted = await countedMatrixFiles();
  assert.deepEqual(
    files.matrix.map((r) => cellId(r.cell)).sort(),
    counted.map((c) => c.name.replace(/\.json$/, "")).sort(),
  );
  assert.ok(
    files.counts.matrix.files > files.counts.matrix.counted,
    "the override runs are under bench/results/matrix and left out",
  );
});

function metrics(o: Partial<DefenseMetrics>): DefenseMetrics {
  return {
    cleanCount: 1000,
    poisonCount: 900,
    cleanAccuracyBefore: 0.9,
    cleanAccuracyAfter: 0.89,
    asrBefore: 1,
    asrAfter: 0.02,
    auroc: 0.99,
    tpr: 0.98,
    fpr: 0.01,
    threshold: -1,
    ...o,
  };
}

function cell(
  attack: string,
  seed: number,
  m: Partial<DefenseMetrics>,
  attackParams: Record<string, string | number | boolean> = {},
): MatrixCellResult {
  return {
    version: 1,
    cell: { dataset: "fashion-mnist", model: "compact-cnn", attack, attackParams, seed, epochs: 6 },
    model: { checkpoint: "x", cleanAccuracy: 0.9, attackSuccessRate: 1, trainSeconds: 0 },
    unlearn: { lr: 3e-4, source: "canary" },
    finetune: { lr: 0.1, source: "default" },
    evaluations: [{ targetFpr: 0.01, threshold: -1, metrics: metrics(m) }],
    scores: { positives: [3, 4, 5, 0.5], negatives: [0, 1, 2, -1] },
    seconds: { expert: 0, auxiliary: 0, calibration: 0, selection: 0, evaluation: 0 },
    scoringRate: 0,
    finishedAt: "2000-01-01T00:00:00.000Z",
  };
}

function compare(attack: string, seed: number, rows: [string, Partial<DefenseMetrics>][]): CompareCellResult {
  return {
    version: 1,
    cell: { dataset: "fashion-mnist", model: "compact-cnn", attack, attackParams: {}, seed, epochs: 6 },
    targetFpr: 0.01,
    detectorParams: "",
    splits: { calibrationUsed: 2000, evaluationUsed: 500, poisonedUsed: 450 },
    rows: rows.map(([detector, m]) => ({ detector, metrics: metrics(m) })),
  };
}

const FILES: ResultFiles = {
  matrix: [
    cell("badnet", 0, { auroc: 0.998, asrAfter: 0.01 }),
    cell("badnet", 1, { auroc: 0.996, asrAfter: 0.03 }),
    cell("wanet", 0, { auroc: 0.7, asrBefore: 0.2, asrAfter: 0.1 }),
  ],
  foreign: [],
  compare: [
    compare("badnet", 0, [
      ["badexpert", { auroc: 0.5 }],
      ["strip", { auroc: 0.9, asrAfter: 0.3 }],
    ]),
    compare("badnet", 1, [["strip", { auroc: 0.8, asrAfter: 0.5 }]]),
  ],
  counts: { matrix: { files: 5, counted: 3 }, foreign: { files: 0, counted: 0 }, compare: { files: 2, counted: 2 } },
};

test("the page: per attack mean ± std over seeds, the untaken attack marked and out of the mean, baselines beside BaDExpert, the command", () => {
  const page = renderResultsPage(FILES);
  const md = page.markdown;
  assert.match(md, /Counted: 3 of 5 matrix result files/);
  // BadNet over seeds 0, 1: AUROC 0.9970 ± 0.0014 (sample std of 0.998 and 0.996), ASR after 2.00 ± 1.41%.
  assert.match(
    md,
    /\| badnet \| 0, 1 \| 0\.9970 ± 0\.0014 \| \[[0-9.]+, [0-9.]+\] \| 98\.00 ± 0\.00% \| 1\.00 ± 0\.00% \| 90\.00 ± 0\.00% → 89\.00 ± 0\.00% \| 100\.00 ± 0\.00% → 2\.00 ± 1\.41% \|/,
  );
  assert.match(md, /\| wanet · \*\*did not take\*\* \| 0 \| 0\.7000 \|/);
  assert.match(md, /\| \*\*mean over 1 attack; 1 that did not take left out\*\* \| \| 0\.9970 \|/);
  // STRIP's mean over its two seeds; BaDExpert's row in the comparison file is not used (the matrix's is).
  assert.match(md, /\| attack \| BaDExpert \| strip \| evaluation images \|/);
  assert.match(
    md,
    /\| badnet \| 0\.9970 ± 0\.0014 \/ 2\.00 ± 1\.41% \| 0\.8500 ± 0\.0707 \/ 40\.00 ± 14\.14% \| 500 \|/,
  );
  assert.ok(
    md.includes(
      "npm run bench:matrix -- --datasets fashion-mnist --models compact-cnn --epochs 6 --seeds 0,1 --attacks badnet\n",
    ),
    md,
  );
  assert.ok(
    md.includes(
      "npm run bench:matrix -- --datasets fashion-mnist --models compact-cnn --epochs 6 --seeds 0 --attacks wanet\n",
    ),
    md,
  );
  assert.match(
    page.summary,
    /\| Fashion-MNIST \| compact-cnn \| 1 of 2 \| 0, 1 \| 1% \| 0\.9970 \| 0\.9970 \(badnet\) \| 2\.00% \| 1\.00 \|/,
  );
  // One chart for the block: BaDExpert on both attacks, STRIP on BadNet only.
  assert.equal(page.charts.size, 1);
  const svg = [...page.charts.values()][0] as string;
  assert.equal((svg.match(/class="bar"/g) ?? []).length, 3);
  assert.match(svg, /data-detector="strip" data-attack="badnet" data-auroc="0\.85"/);
  assert.ok(md.includes("](docs/results/fashion-mnist-compact-cnn-e6.svg)"));
});

test("reproduceCommands: one line per seed set, and an attack with two parameter sets on two lines; the data path where the dataset needs one", () => {
  const cmds = reproduceCommands({
    dataset: "gtsrb",
    model: "compact-cnn",
    epochs: 8,
    fprs: [0.001, 0.01],
    attacks: [
      { attack: "sig", attackParams: {}, seeds: [0] },
      { attack: "sig", attackParams: { rate: 0.05 }, seeds: [0] },
      { attack: "badnet", attackParams: {}, seeds: [0, 1] },
    ],
  });
  assert.deepEqual(cmds, [
    "npm run bench:matrix -- --datasets gtsrb --models compact-cnn --epochs 8 --seeds 0 --attacks sig --data-path gtsrb=PATH",
    'npm run bench:matrix -- --datasets gtsrb --models compact-cnn --epochs 8 --seeds 0 --attacks sig --param "sig:rate=0.05" --data-path gtsrb=PATH',
    "npm run bench:matrix -- --datasets gtsrb --models compact-cnn --epochs 8 --seeds 0,1 --attacks badnet --data-path gtsrb=PATH",
  ]);
});

test("replaceResultsTable replaces between the markers and refuses a document without them", () => {
  const doc = `# x\n${RESULTS_BEGIN}\nold\n${RESULTS_END}\ntail\n`;
  assert.equal(replaceResultsTable(doc, "| a |"), `# x\n${RESULTS_BEGIN}\n\n| a |\n\n${RESULTS_END}\ntail\n`);
  assert.throws(() => replaceResultsTable("# x\n", "t"), /expected one/);
});

test("npm run results: --check passes on what it wrote and fails on a changed RESULTS.md or a stray chart", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-results-"));
  after(() => rm(dir, { recursive: true, force: true }));
  const counted = await countedMatrixFiles();
  const { name } = counted[0] as { name: string };
  await mkdir(join(dir, "bench", "results", "matrix"), { recursive: true });
  await copyFile(join(MATRIX, name), join(dir, "bench", "results", "matrix", name));
  await writeFile(join(dir, "README.md"), `# r\n${RESULTS_BEGIN}\n${RESULTS_END}\n`);
  assert.equal((await runResults(["--root", dir, "--check"])).code, 1, "nothing generated yet");
  assert.equal((await runResults(["--root", dir])).code, 0);
  const check = await runResults(["--root", dir, "--check"]);
  assert.equal(check.code, 0, check.err);
  const readme = await readFile(join(dir, "README.md"), "utf8");
  assert.match(
    readme,
    /\n\| [^|\n]+ \| [^|\n]+ \| [01] of 1 \| \d+ \| /,
    "the README's table has the one result's row",
  );
  await writeFile(join(dir, "RESULTS.md"), `${await readFile(join(dir, "RESULTS.md"), "utf8")}\nhand edit\n`);
  const edited = await runResults(["--root", dir, "--check"]);
  assert.equal(edited.code, 1);
  assert.match(edited.err, /not current .*RESULTS\.md/);
  assert.equal((await runResults(["--root", dir])).code, 0);
  await writeFile(join(dir, "docs", "results", "old-block.svg"), "<svg/>");
  const stray = await runResults(["--root", dir, "--check"]);
  assert.equal(stray.code, 1);
  assert.match(stray.err, /docs\/results\/old-block\.svg/);
});

test("the committed RESULTS.md, its charts and the README table are current: npm run results -- --check", async () => {
  const r = await runResults(["--check"]);
  assert.equal(r.code, 0, r.err);
});
