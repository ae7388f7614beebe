// SentiNet: its boundary geometry on known answers, the salient-region masks, and the detector on a
// compact CNN (whose Grad-CAM layer it uses) including a model no paste can move.
import { test } from "node:test";
import assert from "node:assert/strict";
import { manualSeed, memory, noGrad, rand, tidy } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { CompactCNN } from "../../src/models/compact-cnn.js";
import { Linear } from "../../src/nn/index.js";
import {
  boundaryPoints,
  fitQuadratic,
  signedDistance,
  topShareMasks,
  SentiNetDetector,
  SENTINET_PARAMS,
} from "../../src/detectors/sentinet.js";
import { resolveDetectorParams } from "../../src/detectors/params.js";
import { ConstantLogits, context, syntheticSet } from "./fixtures.js";

const params = (o: Record<string, string | number> = {}) => resolveDetectorParams("sentinet", SENTINET_PARAMS, o);

test("SentiNet geometry: the quadratic fit, the per-bin maxima and the signed distance on known answers", () => {
  const q = fitQuadratic([0, 0.5, 1, 2], [1, 1 - 0.5 + 0.75, 1 - 1 + 3, 1 - 2 + 12]);
  [1, -1, 3].forEach((c, i) => assert.ok(Math.abs((q[i] as number) - c) < 1e-6, `coefficient ${i}: ${q[i]}`));
  // Bins of 0.1 from 0.2: [0.2, 0.3) holds 0.21 and 0.25 (max fooled 0.4), [0.5, 0.6) holds 0.55.
  const b = boundaryPoints([0.21, 0.25, 0.55], [0.1, 0.4, 0.3], 0.1);
  assert.deepEqual(b.ys, [0.4, 0.3]);
  assert.ok(Math.abs((b.xs[0] as number) - 0.26) < 1e-12 && Math.abs((b.xs[1] as number) - 0.56) < 1e-12, `${b.xs}`);
  // The line y = 0: distance is |y| with its sign; the parabola y = x² from (0, 1): √(3/4) at x = ±√(1/2).
  assert.ok(Math.abs(signedDistance([0, 0, 0], 0.3, 0.5) - 0.5) < 1e-9);
  assert.ok(Math.abs(signedDistance([0, 0, 0], 0.3, -0.2) + 0.2) < 1e-9);
  assert.ok(Math.abs(signedDistance([0, 0, 1], 0, 1) - Math.sqrt(0.75)) < 1e-7);
  assert.ok(Math.abs(signedDistance([0, 0, 1], 2, 4)) < 1e-9);
  // Top 25% of 64 values 0..63: strictly above the 16th largest (48) → the 15 values 49..63.
  const m = topShareMasks(
    Float32Array.from({ length: 64 }, (_, k) => k),
    1,
    64,
    0.25,
  );
  assert.equal(
    m.reduce((a, v) => a + v, 0),
    15,
  );
  assert.equal(m[49], 1);
  assert.equal(m[48], 0);
});

test("SentiNet: a compact CNN no paste can move has fooled rate 1 and sits on its own boundary (score ≈ 0)", () => {
  const before = memory().numTensors;
  manualSeed(2);
  const model = createModel("compact-cnn", { numClasses: 4, inChannels: 1, imageSize: 8 }).eval();
  assert.ok(model instanceof CompactCNN);
  // The last layer ignores its input: every image is class 2 with the same confidence.
  const last = model.classifier.at(4);
  assert.ok(last instanceof Linear);
  noGrad(() =>
    tidy(() => {
      last.weight.zero_();
      last.bias?.zero_();
      last.bias?.narrow(0, 2, 1).fill_(3);
    }),
  );
  const reserved = syntheticSet(40, 4, (i, k) => (i * 37 + k * 13) % 256);
  const det = new SentiNetDetector(context(model, 4), reserved, params({ n: 10, boundaryImages: 20 }));
  const x = rand([5, 1, 8, 8]);
  const r = det.scoreBatch(x);
  assert.deepEqual(Array.from(r.pred), [2, 2, 2, 2, 2]);
  // The boundary passes through (bin centre, 1), at most half a bin (0.01) from every point: score ≈ 0.
  for (const s of r.score) assert.ok(Math.abs(s) < 0.02, `score ${s}`);
  assert.equal(det.fitted.boundaryPoints, 1);
  det.dispose();
  // A random compact CNN: finite scores, and the same seed gives the same ones.
  manualSeed(3);
  const m2 = createModel("compact-cnn", { numClasses: 4, inChannels: 1, imageSize: 8 }).eval();
  const a = new SentiNetDetector(context(m2, 4), reserved, params({ n: 8, boundaryImages: 24 }));
  const b = new SentiNetDetector(context(m2, 4), reserved, params({ n: 8, boundaryImages: 24 }));
  const sa = a.scoreBatch(x).score;
  assert.ok(sa.every(Number.isFinite));
  assert.deepEqual(Array.from(b.scoreBatch(x).score), Array.from(sa));
  a.dispose();
  b.dispose();
  m2.dispose();
  model.dispose();
  // Without a Grad-CAM layer: one error naming the detector and the architecture.
  assert.throws(
    () => new SentiNetDetector(context(new ConstantLogits([1, 0]), 2), reserved, params({ n: 4, boundaryImages: 4 })),
    /sentinet: Grad-CAM needs the model's convolution blocks, which this build exposes for the compact CNN only \(the model is a ConstantLogits\)/,
  );
  assert.throws(
    () =>
      new SentiNetDetector(
        context(m2, 4),
        syntheticSet(5, 4, () => 0),
        params({ n: 4 }),
      ),
    /the reserved clean set has 5 images; it needs n \(4\) for pasting plus at least 3/,
  );
  x.dispose();
  assert.equal(memory().numTensors, before);
});
