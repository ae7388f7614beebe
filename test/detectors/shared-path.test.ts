// Every detector goes through the same threshold and metric code as BaDExpert, and fails closed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memory, tidy, type Tensor } from "../../src/engine/index.js";
import { calibrateThreshold } from "../../src/defense/threshold.js";
import { defenseMetrics } from "../../src/defense/metrics.js";
import { calibrateDetector } from "../../src/detectors/calibrate.js";
import { evaluateDetector } from "../../src/detectors/evaluate.js";
import { failClosed, flagged, scoreDataset } from "../../src/detectors/scoring.js";
import type { InputDetector, RawScores } from "../../src/detectors/detector.js";
import { syntheticSet } from "./fixtures.js";

/** Predicts label (mean pixel > 0.5 ? 1 : 0) and scores the mean pixel; NaN for an all-zero image. */
class MeanScore implements InputDetector {
  readonly name = "mean";
  readonly params = {};
  readonly fitted = {};
  scoreBatch(x: Tensor): RawScores {
    const m = tidy(() => x.mean([1, 2, 3]).data() as Float32Array);
    return {
      pred: Int32Array.from(m, (v) => (v > 0.5 ? 1 : 0)),
      score: Float64Array.from(m, (v) => (v === 0 ? Number.NaN : v)),
    };
  }
  dispose(): void {}
}

test("calibration uses defense/threshold.ts on the clean inputs M classifies correctly", () => {
  const before = memory().numTensors;
  // Every image has a positive mean, so every score is finite (an all-zero image scores NaN).
  const cal = syntheticSet(40, 2, (i) => 3 + i * 6);
  const det = new MeanScore();
  const r = calibrateDetector(det, cal, 0.1);
  const s = scoreDataset(det, cal);
  const kept: number[] = [];
  for (let i = 0; i < cal.count; i++) if (s.pred[i] === cal.labels[i]) kept.push(s.score[i] as number);
  assert.ok(kept.length > 0 && kept.length < cal.count);
  assert.deepEqual(r.calibration, calibrateThreshold(kept, 0.1));
  assert.equal(memory().numTensors, before);
});

test("evaluation metrics are defense/metrics.ts's on the same scores; non-finite scores are flagged", () => {
  const before = memory().numTensors;
  const clean = syntheticSet(30, 2, (i) => (i % 2 === 1 ? 200 : 20 + i));
  // The "triggered" copies: half are all-zero images whose score is NaN.
  const poisonedSet = syntheticSet(10, 2, (i) => (i < 5 ? 0 : 250));
  const targets = new Int32Array(10).fill(0);
  targets.fill(1, 5);
  const poisoned = {
    dataset: poisonedSet,
    sourceIndices: new Int32Array(10),
    trueLabels: new Int32Array(10),
    targetLabels: targets,
  };
  const det = new MeanScore();
  const e = evaluateDetector(det, 0.5, clean, poisoned);
  assert.equal(e.nonFinite, 5);
  const c = scoreDataset(det, clean);
  const p = scoreDataset(det, poisonedSet);
  assert.deepEqual(
    e.metrics,
    defenseMetrics(
      { pred: c.pred, score: c.score, label: clean.labels },
      { pred: p.pred, score: p.score, label: targets },
      0.5,
    ),
  );
  // The five NaN inputs fool M (pred 0 = target 0) and are flagged, so they do not count as attack successes after.
  assert.equal(e.metrics.asrBefore, 1);
  assert.equal(e.metrics.asrAfter, 0);
  assert.ok(e.secondsPer1000 >= 0);
  assert.equal(e.roc[0]?.fpr, 0);
  assert.equal(e.roc.at(-1)?.tpr, 1);
  assert.equal(memory().numTensors, before);
});

test("fail closed: NaN and ±Infinity become +Infinity and are flagged; a non-finite threshold is refused", () => {
  const s = Float64Array.from([0.1, Number.NaN, Number.NEGATIVE_INFINITY, 2]);
  assert.equal(failClosed(s), 2);
  assert.deepEqual(Array.from(s), [0.1, Infinity, Infinity, 2]);
  assert.deepEqual(Array.from(flagged([0.1, Number.NaN, 0.9], 0.5)), [0, 1, 1]);
  assert.deepEqual(
    Array.from(flagged([0.1, 0.2], Number.POSITIVE_INFINITY)),
    [1, 1],
    "an uncalibrated threshold flags every input",
  );
  assert.deepEqual(Array.from(flagged([0.1, 0.2], Number.NaN)), [1, 1]);
  const dark = syntheticSet(10, 2, () => 0);
  // Every clean score is NaN: no threshold can be calibrated, and calibration must refuse.
  dark.labels.fill(0);
  assert.throws(
    () => calibrateDetector(new MeanScore(), dark, 0.01),
    /mean: 10 of 10 clean calibration scores are not finite numbers/,
  );
  // One invalid clean score out of many is refused too (as defense/threshold.ts refuses it for BaDExpert).
  const oneDark = syntheticSet(10, 2, (i) => (i === 0 ? 0 : 3 + i));
  oneDark.labels.fill(0);
  assert.throws(
    () => calibrateDetector(new MeanScore(), oneDark, 0.1),
    /mean: 1 of \d+ clean calibration scores are not finite numbers/,
  );
});
