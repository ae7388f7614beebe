// The evaluation matrix's tables: grouping and aggregation over seeds, the rendered rows and the
// average row.
import { test } from "node:test";
import assert from "node:assert/strict";

import type { DefenseMetrics } from "../../src/defense/metrics.js";
import { aggregateMatrix, renderMatrixTables, type MatrixRow } from "../../bench/matrix/tables.js";

function metrics(o: Partial<DefenseMetrics>): DefenseMetrics {
  return {
    cleanCount: 100,
    poisonCount: 90,
    cleanAccuracyBefore: 0.9,
    cleanAccuracyAfter: 0.89,
    asrBefore: 1,
    asrAfter: 0,
    auroc: 1,
    tpr: 1,
    fpr: 0.01,
    threshold: 0,
    ...o,
  };
}

function row(
  attack: string,
  seed: number,
  fprs: Record<number, Partial<DefenseMetrics>>,
  scores = { positives: [2, 3], negatives: [0, 1] },
): MatrixRow {
  return {
    cell: {
      dataset: "fashion-mnist",
      model: "compact-cnn",
      attack,
      attackParams: attack === "blend" ? { alpha: 0.2 } : {},
      seed,
      epochs: 6,
    },
    unlearn: { lr: seed === 2 ? 5e-4 : 3e-4, source: "canary" },
    evaluations: Object.entries(fprs).map(([f, m]) => ({ targetFpr: Number(f), metrics: metrics(m) })),
    scores,
  };
}

const ROWS: MatrixRow[] = [
  row("badnet", 1, { 0.01: { auroc: 0.998, asrAfter: 0.02, cleanAccuracyBefore: 0.91, cleanAccuracyAfter: 0.9 } }),
  row("badnet", 0, { 0.01: { auroc: 0.9996, asrAfter: 0, cleanAccuracyBefore: 0.92, cleanAccuracyAfter: 0.91 } }),
  row("badnet", 2, { 0.01: { auroc: 0.9984, asrAfter: 0.01, cleanAccuracyBefore: 0.93, cleanAccuracyAfter: 0.9 } }),
  row("blend", 0, {
    0.01: { auroc: 0.99, asrAfter: 0.05, cleanAccuracyBefore: 0.9, cleanAccuracyAfter: 0.89 },
    0.001: { auroc: 0.99, asrAfter: 0.2 },
  }),
];

void test("aggregateMatrix: groups by dataset, model, epochs and FPR; mean ± std over seeds in seed order; averages over attacks", () => {
  const groups = aggregateMatrix(ROWS, { reps: 100, seed: 0 });
  assert.deepEqual(
    groups.map((g) => [g.dataset, g.model, g.epochs, g.targetFpr, g.attacks.map((a) => a.attack)]),
    [
      ["fashion-mnist", "compact-cnn", 6, 0.01, ["badnet", "blend"]],
      ["fashion-mnist", "compact-cnn", 6, 0.001, ["blend"]],
    ],
  );
  const g = groups[0];
  assert.ok(g);
  const badnet = g.attacks[0];
  assert.ok(badnet);
  assert.deepEqual(badnet.seeds, [0, 1, 2]);
  assert.deepEqual(badnet.unlearnLrs, [3e-4, 3e-4, 5e-4]);
  assert.ok(Math.abs(badnet.stats.auroc.mean - 0.99867) < 1e-5);
  assert.ok(Math.abs(badnet.stats.auroc.std - 0.000833) < 1e-6);
  assert.ok(Math.abs(badnet.stats.asrAfter.mean - 0.01) < 1e-12);
  assert.ok(Math.abs(badnet.stats.asrAfter.std - 0.01) < 1e-12);
  assert.equal(badnet.stats.cleanAccuracyBefore.n, 3);
  // Perfectly separated scores: the interval is [1, 1].
  assert.deepEqual([badnet.aurocInterval.low, badnet.aurocInterval.high], [1, 1]);
  // Averages of the per-attack means: AUROC (0.99867 + 0.99) / 2; ASR (0.01 + 0.05) / 2; CA drop (0.01667 + 0.01) / 2.
  assert.ok(g.average);
  assert.equal(g.average.untaken, 0);
  assert.ok(Math.abs(g.average.auroc - (0.998667 + 0.99) / 2) < 1e-6);
  assert.ok(Math.abs(g.average.asrAfter - 0.03) < 1e-12);
  assert.ok(Math.abs(g.average.cleanAccuracyDrop - (0.05 / 3 + 0.01) / 2) < 1e-12);
});

void test("aggregateMatrix: two results for the same seed are an error naming the cell", () => {
  assert.throws(
    () => aggregateMatrix([ROWS[0] as MatrixRow, ROWS[0] as MatrixRow]),
    /two results for fashion-mnist\/compact-cnn\/badnet seed 1 at FPR 0.01/,
  );
});

