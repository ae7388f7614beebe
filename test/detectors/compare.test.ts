// The compare job end to end on real Fashion-MNIST test images with an untrained model (fast):
// every detector on the same splits, one table, one ROC chart, JSON; and the chart alone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory } from "../../src/engine/index.js";
import { compareDetectors } from "../../src/jobs/compare.js";
import { multiRocChart, thinRoc } from "../../src/report/compare.js";
import { untrainedFashionCheckpoint } from "./fixtures.js";

test("multiRocChart draws one curve and one operating point per detector", () => {
  const pts = [
    { threshold: Infinity, fpr: 0, tpr: 0 },
    { threshold: 0.5, fpr: 0.1, tpr: 0.8 },
    { threshold: -Infinity, fpr: 1, tpr: 1 },
  ];
  const svg = multiRocChart([
    { label: "a", points: pts, operating: { fpr: 0.1, tpr: 0.8 } },
    { label: "b <x>", points: pts, operating: { fpr: 0.1, tpr: 0.8 } },
  ]);
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.equal((svg.match(/<circle /g) ?? []).length, 2);
  assert.ok(svg.includes("b &lt;x&gt;"));
  const many = Array.from({ length: 1001 }, (_, i) => ({ threshold: -i, fpr: i / 1000, tpr: i / 1000 }));
  const thin = thinRoc(many, 11);
  assert.equal(thin.length, 11);
  assert.equal(thin[0], many[0]);
  assert.equal(thin[10], many[1000]);
});

test("compare: every detector on the same splits and trigger, one report", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "badexpert-compare-"));
  try {
    manualSeed(0);
    await untrainedFashionCheckpoint(join(dir, "ckpt"), "badnet");
    const lines: string[] = [];
    const r = await compareDetectors({
      checkpoint: join(dir, "ckpt"),
      detectors: ["strip", "scale-up", "teco", "ibd-psc", "badexpert"],
      params: {
        strip: { n: 2 },
        teco: { corruptions: "gaussian_noise,contrast" },
        badexpert: { unlearnLr: 3e-4, finetuneLr: 0.02 },
      },
      reserved: 128,
      calibration: 100,
      evaluationLimit: 60,
      targetFpr: 0.05,
      report: join(dir, "report"),
      log: (l) => lines.push(l),
    });
    assert.equal(r.attack.name, "badnet");
    assert.deepEqual(
      r.rows.map((row) => row.detector),
      ["strip", "scale-up", "teco", "ibd-psc", "badexpert"],
    );
    assert.equal(r.splits.reserved, 128);
    assert.equal(r.splits.calibrationUsed, 100);
    assert.equal(r.splits.evaluationUsed, 60);
    for (const row of r.rows) {
      // Same evaluation images for all: the clean and poisoned counts agree across detectors.
      assert.equal(row.metrics.cleanCount, 60);
      assert.equal(row.metrics.poisonCount, r.splits.poisonedUsed);
      assert.ok(Number.isFinite(row.calibration.threshold));
      assert.equal(row.metrics.threshold, row.calibration.threshold);
      assert.ok(row.secondsPer1000 > 0);
    }
    assert.equal(r.rows[0]?.params.n, 2);
    // BaDExpert's own rates as given (M' at 0.02 instead of the compact CNN's 0.01).
    assert.deepEqual([r.rows[4]?.fitted.unlearnLr, r.rows[4]?.fitted.finetuneLr], [3e-4, 0.02]);
    const json = JSON.parse(await readFile(join(dir, "report", "compare.json"), "utf8")) as {
      rows: { detector: string; roc: unknown[] }[];
    };
    assert.equal(json.rows.length, 5);
    assert.ok((json.rows[0]?.roc.length ?? 0) >= 2);
    const html = await readFile(join(dir, "report", "compare.html"), "utf8");
    assert.equal((html.match(/<path /g) ?? []).length, 5);
    assert.ok((await readFile(join(dir, "report", "compare.md"), "utf8")).includes("| ibd-psc |"));
    assert.ok(lines.some((l) => l.startsWith("reserved 128, calibration 100, evaluation 60 clean")));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
