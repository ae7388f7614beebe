// The Frequency detector: its DCT against known answers, the synthetic triggers, determinism
// from the seed, and a hand-made case it must learn (flat images vs the same with a block).
import { test } from "node:test";
import assert from "node:assert/strict";
import { getNumThreads, memory, tensor, tidy, rand, manualSeed, setNumThreads } from "../../src/engine/index.js";
import { FrequencyDetector, FREQUENCY_PARAMS } from "../../src/detectors/frequency.js";
import { dct2, dctMatrix, idct2 } from "../../src/detectors/dct.js";
import { applyTrigger, synthesiseTriggered } from "../../src/detectors/frequency-triggers.js";
import { resolveDetectorParams } from "../../src/detectors/params.js";
import { Rng } from "../../src/util/rng.js";
import { ConstantLogits, context, syntheticSet } from "./fixtures.js";

const params = (o: Record<string, string | number> = {}) => resolveDetectorParams("frequency", FREQUENCY_PARAMS, o);

test("DCT: the matrix is orthonormal; a constant image is all DC; a cosine is one coefficient; idct2 inverts dct2", () => {
  const before = memory().numTensors;
  const n = 8;
  const d = dctMatrix(n);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += (d[a * n + i] as number) * (d[b * n + i] as number);
      assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-6, `rows ${a}, ${b}: ${dot}`);
    }
  }
  // A constant 0.5 image of 8x6: DC = 0.5 · √(8 · 6), nothing else.
  const flat = tidy(() => dct2(tensor(new Float32Array(48).fill(0.5), { shape: [1, 1, 8, 6] })).data() as Float32Array);
  assert.ok(Math.abs((flat[0] as number) - 0.5 * Math.sqrt(48)) < 1e-5);
  for (let k = 1; k < 48; k++) assert.ok(Math.abs(flat[k] as number) < 1e-5, `coefficient ${k}: ${flat[k]}`);
  // cos(π (2i + 1) · 3 / 16) along the rows, constant along columns: coefficient (3, 0) only, of
  // size α_3 · 8/2 along the rows times α_0 · 8 along the columns = 2 · 2√2.
  const img = new Float32Array(64);
  for (let i = 0; i < 8; i++) for (let j = 0; j < 8; j++) img[i * 8 + j] = Math.cos((Math.PI * (2 * i + 1) * 3) / 16);
  const c = tidy(() => dct2(tensor(img, { shape: [1, 1, 8, 8] })).data() as Float32Array);
  for (let k = 0; k < 64; k++)
    assert.ok(Math.abs((c[k] as number) - (k === 3 * 8 ? 4 * Math.SQRT2 : 0)) < 1e-5, `coefficient ${k}: ${c[k]}`);
  const x = rand([2, 3, 8, 8]);
  const err = tidy(() => idct2(dct2(x)).sub(x).abs().max().item());
  assert.ok(err < 1e-5, `round trip error ${err}`);
  x.dispose();
  assert.equal(memory().numTensors, before);
});

test("synthetic triggers: each kind changes the image, stays in [0, 1] on 8-bit steps, and is seeded", () => {
  const [c, h, w] = [1, 28, 28];
  const base = Float32Array.from({ length: c * h * w }, (_, k) => ((k * 37) % 200) / 255);
  const other = Float32Array.from({ length: c * h * w }, (_, k) => ((k * 11) % 256) / 255);
  for (let kind = 0; kind < 5; kind++) {
    const img = Float32Array.from(base);
    applyTrigger(kind, img, other, c, h, w, new Rng(kind));
    let changed = 0;
    for (let k = 0; k < img.length; k++) {
      const v = img[k] as number;
      assert.ok(v >= 0 && v <= 1 && Math.abs(v * 255 - Math.round(v * 255)) < 1e-3, `kind ${kind}: value ${v}`);
      if (Math.abs(v - (base[k] as number)) > 1e-6) changed++;
    }
    assert.ok(changed >= 4, `kind ${kind} changed ${changed} pixels`);
  }
  assert.throws(
    () => applyTrigger(5, Float32Array.from(base), other, c, h, w, new Rng(0)),
    /trigger kind must be an integer in 0\.\.4, got 5/,
  );
  const all = new Float32Array(3 * c * h * w).fill(0.25);
  const a = synthesiseTriggered(all, [3, c, h, w], new Rng(7));
  const b = synthesiseTriggered(all, [3, c, h, w], new Rng(7));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, synthesiseTriggered(all, [3, c, h, w], new Rng(8)));
});

test("Frequency: learns flat images vs flat images with a block, and the same seed gives the same scores", () => {
  const before = memory().numTensors;
  // Tiny 8x8 steps: one thread is ~5x faster than several fighting over them.
  const threads = getNumThreads();
  setNumThreads(1);
  try {
    learnsAndRepeats();
  } finally {
    setNumThreads(threads);
  }
  assert.equal(memory().numTensors, before);
});

function learnsAndRepeats(): void {
  // Flat grey images of varying brightness: any trigger adds frequencies they do not have.
  const reserved = syntheticSet(48, 2, (i) => 40 + ((i * 7) % 150));
  const ctx = context(new ConstantLogits([1, 0]), 2);
  const p = params({ width: 4, epochs: 8, batchSize: 16, lr: 0.01 });
  const det = new FrequencyDetector(ctx, reserved, p);
  const fitted = det.fitted as { epochs: { accuracy: number }[] };
  assert.equal(fitted.epochs.length, 8);
  // Held-out: flat images, and the same with a 3x3 white block in a corner.
  const clean = new Float32Array(6 * 64);
  for (let i = 0; i < 6; i++) clean.fill((60 + 20 * i) / 255, i * 64, (i + 1) * 64);
  const patched = Float32Array.from(clean);
  for (let i = 0; i < 6; i++) for (let r = 0; r < 3; r++) for (let q = 0; q < 3; q++) patched[i * 64 + r * 8 + q] = 1;
  const xc = tensor(clean, { shape: [6, 1, 8, 8] });
  const xp = tensor(patched, { shape: [6, 1, 8, 8] });
  const sc = det.scoreBatch(xc).score;
  const sp = det.scoreBatch(xp).score;
  assert.ok(Math.max(...sc) < Math.min(...sp), `clean ${Array.from(sc)} vs patched ${Array.from(sp)}`);
  // Same seed, same training: identical scores; another seed: different ones.
  const again = new FrequencyDetector(ctx, reserved, p);
  assert.deepEqual(Array.from(again.scoreBatch(xc).score), Array.from(sc));
  const other = new FrequencyDetector(ctx, reserved, params({ width: 4, epochs: 8, batchSize: 16, lr: 0.01, seed: 1 }));
  assert.notDeepEqual(Array.from(other.scoreBatch(xc).score), Array.from(sc));
  // Restored from its state: the same scores.
  const st = det.state();
  const restored = new FrequencyDetector(
    ctx,
    { weights: new Map([...st.tensors].map(([k, t]) => [k.slice(4), t])) },
    p,
  );
  assert.deepEqual(Array.from(restored.scoreBatch(xp).score), Array.from(sp));
  for (const d of [det, again, other, restored]) d.dispose();
  xc.dispose();
  xp.dispose();
  manualSeed(0);
  assert.throws(
    () =>
      new FrequencyDetector(
        ctx,
        syntheticSet(1, 2, () => 0),
        p,
      ),
    /needs at least 2 reserved clean images to train on, got 1/,
  );
}
