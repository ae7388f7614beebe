// The evaluation matrix's bookkeeping: cell names, result files written atomically, and the
// resume rule (a cell is pending unless its finished file covers every FPR; torn, foreign and
// temporary files do not count). The cells' real runs are the bench itself (RESULTS.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import {
  aurocSets,
  cellId,
  madeWithCurrentDefaults,
  defenseTag,
  cellPath,
  defaultFprs,
  MATRIX_RESULT_VERSION,
  pendingCells,
  readAllResults,
  readCellResult,
  writeCellResult,
  type MatrixCell,
  type MatrixCellResult,
} from "../../bench/matrix/cells.js";

const cell = (attack: string, seed: number, o: Partial<MatrixCell> = {}): MatrixCell => ({
  dataset: "fashion-mnist",
  model: "compact-cnn",
  attack,
  attackParams: {},
  seed,
  epochs: 6,
  ...o,
});

function result(c: MatrixCell, fprs = [0.01]): MatrixCellResult {
  const m = {
    cleanCount: 10,
    poisonCount: 9,
    cleanAccuracyBefore: 0.9,
    cleanAccuracyAfter: 0.8,
    asrBefore: 1,
    asrAfter: 0,
    auroc: 1,
    tpr: 1,
    fpr: 0,
    threshold: 0.5,
  };
  return {
    version: MATRIX_RESULT_VERSION,
    cell: c,
    model: { checkpoint: "/x", cleanAccuracy: 0.9, attackSuccessRate: 1, trainSeconds: 0 },
    // As defend's defaults make it on any model: B unlearned until forgotten, M''s rate chosen.
    unlearn: { lr: 3e-4, source: "until-forgotten" },
    finetune: {
      lr: 0.03,
      source: "auto",
      selection: {
        lr: 0.03,
        modelAccuracy: 0.9,
        tolerance: 0.04,
        probeEpochs: 2,
        conclusive: true,
        table: [
          { lr: 0.1, calibrationAccuracy: 0.8, kept: false },
          { lr: 0.03, calibrationAccuracy: 0.88, kept: true },
        ],
        seconds: 1,
      },
    },
    evaluations: fprs.map((targetFpr) => ({ targetFpr, threshold: 0.5, metrics: m })),
    scores: { positives: [1, 2], negatives: [0] },
    seconds: { expert: 1, auxiliary: 1, calibration: 1, selection: 1, evaluation: 1 },
    scoringRate: 100,
    finishedAt: "2026-01-01T00:00:00.000Z",
  };
}

void test("cellId: every field that changes the result, parameters sorted by name", () => {
  assert.equal(cellId(cell("badnet", 2)), "fashion-mnist-compact-cnn-badnet-e6-seed2");
  assert.equal(
    cellId(cell("blend", 0, { attackParams: { rate: 0.01, alpha: 0.2 }, epochs: 8, dataset: "gtsrb" })),
    "gtsrb-compact-cnn-blend-alpha=0.2,rate=0.01-e8-seed0",
  );
  assert.equal(cellPath("/r", cell("badnet", 1)), join("/r", "fashion-mnist-compact-cnn-badnet-e6-seed1.json"));
});

void test("cellId: defense overrides are part of the identity, sorted by name; none keeps the plain name", () => {
  assert.equal(
    cellId(cell("tact", 0, { defense: { unlearnLabels: "permutation", finetuneLr: 0.05 } })),
    "fashion-mnist-compact-cnn-tact-e6-seed0-defense-finetuneLr=0.05,unlearnLabels=permutation",
  );
  assert.equal(cellId(cell("tact", 0, { defense: {} })), "fashion-mnist-compact-cnn-tact-e6-seed0");
  assert.equal(defenseTag({ finetuneLr: 0.1 }), "finetuneLr=0.1");
});

void test("defaultFprs: the paper's 0.1% and 1% on GTSRB, 1% elsewhere", () => {
  assert.deepEqual(defaultFprs("compact-cnn", "gtsrb"), [0.001, 0.01]);
  assert.deepEqual(defaultFprs("compact-cnn", "fashion-mnist"), [0.01]);
  assert.deepEqual(defaultFprs("resnet20", "cifar10-folder"), [0.01]);
});

