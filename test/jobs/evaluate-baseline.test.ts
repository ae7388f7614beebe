// evaluate-defense on baseline detector bundles (the service tests' small real fixture: a compact
// CNN trained on 2,000 Fashion-MNIST images, Frequency and STRIP fitted with `defend --detector`):
// the scores are the library's on the bundle's own evaluation split, the metrics follow from them
// and the threshold by the shared rules, --fpr re-calibrates, the report leaves out the (b, a)
// plane and "What the detector saw" with a sentence each, and BaDExpert-only options are refused.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory, tidy } from "../../src/engine/index.js";
import { imagesToTensor } from "../../src/data/batch.js";
import { loadDataset } from "../../src/data/registry.js";
import { limited } from "../../src/jobs/compare.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { openDetector } from "../../src/detectors/open.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { OptionError } from "../../src/jobs/errors.js";
import { runCli } from "../cli/fixtures.js";
import { baselineFixture, type BaselineFixture } from "../serve/baseline-fixture.js";
import { fixture } from "../helpers/pytorch-fixtures.js";

let fx: BaselineFixture;

before(async () => {
  fx = await baselineFixture();
});

/** Share of `xs` above `t` (the detector flags strictly above). */
const above = (xs: number[], t: number): number => xs.filter((s) => s > t).length / xs.length;

