// Score rules, threshold selection and metrics against hand-computed values.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scoreOf, scoreAll, assertScoreRule, SCORE_CEILING, SCORE_RULES } from "../../src/defense/scores.js";
import { calibrateThreshold, ceilingWarning } from "../../src/defense/threshold.js";
import { auroc, rocCurve, defenseMetrics } from "../../src/defense/metrics.js";

const near = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test("triangle (default ensemble) rule by hand", () => {
  // a = 0.1, b = 0.9: min(0.2/0.9, 0.1/0.4) = 0.2222…
  near(scoreOf("triangle", 0.1, 0.9), -(0.2 / 0.9));
  // a > 0.5: the second term's denominator is clamped to 1e-8, so the first term decides.
  near(scoreOf("triangle", 0.6, 0.95), -(1.2 / 0.95));
  near(scoreOf("triangle", 0.9, 0.1), -18);
  // b = 0: the first term is clamped (2a / 1e-8), the second decides: 1 / 0.3.
  near(scoreOf("triangle", 0.2, 0), -(1 / 0.3));
  // A backdoor-like input (B confident, M' not) scores higher than a clean-like one.
  assert.ok(scoreOf("triangle", 0.05, 0.99) > scoreOf("triangle", 0.95, 0.2));
});

test("variants, single, rectangle and angle by hand", () => {
  near(scoreOf("triangle-vgg", 0.1, 0.9), -(0.25 / 0.9));
  near(scoreOf("triangle-mobilenet", 0.1, 0.9), -(0.5 / 0.9));
  near(scoreOf("single", 0.3, 0.6), 0.6);
  near(scoreOf("rectangle", 0.3, 0.6), -0.3);
  near(scoreOf("rectangle", 0.5, 0.9), -0.1);
  near(scoreOf("angle", 0.3, 0.6), -0.5);
  assert.deepEqual(Array.from(scoreAll("single", [0.1, 0.2], [0.75, 0.5], [0.25, 0.5])), [0.75, 0.5]);
  // Where float32 b is 1, `single` still ranks by c: 1 − c in float64.
  const [s1, s2] = scoreAll("single", [0, 0], [1, 1], [1e-9, 1e-12]);
  assert.ok((s1 as number) < (s2 as number) && (s2 as number) < 1, `${s1} < ${s2} < 1`);
  // c (1 − b summed over the other classes) is what the rules read, not 1 − b recomputed.
  assert.deepEqual(Array.from(scoreAll("rectangle", [0.1, 0.2], [1, 1], [1e-9, 0.5])), [-1e-9, -0.2]);
  assert.throws(() => assertScoreRule("circle"), /unknown score rule 'circle'; valid: triangle/);
  assert.equal(SCORE_RULES.length, 6);
});

test("threshold = sorted clean scores at floor((1 - FPR) n); flag iff strictly above", () => {
  const scores = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 … 1, unsorted order
  const c = calibrateThreshold(scores, 0.05);
  assert.equal(c.threshold, 96);
  assert.equal(c.achievedFpr, 0.04);
  assert.equal(c.count, 100);
  near(c.scoreMean, 50.5);
  const tied = calibrateThreshold([1, 1, 1, 1, 2], 0.2); // index 4 → 2; nothing is above it
  assert.equal(tied.threshold, 2);
  assert.equal(tied.achievedFpr, 0);
  assert.equal(calibrateThreshold([3, 1, 2], 0.5).threshold, 2); // index floor(1.5) = 1
  assert.throws(() => calibrateThreshold([], 0.01), /no clean calibration scores/);
  assert.throws(() => calibrateThreshold([1], 0), /targetFpr must be in \(0, 1\), got 0/);
});

