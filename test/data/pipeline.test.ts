// Splits, batches, augmentation and the loader on generated images.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tensor, tidy, memory } from "../../src/engine/index.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { splitIndices, subset } from "../../src/data/splits.js";
import { imagesToTensor, tensorToImages, makeBatch } from "../../src/data/batch.js";
import { augmentBatch, normalize, centerCrop } from "../../src/data/augment.js";
import { DataLoader } from "../../src/data/loader.js";
import { Rng } from "../../src/util/rng.js";
import { noLeaks } from "../helpers/memory.js";

function fixture(count: number, h = 4, w = 4, c = 1): ImageDataset {
  const images = new Uint8Array(count * h * w * c);
  for (let i = 0; i < images.length; i++) images[i] = (i * 37) % 256;
  const labels = Int32Array.from({ length: count }, (_, i) => i % 3);
  return {
    name: "fixture",
    split: "train",
    images,
    labels,
    count,
    height: h,
    width: w,
    channels: c,
    classNames: ["a", "b", "c"],
    source: "generated",
  };
}

test("splits are disjoint, sized as asked, cover what they claim and depend only on the seed", () => {
  const s = splitIndices(100, { reserved: 0.2, calibration: 30, evaluation: -1 }, 7);
  assert.equal(s.reserved?.length, 20);
  assert.equal(s.calibration?.length, 30);
  assert.equal(s.evaluation?.length, 50);
  const all = new Set([...(s.reserved ?? []), ...(s.calibration ?? []), ...(s.evaluation ?? [])]);
  assert.equal(all.size, 100);
  assert.deepEqual(splitIndices(100, { reserved: 0.2, calibration: 30, evaluation: -1 }, 7), s);
  assert.notDeepEqual(splitIndices(100, { reserved: 0.2, calibration: 30, evaluation: -1 }, 8).reserved, s.reserved);
  assert.throws(() => splitIndices(10, { a: 8, b: 5 }, 1), /the splits need 13 samples, the dataset has 10/);
  assert.throws(() => splitIndices(10, { a: -1, b: -1 }, 1), /at most one split may take the rest/);
});

test("subset copies the selected images and labels", () => {
  const ds = fixture(5, 2, 2, 1);
  const sub = subset(ds, [4, 1]);
  assert.equal(sub.count, 2);
  assert.deepEqual(Array.from(sub.images), [...ds.images.subarray(16, 20), ...ds.images.subarray(4, 8)]);
  assert.deepEqual(Array.from(sub.labels), [1, 1]);
  assert.throws(() => subset(ds, [5]), /index 5 out of range for 5 samples/);
});

test("NHWC bytes become NCHW floats in [0, 1] and back exactly", () =>
  noLeaks(() =>
    tidy(() => {
      const bytes = Uint8Array.from([0, 255, 10, 20, 30, 40]); // one 1x2 RGB image
      const x = imagesToTensor(bytes, 1, 1, 2, 3);
      assert.deepEqual(x.shape, [1, 3, 1, 2]);
      const v = x.toArray().map((f) => Math.round(f * 255));
      assert.deepEqual(v, [0, 20, 255, 30, 10, 40]);
      assert.deepEqual(Array.from(tensorToImages(x)), Array.from(bytes));
      const b = makeBatch(fixture(6), Int32Array.from([5, 0]), [9, 8]);
      assert.deepEqual(b.y.toArray(), [9, 8]);
      assert.deepEqual(b.x.shape, [2, 1, 4, 4]);
    }),
  ));

test("random crop with padding moves pixels exactly and fills zeros; flips mirror", () =>
  noLeaks(() =>
    tidy(() => {
      const h = 5;
      const w = 6;
      const vals = Float32Array.from({ length: h * w }, (_, i) => (i + 1) / 100);
      const x = tensor(vals, { shape: [1, 1, h, w] });
      for (let seed = 0; seed < 20; seed++) {
        const out = augmentBatch(x, { cropPadding: 2 }, new Rng(seed)).toArray();
        // Find the shift: the output must equal the input shifted by some (dx, dy) in [-2, 2].
        let found = false;
        for (let dy = -2; dy <= 2 && !found; dy++) {
          for (let dx = -2; dx <= 2 && !found; dx++) {
            let ok = true;
            for (let r = 0; r < h && ok; r++) {
              for (let c = 0; c < w && ok; c++) {
                const sr = r + dy;
                const sc = c + dx;
                const expect = sr >= 0 && sr < h && sc >= 0 && sc < w ? (vals[sr * w + sc] as number) : 0;
                ok = Math.abs((out[r * w + c] as number) - expect) < 1e-6;
              }
            }
            found = ok;
          }
        }
        assert.ok(found, `seed ${seed}: output is not an exact zero-padded shift of the input`);
      }
      const flipped = augmentBatch(x, { flipProbability: 1 }, new Rng(1)).toArray();
      assert.deepEqual(flipped.slice(0, w), Array.from(vals.slice(0, w)).reverse());
      const same1 = augmentBatch(
        x,
        { cropPadding: 2, flipProbability: 0.5, rotationDegrees: 10 },
        new Rng(3),
      ).toArray();
      const same2 = augmentBatch(
        x,
        { cropPadding: 2, flipProbability: 0.5, rotationDegrees: 10 },
        new Rng(3),
      ).toArray();
      assert.deepEqual(same1, same2);
    }),
  ));

test("normalize and centre crop", () =>
  noLeaks(() =>
    tidy(() => {
      const x = tensor([0.5, 0.5, 1, 0], { shape: [1, 2, 1, 2] });
      assert.deepEqual(normalize(x, [0.5, 0.25], [0.5, 0.25]).toArray(), [0, 0, 3, -1]);
      assert.throws(() => normalize(x, [0.5], [0.5]), /input has 2 channels but mean has 1/);
      const y = tensor(
        Float32Array.from({ length: 16 }, (_, i) => i),
        { shape: [1, 1, 4, 4] },
      );
      assert.deepEqual(centerCrop(y, 2, 2).toArray(), [5, 6, 9, 10]);
    }),
  ));

test("the loader is deterministic per seed and epoch, covers every sample once and leaks nothing", () => {
  const ds = fixture(10);
  const before = memory().numTensors;
  const order = (l: DataLoader) => {
    const seen: number[] = [];
    for (const b of l) {
      seen.push(...b.indices);
      b.x.dispose();
      b.y.dispose();
    }
    return seen;
  };
  const a = new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 3 });
  const b = new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 3 });
  const e0 = order(a);
  assert.deepEqual(order(b), e0);
  assert.deepEqual(
    [...e0].sort((p, q) => p - q),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.notDeepEqual(order(a), e0, "a new epoch reshuffles");
  assert.equal(new DataLoader(ds, { batchSize: 4, dropLast: true }).numBatches, 2);
  const relabelled = new DataLoader(ds, { batchSize: 10, labels: Int32Array.from({ length: 10 }, () => 2) });
  for (const batch of relabelled) {
    assert.deepEqual(batch.y.toArray(), new Array(10).fill(2));
    batch.x.dispose();
    batch.y.dispose();
  }
  assert.equal(memory().numTensors, before);
});