void test("pendingCells: finished cells are skipped; missing, torn, foreign-version and partial-FPR cells are pending", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-matrix-"));
  try {
    const cells = [
      cell("badnet", 0),
      cell("badnet", 1),
      cell("badnet", 2),
      cell("blend", 0),
      cell("blend", 1, { dataset: "gtsrb" }),
    ];
    assert.deepEqual(await pendingCells(dir, cells), cells);
    await writeCellResult(dir, result(cells[0] as MatrixCell));
    // A run killed while writing leaves at most a temporary file, never a torn result under the cell's name...
    await writeFile(`${cellPath(dir, cells[1] as MatrixCell)}.tmp-123`, '{"version":1,');
    // ...but a torn file there (written by something else) does not count either.
    await writeFile(cellPath(dir, cells[2] as MatrixCell), JSON.stringify(result(cells[2] as MatrixCell)).slice(0, 50));
    await writeFile(
      cellPath(dir, cells[3] as MatrixCell),
      JSON.stringify({ ...result(cells[3] as MatrixCell), version: 0 }),
    );
    // GTSRB wants 0.1% and 1%: a file with 1% only is pending by default, finished when 1% is all that is asked.
    await writeCellResult(dir, result(cells[4] as MatrixCell, [0.01]));
    assert.deepEqual(
      (await pendingCells(dir, cells)).map(cellId),
      [cells[1], cells[2], cells[3], cells[4]].map((c) => cellId(c as MatrixCell)),
    );
    assert.deepEqual(
      (await pendingCells(dir, cells, [0.01])).map(cellId),
      [cells[1], cells[2], cells[3]].map((c) => cellId(c as MatrixCell)),
    );
    assert.equal(await readCellResult(cellPath(dir, cells[2] as MatrixCell)), null);
    // Finishing the rest leaves nothing to do.
    for (const c of cells.slice(1)) await writeCellResult(dir, result(c, [0.001, 0.01]));
    assert.deepEqual(await pendingCells(dir, cells), []);
    const all = await readAllResults(dir);
    assert.equal(all.length, 5);
    // A result whose rates were set another way than the defaults set them (B by canaries or at a
    // fixed rate, M' at a fixed rate, or no record of M''s rate) does not stand for the defaults:
    // pending again and left out of the tables. Named by its override it stands.
    const current = result(cells[0] as MatrixCell);
    await writeCellResult(dir, { ...current, unlearn: { lr: 3e-4, source: "canary" } });
    assert.deepEqual(
      (await pendingCells(dir, cells)).map(cellId),
      [cellId(cells[0] as MatrixCell)],
      "B chosen by canaries",
    );
    assert.equal((await readAllResults(dir)).length, 4);
    await writeCellResult(dir, { ...current, unlearn: { lr: 1e-3, source: "default" } });
    assert.deepEqual(
      (await pendingCells(dir, cells)).map(cellId),
      [cellId(cells[0] as MatrixCell)],
      "B at a fixed rate",
    );
    await writeCellResult(dir, { ...current, finetune: { lr: 0.1, source: "default" } });
    assert.deepEqual(
      (await pendingCells(dir, cells)).map(cellId),
      [cellId(cells[0] as MatrixCell)],
      "M' at a fixed rate",
    );
    const old = result(cells[0] as MatrixCell);
    delete old.finetune;
    await writeCellResult(dir, old);
    assert.deepEqual(
      (await pendingCells(dir, cells)).map(cellId),
      [cellId(cells[0] as MatrixCell)],
      "no record of M''s rate",
    );
    const given = {
      ...current,
      cell: { ...current.cell, defense: { finetuneLr: 0.1 } },
      finetune: { lr: 0.1, source: "given" as const },
    };
    await writeCellResult(dir, given);
    assert.deepEqual(await pendingCells(dir, [given.cell]), []);
    await writeCellResult(dir, result(cells[0] as MatrixCell));
    assert.deepEqual(all.map((r) => r.cell.attack).sort(), ["badnet", "badnet", "badnet", "blend", "blend"]);
    assert.ok(
      (await readdir(dir)).some((n) => n.includes(".tmp-")),
      "the stray temporary file is still there, and ignored",
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.deepEqual(await readAllResults(join(tmpdir(), "bx-matrix-does-not-exist")), []);
});

void test("madeWithCurrentDefaults: the same rule on every architecture and dataset; overrides stand for themselves", () => {
  for (const c of [
    cell("tact", 0, { dataset: "cifar10-folder", model: "resnet20", epochs: 10 }),
    cell("badnet", 0),
    cell("tact", 0, { dataset: "gtsrb", epochs: 8 }),
  ]) {
    const now = result(c);
    assert.equal(madeWithCurrentDefaults(now), true, cellId(c));
    for (const source of ["paper", "default", "canary", "canary-inconclusive"]) {
      assert.equal(
        madeWithCurrentDefaults({ ...now, unlearn: { lr: 1e-4, source } }),
        false,
        `${cellId(c)}: B from ${source}`,
      );
    }
    assert.equal(
      madeWithCurrentDefaults({ ...now, finetune: { lr: 0.1, source: "default" } }),
      false,
      `${cellId(c)}: a fixed M' rate`,
    );
    // The same computations named by their overrides stand.
    const old = { ...now, unlearn: { lr: 5e-4, source: "canary" }, finetune: { lr: 0.05, source: "given" as const } };
    assert.equal(
      madeWithCurrentDefaults({
        ...old,
        cell: { ...c, defense: { canaries: ["blend", "patch", "conditional"], finetuneLr: 0.05 } },
      }),
      true,
    );
  }
});

void test("aurocSets: positives = poisoned inputs that fool M, negatives = clean inputs M gets right", () => {
  const clean = { pred: [0, 1, 2, 3], label: [0, 1, 0, 3], score: [0.1, 0.2, 0.3, 0.4] };
  const poisoned = { pred: [5, 5, 1], label: [5, 5, 5], score: [0.9, 0.8, 0.7] };
  assert.deepEqual(aurocSets(clean, poisoned), { positives: [0.9, 0.8], negatives: [0.1, 0.2, 0.4] });
});

// ---- the bench:matrix command itself (a child process: it is a script, not a module) ----

const SCRIPT = fileURLToPath(new URL("../../bench/matrix.js", import.meta.url));

function matrixCli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], {
    encoding: "utf8",
    env: { ...process.env, BADEXPERT_THREADS: "1" },
  });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