test("Frequency bundle: library scores on the recorded evaluation split, metrics from them, a report without B's sections", async () => {
  const start = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-eval-baseline-"));
  try {
    const manifest = JSON.parse(await readFile(join(fx.frequency, "detector.json"), "utf8")) as {
      splits: { seed: number; reserved: number; calibration: number };
      calibration: { threshold: number };
    };
    assert.deepEqual(
      manifest.splits,
      { seed: 0, reserved: 128, calibration: 200 },
      "defend --detector records its splits",
    );
    const r = await evaluateBundle({
      bundle: fx.frequency,
      attack: "badnet",
      evaluationLimit: 120,
      report: join(dir, "report"),
    });
    assert.deepEqual(
      [r.detector, r.rule, r.threshold, r.targetFpr, r.dataset, r.model],
      ["frequency", null, manifest.calibration.threshold, 0.05, "fashion-mnist", "compact-cnn"],
    );
    assert.equal(r.metrics.cleanCount, 120);
    assert.equal(r.clean.a, undefined, "a baseline has no M' confidences");

    // The clean scores are the library's on the 120 images the limit samples (seeded by the split
    // seed) from the bundle's evaluation split.
    const testSet = await loadDataset("fashion-mnist", { split: "test" });
    const evaluation = limited(defenseSplits(testSet.count, manifest.splits).evaluation, 120, {
      seed: manifest.splits.seed,
    });
    const per = 28 * 28;
    const bytes = new Uint8Array(120 * per);
    evaluation.forEach((i, k) => bytes.set(testSet.images.subarray(i * per, (i + 1) * per), k * per));
    const loaded = await openDetector(fx.frequency, { onWarning: () => undefined });
    const lib = tidy(() => loaded.scorer.scoreBatch(imagesToTensor(bytes, 120, 28, 28, 1)));
    loaded.dispose();
    for (let k = 0; k < 120; k++) {
      assert.ok(
        Math.abs((r.clean.score[k] as number) - (lib.score[k] as number)) <= 1e-5,
        `clean input ${k}: ${r.clean.score[k]} vs library ${lib.score[k]}`,
      );
      assert.equal(r.clean.pred[k], lib.pred[k]);
      assert.equal(r.clean.label[k], testSet.labels[evaluation[k] as number]);
    }

    // The metrics follow from those scores with the shared conventions (negatives: clean inputs M gets right; positives: triggered inputs that fool M).
    const neg: number[] = [];
    const pos: number[] = [];
    for (let i = 0; i < r.clean.pred.length; i++)
      if (r.clean.pred[i] === r.clean.label[i]) neg.push(r.clean.score[i] as number);
    for (let i = 0; i < r.poisoned.pred.length; i++)
      if (r.poisoned.pred[i] === r.poisoned.label[i]) pos.push(r.poisoned.score[i] as number);
    assert.equal(r.metrics.cleanAccuracyBefore, neg.length / 120);
    assert.ok(r.metrics.cleanAccuracyBefore > 0.5, `M was trained: CA ${r.metrics.cleanAccuracyBefore}`);
    assert.equal(r.metrics.fpr, above(neg, r.threshold));
    assert.equal(r.metrics.cleanAccuracyAfter, neg.filter((s) => !(s > r.threshold)).length / 120);
    assert.equal(r.metrics.asrBefore, pos.length / r.metrics.poisonCount);
    if (pos.length > 0) assert.equal(r.metrics.tpr, above(pos, r.threshold));
    const pairs = pos.flatMap((p) => neg.map((n): number => (p > n ? 1 : p === n ? 0.5 : 0)));
    if (pairs.length > 0)
      assert.ok(
        Math.abs(r.metrics.auroc - pairs.reduce((a, b) => a + b, 0) / pairs.length) < 1e-9,
        "AUROC = P(positive scores above negative)",
      );

    const files = await readdir(join(dir, "report"));
    assert.ok(files.includes("roc.svg") && files.includes("scores.svg"));
    assert.equal(files.includes("plane.svg"), false, "no (b, a) plane for a baseline");
    const html = await readFile(join(dir, "report", "report.html"), "utf8");
    assert.match(html, /detector <b>frequency<\/b>/);
    assert.match(
      html,
      /No decision plane: it places each input at \(b, a\).*the baseline detector frequency does not have/,
    );
    assert.match(html, /No &quot;What the detector saw&quot; section: .*the baseline detector frequency has no B/);
    const md = await readFile(join(dir, "report", "report.md"), "utf8");
    assert.doesNotMatch(md, /plane\.svg/);
    assert.match(md, /No "What the detector saw" section/);
    const metrics = JSON.parse(await readFile(join(dir, "report", "metrics.json"), "utf8")) as Record<string, unknown>;
    assert.deepEqual(
      [metrics.detector, metrics.rule, metrics.auroc, metrics.forensics],
      ["frequency", null, r.metrics.auroc, null],
    );

    // --fpr re-calibrates on the recorded calibration split with the shared code: a higher target FPR gives a lower threshold.
    const loose = await evaluateBundle({ bundle: fx.frequency, attack: "badnet", evaluationLimit: 40, targetFpr: 0.2 });
    assert.equal(loose.targetFpr, 0.2);
    assert.ok(loose.threshold < r.threshold, `threshold at 20% FPR ${loose.threshold} < at 5% ${r.threshold}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, start);
});

test("STRIP bundle through the CLI; --rule and --verify-key are refused for baselines", async () => {
  const start = memory().numTensors;
  const c = await runCli([
    "evaluate-defense",
    "--bundle",
    fx.strip,
    "--attack",
    "badnet",
    "--evaluation-limit",
    "30",
    "--json",
  ]);
  assert.equal(c.code, 0, c.err);
  assert.match(c.out, /^strip vs badnet on fashion-mnist: 30 clean and \d+ poisoned evaluation inputs/m);
  const j = JSON.parse(c.out.trim().split("\n").at(-1) ?? "") as {
    detector: string;
    rule: unknown;
    cleanCount: number;
    threshold: number;
    auroc: number;
  };
  assert.deepEqual([j.detector, j.rule, j.cleanCount], ["strip", null, 30]);
  assert.ok(j.auroc >= 0 && j.auroc <= 1);
  await assert.rejects(
    evaluateBundle({ bundle: fx.strip, parts: true }),
    (e: unknown) => e instanceof OptionError && e.option === "parts",
  );
  await assert.rejects(
    evaluateBundle({ bundle: fx.strip, rule: "triangle" }),
    (e: unknown) =>
      e instanceof OptionError && /rule: score rules are BaDExpert's; .* is a strip detector bundle/.test(e.message),
  );
  await assert.rejects(
    evaluateBundle({ bundle: fx.strip, verifyKey: "/nonexistent.pub" }),
    /verifyKey: .* is a strip detector bundle, which is not signed/,
  );
  assert.equal(memory().numTensors, start);
});

test("a baseline bundle is evaluated against a trigger image like BaDExpert's (the one evaluate-defense path)", async () => {
  const start = memory().numTensors;
  const r = await evaluateBundle({
    bundle: fx.frequency,
    trigger: { image: fixture("smiley-trigger.png") },
    target: 0,
    evaluationLimit: 40,
  });
  assert.deepEqual([r.detector, r.rule, r.asrMeaning, r.attack.name], ["frequency", null, "target", "trigger-image"]);
  // The target class's own images are left out of the triggered side; every other one is stamped.
  assert.equal(r.metrics.cleanCount, 40);
  assert.equal(r.poisoned.score.length + r.leftOut, 40);
  assert.ok(r.leftOut > 0 && r.leftOut < 40, `left out ${r.leftOut}`);
  assert.ok(r.metrics.auroc >= 0 && r.metrics.auroc <= 1);
  assert.equal(memory().numTensors, start);
});