test("a threshold that lands on the rule's ceiling is lowered, so the ceiling's inputs are flagged (fail closed)", () => {
  // 1000 clean scores: 996 spread below 0, four exactly at the triangle's ceiling 0. At FPR 0.1%
  // the index 999 lands on 0, where `score > threshold` could never fire.
  const clean = [...Array.from({ length: 996 }, (_, i) => -1 - i / 100), 0, -0, 0, 0];
  assert.equal(calibrateThreshold(clean, 0.001).threshold, 0, "without the ceiling: the authors' quantile, on 0");
  const c = calibrateThreshold(clean, 0.001, SCORE_CEILING.triangle);
  assert.equal(c.threshold, -1, "the highest clean score below the ceiling");
  assert.equal(c.atCeiling, 4);
  assert.equal(c.achievedFpr, 0.004, "the four ceiling scores are above it: the FPR paid");
  assert.ok(
    0 > c.threshold && scoreOf("triangle", 0, 1) > c.threshold,
    "a = 0, b = 1 (B certain, M' not) is now flagged",
  );
  assert.match(
    ceilingWarning(c) ?? "",
    /^4 of 1000 clean calibration scores sit at the score rule's ceiling.*FPR achieved is 0\.40%$/,
  );
  // Where the quantile is below the ceiling nothing changes and no field is added.
  const fine = calibrateThreshold(clean, 0.01, SCORE_CEILING.triangle);
  near(fine.threshold, -1.05);
  assert.equal(fine.atCeiling, undefined);
  assert.equal(ceilingWarning(fine), null);
  // `single` (b) tops out at 1.
  assert.equal(calibrateThreshold([0.2, 0.5, 1, 1], 0.25, SCORE_CEILING.single).threshold, 0.5);
  // Nothing below the ceiling: no threshold can separate, so calibration refuses.
  assert.throws(
    () => calibrateThreshold([0, 0, 0], 0.1, 0),
    /all 3 clean calibration scores sit at the score rule's ceiling \(0\)/,
  );
});

test("AUROC against hand-computed and tie cases", () => {
  near(auroc([0.9, 0.8], [0.1, 0.85]), 0.75);
  near(auroc([0.5], [0.5]), 0.5);
  near(auroc([1, 1], [1, 0]), 0.75);
  near(auroc([3, 4, 5], [0, 1, 2]), 1);
  near(auroc([0, 1], [2, 3]), 0);
  assert.ok(Number.isNaN(auroc([], [1])));
});

test("ROC curve runs from (0,0) to (1,1) and its area matches AUROC", () => {
  const pos = [0.9, 0.8, 0.8, 0.3];
  const neg = [0.1, 0.8, 0.4, 0.2, 0.05];
  const pts = rocCurve(pos, neg);
  assert.deepEqual([pts[0]?.fpr, pts[0]?.tpr], [0, 0]);
  assert.deepEqual([pts.at(-1)?.fpr, pts.at(-1)?.tpr], [1, 1]);
  let area = 0;
  for (let i = 1; i < pts.length; i++) {
    const p = pts[i - 1] as { fpr: number; tpr: number };
    const q = pts[i] as { fpr: number; tpr: number };
    area += ((q.fpr - p.fpr) * (q.tpr + p.tpr)) / 2;
  }
  near(area, auroc(pos, neg), 1e-12);
});

test("defense metrics follow the authors' conventions", () => {
  // Clean: 4 inputs, M right on 3 (ids 0,1,2); id 1 is flagged (score 5 > 2).
  const clean = { pred: [0, 1, 2, 0], label: [0, 1, 2, 3], score: [1, 5, 0, 9] };
  // Poisoned: 4 inputs, target 0; M fooled on 3 (ids 0,1,2); ids 0 and 1 flagged.
  const poisoned = { pred: [0, 0, 0, 2], label: [0, 0, 0, 0], score: [7, 3, 1, 8] };
  const m = defenseMetrics(clean, poisoned, 2);
  near(m.cleanAccuracyBefore, 3 / 4);
  near(m.cleanAccuracyAfter, 2 / 4);
  near(m.asrBefore, 3 / 4);
  near(m.asrAfter, 1 / 4);
  near(m.tpr, 2 / 3);
  near(m.fpr, 1 / 3);
  // AUROC over negatives {1, 5, 0} and positives {7, 3, 1}: 9 pairs, wins 3 + 1.5 + 1 + 0.5 … by hand:
  // 7 beats all 3; 3 beats 1 and 0 (loses to 5); 1 ties 1 (0.5) and beats 0 → (3 + 2 + 1.5) / 9.
  near(m.auroc, 6.5 / 9);
});
