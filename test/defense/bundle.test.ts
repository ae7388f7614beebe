// Fitting a small detector on real Fashion-MNIST images, bundle round trip, and bad inputs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, readFile, writeFile, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, zeros, tidy } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { fitBadExpert, shiftedLabels } from "../../src/defense/fit.js";
import { saveBundle, loadBundle } from "../../src/defense/bundle.js";
import { defenseSplits } from "../../src/defense/splits.js";
import type { BadExpertDetector } from "../../src/defense/detector.js";
import { QUICK_FIT } from "../helpers/quick-fit.js";

const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };

async function smallDetector(): Promise<{ det: BadExpertDetector; evalSet: Awaited<ReturnType<typeof loadDataset>> }> {
  const test = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(test.count, { seed: 1, reserved: 256, calibration: 200 });
  manualSeed(2);
  const model = createModel("compact-cnn", spec);
  const det = await fitBadExpert(
    model,
    { spec, preprocessing, classNames: test.classNames },
    subset(test, s.reserved),
    subset(test, s.calibration),
    QUICK_FIT,
  );
  model.dispose();
  return { det, evalSet: subset(test, s.evaluation.subarray(0, 300)) };
}

test("defense splits are disjoint and cover the test set", () => {
  const s = defenseSplits(1000, { seed: 3, reserved: 100, calibration: 200 });
  const all = new Set([...s.reserved, ...s.calibration, ...s.evaluation]);
  assert.equal(all.size, 1000);
  assert.equal(s.evaluation.length, 700);
  assert.throws(
    () => defenseSplits(100, { seed: 0, reserved: 60, calibration: 40 }),
    /leave no evaluation images out of 100/,
  );
});

test("shifted labels are (y + 1) mod C", () => {
  const ds = { labels: Int32Array.from([0, 4, 9]), classNames: Array.from({ length: 10 }, String) };
  assert.deepEqual(Array.from(shiftedLabels(ds as Parameters<typeof shiftedLabels>[0])), [1, 5, 0]);
});

test("a fitted detector round-trips through a bundle with identical scores; bad inputs are refused clearly", async () => {
  const before = memory().numTensors;
  const { det, evalSet } = await smallDetector();
  const dir = await mkdtemp(join(tmpdir(), "bx-bundle-"));
  try {
    const a = det.scoreDataset(evalSet);
    // The calibrated threshold flags about the target share of clean calibration inputs.
    assert.ok(det.info.calibration.achievedFpr <= 0.05 + 1e-9, `achieved FPR ${det.info.calibration.achievedFpr}`);
    assert.ok(Number.isFinite(det.threshold));
    for (let i = 0; i < a.score.length; i++) assert.equal(a.flagged[i], (a.score[i] as number) > det.threshold ? 1 : 0);
    await saveBundle(dir, det);
    const loaded = await loadBundle(dir);
    const b = loaded.scoreDataset(evalSet);
    assert.deepEqual(Array.from(b.score), Array.from(a.score));
    assert.deepEqual(Array.from(b.pred), Array.from(a.pred));
    assert.equal(loaded.threshold, det.threshold);
    assert.equal(loaded.rule, "triangle");

    assert.throws(
      () => tidy(() => loaded.scoreBatch(zeros([2, 3, 28, 28]))),
      /images are 28x28x3 but the detector's model takes 28x28x1/,
    );
    assert.throws(
      () => tidy(() => loaded.scoreBatch(zeros([2, 1, 32, 32]))),
      /images are 32x32x1 but the detector's model takes 28x28x1/,
    );
    loaded.dispose();

    const manifest = JSON.parse(await readFile(join(dir, "detector.json"), "utf8")) as {
      spec: { name: string; imageSize: number; inChannels: number };
    };
    await writeFile(
      join(dir, "detector.json"),
      JSON.stringify({ ...manifest, spec: { ...manifest.spec, name: "resnet18", imageSize: 32 } }),
    );
    await assert.rejects(
      loadBundle(dir),
      /detector\.json: "preprocessing\.imageSize" must be \[32, 32\] \(the model's imageSize\); found \[28,28\]/,
    );
    await writeFile(join(dir, "detector.json"), JSON.stringify(manifest));
    await unlink(join(dir, "expert.safetensors"));
    await assert.rejects(loadBundle(dir), /expert\.safetensors \(B\): .*cannot read \(ENOENT: no such file\)/);
    await assert.rejects(loadBundle(join(dir, "nope")), /detector\.json not found/);
  } finally {
    det.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
