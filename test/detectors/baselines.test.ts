// Each baseline's score on a hand-made case whose answer is known in advance.
import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, memory, rand, tensor, tidy, inferenceMode } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { Sequential, Flatten, Linear } from "../../src/nn/index.js";
import { StripDetector, STRIP_PARAMS, entropyBits } from "../../src/detectors/strip.js";
import { ScaleUpDetector, SCALE_UP_PARAMS } from "../../src/detectors/scale-up.js";
import { TecoDetector, TECO_PARAMS, firstFlipSeverity, severityDeviation } from "../../src/detectors/teco.js";
import { IbdPscDetector, IBD_PSC_PARAMS } from "../../src/detectors/ibd-psc.js";
import { CORRUPTIONS } from "../../src/detectors/corruptions.js";
import { resolveDetectorParams } from "../../src/detectors/params.js";
import {
  CognitiveDistillationDetector,
  CD_PARAMS,
  totalVariation,
} from "../../src/detectors/cognitive-distillation.js";
import { ConstantLogits, MeanThreshold, context, syntheticSet } from "./fixtures.js";

const params = (
  name: string,
  table: Parameters<typeof resolveDetectorParams>[1],
  o: Record<string, string | number | boolean> = {},
) => resolveDetectorParams(name, table, o);

test("STRIP: a constant prediction has entropy 0 (score 0); uniform logits give −log2(K)", () => {
  const before = memory().numTensors;
  const pool = syntheticSet(20, 10, (i, k) => (i * 13 + k * 7) % 256);
  const x = rand([5, 1, 8, 8]);
  const confident = new StripDetector(
    context(new ConstantLogits([200, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 10),
    pool,
    params("strip", STRIP_PARAMS, { n: 8 }),
  );
  const r = confident.scoreBatch(x);
  assert.deepEqual(Array.from(r.pred), [0, 0, 0, 0, 0]);
  for (const s of r.score) assert.ok(Math.abs(s) < 1e-9, `score ${s} should be 0`);
  confident.dispose();
  const flat = new StripDetector(
    context(new ConstantLogits(new Array(10).fill(0)), 10),
    pool,
    params("strip", STRIP_PARAMS, { n: 3 }),
  );
  for (const s of flat.scoreBatch(x).score)
    assert.ok(Math.abs(s + Math.log2(10)) < 1e-5, `score ${s} should be −log2(10)`);
  flat.dispose();
  x.dispose();
  assert.equal(memory().numTensors, before);
});

test("STRIP: entropyBits of a two-way split is 1 bit", () => {
  const before = memory().numTensors;
  const h = tidy(() => entropyBits(tensor([[0, 0, -1e4]])).data() as Float32Array);
  assert.ok(Math.abs((h[0] as number) - 1) < 1e-6);
  assert.equal(memory().numTensors, before);
});

test("SCALE-UP: a prediction unchanged by scaling has consistency 1; one that flips after k=1 has 1/6", () => {
  const before = memory().numTensors;
  // Binary images are fixed points of clip(k·x, 0, 1), so any model is consistent on them.
  manualSeed(0);
  const m = createModel("compact-cnn", { numClasses: 10, inChannels: 1, imageSize: 8 }).eval();
  const binary = syntheticSet(12, 10, (i, k) => ((i + k) % 3 === 0 ? 255 : 0));
  const dataFree = new ScaleUpDetector(
    context(m, 10),
    binary,
    params("scale-up", SCALE_UP_PARAMS, { dataLimited: false }),
  );
  const x = tidy(() => rand([6, 1, 8, 8]).gt(0.5).to({ dtype: "float32" }));
  for (const s of dataFree.scoreBatch(x).score) assert.equal(s, 1);
  // Data-limited: minus the clean mean SPC of the predicted class, also 1 here, so 0.
  const limited = new ScaleUpDetector(context(m, 10), binary, params("scale-up", SCALE_UP_PARAMS));
  for (const s of limited.scoreBatch(x).score) assert.equal(s, 0);
  x.dispose();
  m.dispose();
  // Mean pixel 0.2: class 1 at k = 1, class 0 (mean > 0.5) for k = 3..11 → SPC 1/6.
  const grey = tidy(() => rand([4, 1, 8, 8]).mul(0).add(0.2));
  const thr = new ScaleUpDetector(
    context(new MeanThreshold(), 2),
    binary,
    params("scale-up", SCALE_UP_PARAMS, { dataLimited: false }),
  );
  const r = thr.scoreBatch(grey);
  assert.deepEqual(Array.from(r.pred), [1, 1, 1, 1]);
  for (const s of r.score) assert.ok(Math.abs(s - 1 / 6) < 1e-12);
  grey.dispose();
  assert.equal(memory().numTensors, before);
});

test("TeCo: flips at the same severity everywhere give deviation 0; never flipping counts as 6", () => {
  const orig = Int32Array.from([3, 3]);
  const flipAt3 = [orig, orig, Int32Array.from([1, 3]), Int32Array.from([1, 1]), orig];
  const same = firstFlipSeverity(orig, flipAt3);
  assert.deepEqual(Array.from(same), [3, 4]);
  assert.deepEqual(Array.from(severityDeviation([same, same, same])), [0, 0]);
  assert.deepEqual(Array.from(firstFlipSeverity(orig, [orig, orig, orig, orig, orig])), [6, 6]);
  // Severities 1 and 6 across two corruption types: population std 2.5.
  assert.deepEqual(Array.from(severityDeviation([Int32Array.from([1]), Int32Array.from([6])])), [2.5]);
});

test("TeCo: a model no corruption can move scores 0 on every input; corruptions keep shape and range", () => {
  const before = memory().numTensors;
  manualSeed(1);
  const det = new TecoDetector(context(new ConstantLogits([5, 0, 0]), 3), params("teco", TECO_PARAMS));
  const x = rand([3, 1, 8, 8]);
  const r = det.scoreBatch(x);
  assert.deepEqual(Array.from(r.score), [0, 0, 0]);
  for (const [name, c] of Object.entries(CORRUPTIONS)) {
    for (const s of [1, 5]) {
      const [lo, hi, shape] = tidy(() => {
        const y = inferenceMode(() => c(x, s));
        return [y.min().item(), y.max().item(), y.shape] as const;
      });
      assert.deepEqual(shape, [3, 1, 8, 8], name);
      assert.ok(lo >= 0 && hi <= 1, `${name} severity ${s}: range [${lo}, ${hi}]`);
    }
  }
  assert.throws(() => CORRUPTIONS.contrast?.(x, 6), /severity must be an integer in 1\.\.5, got 6/);
  x.dispose();
  assert.equal(memory().numTensors, before);
});

test("IBD-PSC: with ω = 1 the scaled models are M, so PSC is M's confidence in its own label", () => {
  const before = memory().numTensors;
  manualSeed(3);
  const m = createModel("compact-cnn", { numClasses: 10, inChannels: 1, imageSize: 8 }).eval();
  const reserved = syntheticSet(20, 10, (i, k) => (i * 31 + k * 17) % 256);
  const det = new IbdPscDetector(context(m, 10), reserved, params("ibd-psc", IBD_PSC_PARAMS, { scale: 1 }));
  assert.equal(det.fitted.batchNormLayers, 2);
  // Two BN layers: the authors try k = 1 only, and 1 is also the fallback when xi is not reached.
  assert.equal(det.fitted.startDepth, 1);
  const x = rand([4, 1, 8, 8]);
  const r = det.scoreBatch(x);
  const maxProb = tidy(() => m.forward(x).softmax(1).max(1).data() as Float32Array);
  r.score.forEach((s, i) => assert.ok(Math.abs(s - (maxProb[i] as number)) < 1e-6, `${s} vs ${maxProb[i]}`));
  det.dispose();
  x.dispose();
  m.dispose();
  const noBn = new Sequential(new Flatten(), new Linear(64, 3));
  assert.throws(
    () => new IbdPscDetector(context(noBn, 3), reserved, params("ibd-psc", IBD_PSC_PARAMS)),
    /no BatchNorm2d layer/,
  );
  noBn.dispose();
  assert.equal(memory().numTensors, before);
});

test("CD: a model that ignores its input needs no mask (score ≈ 0); one that reads every pixel keeps a large mask", () => {
  const before = memory().numTensors;
  manualSeed(4);
  const x = tidy(() => rand([3, 1, 8, 8]).mul(0.3).add(0.1));
  const p = params("cd", CD_PARAMS, { steps: 60 });
  const ignoring = new CognitiveDistillationDetector(context(new ConstantLogits([3, 0]), 2), p).scoreBatch(x);
  for (const s of ignoring.score) assert.ok(s > -0.05 && s <= 0, `constant model: score ${s}`);
  const reading = new CognitiveDistillationDetector(context(new MeanThreshold(), 2), p).scoreBatch(x);
  for (const s of reading.score) assert.ok(s < -0.3, `mean-reading model: score ${s}`);
  const tv = tidy(() =>
    totalVariation(
      tensor([
        [
          [
            [0, 1],
            [0, 1],
          ],
        ],
      ]),
    ).item(),
  );
  assert.equal(tv, 0.5); // two horizontal jumps of 1, squared, over c·h·w = 4
  x.dispose();
  assert.equal(memory().numTensors, before);
});