void test("bench:matrix: --help; bad arguments are one line and exit 2 before any work", () => {
  const help = matrixCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--datasets a,b/);
  assert.match(help.out, /--render-only/);
  const bad: [string[], RegExp][] = [
    [
      ["--datasets", "fashion-mnist", "--attacks", "badnet,nope"],
      /^bench:matrix: unknown attack 'nope'; valid names: badnet, blend/,
    ],
    [
      ["--datasets", "fashion-mnist", "--attacks", "badnet", "--seeds", "1,x"],
      /^bench:matrix: --seeds: expected non-negative integers, got "x"/,
    ],
    [
      ["--datasets", "fashion-mnist", "--attacks", "badnet", "--param", "badnet:rate=7"],
      /^bench:matrix: attack 'badnet': parameter 'rate' must be a number >= 0 and <= 1, got "7"/,
    ],
    [
      ["--datasets", "fashion-mnist", "--attacks", "badnet", "--data-path", "gtsrb=/x"],
      /^bench:matrix: --data-path: gtsrb is not one of --datasets \(fashion-mnist\)/,
    ],
    [["--attacks", "badnet"], /^bench:matrix: --datasets: give at least one dataset/],
  ];
  for (const [args, re] of bad) {
    const r = matrixCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.match(r.err, re);
  }
});

void test("bench:matrix --dry-run: lists finished and pending cells from the results directory, as JSON too", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-matrix-cli-"));
  try {
    await writeCellResult(dir, result(cell("badnet", 1)));
    const r = matrixCli([
      "--datasets",
      "fashion-mnist",
      "--attacks",
      "badnet",
      "--seeds",
      "0,1",
      "--epochs",
      "6",
      "--results",
      dir,
      "--dry-run",
      "--json",
    ]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.trim().split("\n");
    assert.deepEqual(lines.slice(0, 2), [
      "pending   fashion-mnist-compact-cnn-badnet-e6-seed0",
      "finished  fashion-mnist-compact-cnn-badnet-e6-seed1",
    ]);
    assert.deepEqual(JSON.parse(lines[2] ?? "null"), [
      { cell: "fashion-mnist-compact-cnn-badnet-e6-seed0", pending: true },
      { cell: "fashion-mnist-compact-cnn-badnet-e6-seed1", pending: false },
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("bench:matrix --defense k=v: part of the cell's identity; unknown settings and bad rates exit 2", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-matrix-defense-"));
  try {
    const given = matrixCli([
      "--datasets",
      "fashion-mnist",
      "--attacks",
      "tact",
      "--epochs",
      "6",
      "--results",
      dir,
      "--defense",
      "unlearnLr=1e-4,finetuneLr=0.1",
      "--dry-run",
    ]);
    assert.equal(
      given.out.trim(),
      "pending   fashion-mnist-compact-cnn-tact-e6-seed0-defense-finetuneLr=0.1,unlearnLr=0.0001",
      given.err,
    );
    const auto = matrixCli([
      "--datasets",
      "fashion-mnist",
      "--attacks",
      "tact",
      "--epochs",
      "6",
      "--results",
      dir,
      "--defense",
      "unlearnLr=auto,finetuneLr=0.05",
      "--dry-run",
    ]);
    assert.equal(
      auto.out.trim(),
      "pending   fashion-mnist-compact-cnn-tact-e6-seed0-defense-finetuneLr=0.05,unlearnLr=auto",
      auto.err,
    );
    const zero = matrixCli([
      "--datasets",
      "fashion-mnist",
      "--attacks",
      "tact",
      "--results",
      dir,
      "--defense",
      "unlearnLr=0",
      "--dry-run",
    ]);
    assert.equal(zero.code, 2);
    assert.match(zero.err, /^bench:matrix: --defense: unlearnLr must be "auto" or a number in \(0, 10\], got "0"/);
    for (const bad of ["canaries=blend+patch", "nope=1"]) {
      const b = matrixCli([
        "--datasets",
        "fashion-mnist",
        "--attacks",
        "tact",
        "--results",
        dir,
        "--defense",
        bad,
        "--dry-run",
      ]);
      assert.equal(b.code, 2, bad);
      assert.match(
        b.err,
        /^bench:matrix: --defense: expected unlearnLabels=\.\.\., finetuneLr=\.\.\. or unlearnLr=\.\.\., got /,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("bench:matrix --render-only with no results refuses and says so", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-matrix-render-"));
  try {
    const r = matrixCli(["--render-only", "--results", join(dir, "nothing-here")]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, /^bench:matrix: --results: no finished cell results under .*nothing-here; nothing to render/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
