// Per-input seeds (what the service passes): STRIP's and SentiNet's score of an image is the same
// alone, inside a batch in any order, and after any number of earlier calls; without seeds the
// draws follow the call order (so a second call differs). Seeds come from the image's bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { cat, manualSeed, memory, rand, tidy, type Tensor } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { fitDetector } from "../../src/detectors/registry.js";
import { inputSeeds } from "../../src/detectors/input-seeds.js";
import type { InputDetector } from "../../src/detectors/detector.js";
import { context, syntheticSet } from "./fixtures.js";

const TOL = 1e-5;

/** Scores of x[i] alone, and of x in reverse order, each with its inputs' own seeds. */
function aloneAndReversed(det: InputDetector, x: Tensor): { batch: number[]; alone: number[]; reversed: number[] } {
  return tidy(() => {
    const n = x.dim(0);
    const batch = Array.from(det.scoreBatch(x, { seeds: inputSeeds(x) }).score);
    const alone = Array.from({ length: n }, (_, i) => {
      const xi = x.narrow(0, i, 1);
      return det.scoreBatch(xi, { seeds: inputSeeds(xi) }).score[0] as number;
    });
    const rev = cat(
      Array.from({ length: n }, (_, i) => x.narrow(0, n - 1 - i, 1)),
      0,
    );
    const reversed = Array.from(det.scoreBatch(rev, { seeds: inputSeeds(rev) }).score).reverse();
    return { batch, alone, reversed };
  });
}

test("STRIP, SentiNet, CD and TeCo with per-input seeds: an image's score does not depend on its batch or on earlier calls", async () => {
  const before = memory().numTensors;
  manualSeed(4);
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 8 };
  const model = createModel("compact-cnn", spec).eval();
  const ctx = { ...context(model, 10), spec };
  const reserved = syntheticSet(40, 10, (i, k) => (i * 37 + k * 13) % 256);
  const x = rand([5, 1, 8, 8]);
  try {
    for (const [name, params] of [
      ["strip", { n: 6, poolSize: 20 }],
      ["sentinet", { n: 6, boundaryImages: 12 }],
      ["cd", { steps: 4 }],
      ["teco", { corruptions: "gaussian_noise,motion_blur,glass_blur,elastic_transform,snow,impulse_noise" }],
    ] as const) {
      const det = await fitDetector(name, ctx, { reserved, calibration: reserved }, params);
      try {
        const { batch, alone, reversed } = aloneAndReversed(det, x);
        for (let i = 0; i < 5; i++) {
          assert.ok(
            Math.abs((alone[i] as number) - (batch[i] as number)) <= TOL,
            `${name} image ${i}: alone ${alone[i]} vs in its batch ${batch[i]}`,
          );
          assert.ok(
            Math.abs((reversed[i] as number) - (batch[i] as number)) <= TOL,
            `${name} image ${i}: reversed batch ${reversed[i]} vs ${batch[i]}`,
          );
        }
        // Without seeds, each call draws a new stream: two calls on the same batch differ somewhere (so the seeds above matter).
        const [first, second] = tidy(() => [Array.from(det.scoreBatch(x).score), Array.from(det.scoreBatch(x).score)]);
        assert.ok(
          first?.some((s, i) => Math.abs(s - (second?.[i] as number)) > 1e-6),
          `${name}: call-order draws differ between calls`,
        );
        assert.throws(
          () => det.scoreBatch(x, { seeds: [1, 2] }),
          new RegExp(`${name}\\.scoreBatch: seeds must have one entry per input \\(5\\), got 2`),
        );
        assert.throws(() => det.scoreBatch(x, { seeds: [1, 2, 3, 4, 0.5] }), /seeds\[4\] must be an integer, got 0\.5/);
      } finally {
        det.dispose();
      }
    }
    // Seeds are a function of the bytes: equal images, equal seeds; different images, different seeds.
    const seeds = tidy(() => Array.from(inputSeeds(cat([x, x.narrow(0, 2, 1)], 0))));
    assert.equal(seeds[5], seeds[2]);
    assert.equal(new Set(seeds.slice(0, 5)).size, 5);
    assert.throws(
      () => tidy(() => inputSeeds(x.to({ dtype: "float64" }))),
      /inputSeeds: x must be float32 images, got dtype float64/,
    );
    // A key changes every seed (the draws cannot be computed without it) and is itself deterministic.
    const keyA = new Uint8Array(32).fill(7);
    const keyB = Uint8Array.from(keyA, (v, i) => (i === 31 ? v + 1 : v));
    const [plain, a1, a2, b] = tidy(() =>
      [inputSeeds(x), inputSeeds(x, keyA), inputSeeds(x, keyA), inputSeeds(x, keyB)].map((s) => Array.from(s)),
    );
    assert.deepEqual(a1, a2);
    for (let i = 0; i < 5; i++) {
      assert.notEqual(a1?.[i], plain?.[i], `image ${i}: keyed seed equals the unkeyed one`);
      assert.notEqual(a1?.[i], b?.[i], `image ${i}: two keys give the same seed`);
    }
  } finally {
    x.dispose();
    model.dispose();
  }
  assert.equal(memory().numTensors, before);
});