void test("renderMatrixTables: a heading and a row per attack with mean ± std, the interval and the average row", () => {
  const text = renderMatrixTables(aggregateMatrix(ROWS, { reps: 100, seed: 0 }));
  const lines = text.split("\n");
  assert.ok(lines.includes("#### fashion-mnist · compact-cnn · 6 epochs · FPR 1%"));
  assert.ok(lines.includes("#### fashion-mnist · compact-cnn · 6 epochs · FPR 0.1%"));
  assert.ok(
    lines.includes(
      "| badnet | 0,1,2 | 3e-4, 5e-4 / – | 92.00 ± 1.00% → 90.33 ± 0.58% | 100.00 ± 0.00% → 1.00 ± 1.00% | 0.9987 ± 0.0008 | [1.0000, 1.0000] | 100.00 ± 0.00% | 1.00 ± 0.00% |",
    ),
    text,
  );
  // One seed: no ± part.
  assert.ok(
    lines.includes(
      "| blend (alpha=0.2) | 0 | 3e-4 / – | 90.00% → 89.00% | 100.00% → 5.00% | 0.9900 | [1.0000, 1.0000] | 100.00% | 1.00% |",
    ),
    text,
  );
  assert.ok(
    lines.includes("| **average over 2 attacks** | | | CA drop 1.33 pts | ASR after 3.00% | 0.9943 | | | |"),
    text,
  );
});

void test("aggregateMatrix: rows with defense overrides are their own rows, labelled with the overrides", () => {
  // A result that records M''s rate shows it after B's (the others predate the record: "–").
  const tuned: MatrixRow = {
    ...row("badnet", 0, { 0.01: { auroc: 0.5 } }),
    cell: { ...row("badnet", 0, {}).cell, defense: { unlearnLabels: "permutation", finetuneLr: 0.05 } },
    finetune: { lr: 0.05, source: "given" },
  };
  const groups = aggregateMatrix([...ROWS, tuned], { reps: 10, seed: 0 });
  const g = groups[0];
  assert.ok(g);
  assert.deepEqual(
    g.attacks.map((a) => [a.attack, a.defense, a.seeds]),
    [
      ["badnet", "", [0, 1, 2]],
      ["blend", "", [0]],
      ["badnet", "finetuneLr=0.05, unlearnLabels=permutation", [0]],
    ],
  );
  assert.match(
    renderMatrixTables(groups),
    /\| badnet · defense finetuneLr=0\.05, unlearnLabels=permutation \| 0 \| 3e-4 \/ 0\.05 \|/,
  );
  // The average row stays the defaults': the override row is a comparison, not another attack.
  assert.deepEqual(
    [g.average?.attacks, g.average?.auroc],
    [2, aggregateMatrix(ROWS, { reps: 10, seed: 0 })[0]?.average?.auroc],
  );
  assert.match(renderMatrixTables(groups), /\| \*\*average over 2 attacks \(defaults\)\*\* \|/);
});

void test("renderMatrixTables: a rate the canaries could not choose is marked, and the table explains the mark", () => {
  const plain = renderMatrixTables(aggregateMatrix(ROWS, { reps: 10, seed: 0 }));
  assert.doesNotMatch(plain, /†/);
  const fallback: MatrixRow = {
    ...row("badnet", 1, { 0.01: { auroc: 0.998 } }),
    unlearn: { lr: 3e-4, source: "canary-inconclusive" },
  };
  const text = renderMatrixTables(
    aggregateMatrix([ROWS[1] as MatrixRow, fallback, ROWS[2] as MatrixRow], { reps: 10, seed: 0 }),
  );
  // Seed 0 chose 3e-4, seed 1 fell back to 3e-4, seed 2 chose 5e-4: three labels, in seed order.
  assert.match(text, /\| badnet \| 0,1,2 \| 3e-4, 3e-4†, 5e-4 \/ – \|/);
  assert.match(text, /^† the canaries were inconclusive for this seed/m);
});

void test("aggregateMatrix: a backdoor that did not take (ASR before < 50%) is shown, marked, and left out of the average", () => {
  const weak = row("wanet", 0, { 0.01: { auroc: 0.6, asrBefore: 0.3, asrAfter: 0.29 } });
  const groups = aggregateMatrix([...ROWS, weak], { reps: 10, seed: 0 });
  const g = groups[0];
  assert.ok(g?.average);
  assert.deepEqual(
    g.attacks.map((a) => [a.attack, a.took]),
    [
      ["badnet", true],
      ["blend", true],
      ["wanet", false],
    ],
  );
  // The average is the one without the untaken row.
  assert.deepEqual(
    [g.average.attacks, g.average.untaken, g.average.auroc],
    [2, 1, aggregateMatrix(ROWS, { reps: 10, seed: 0 })[0]?.average?.auroc],
  );
  const text = renderMatrixTables(groups);
  assert.match(text, /^\| wanet · \*\*did not take\*\* \| 0 \|/m);
  assert.match(text, /\| \*\*average over 2 attacks \(1 that did not take left out\)\*\* \|/);
  // A table with nothing that took has no average, and says so.
  const only = aggregateMatrix([weak], { reps: 10, seed: 0 });
  assert.equal(only[0]?.average, null);
  assert.match(renderMatrixTables(only), /no average: no backdoor in this table took/);
});
