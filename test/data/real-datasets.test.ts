// Acceptance checks on the real datasets available on this machine. The first run decodes everything (about half
// a minute, mostly CIFAR-10's 60,000 JPEGs); later runs read the cache ($BADEXPERT_CACHE or
// ~/.cache/badexpert/datasets). Each test is skipped when its data is absent.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it, type TestContext } from "node:test";
import type { ImageDataset, Split } from "../../src/data/dataset.js";
import { CIFAR10_CLASSES } from "../../src/data/readers/cifar10-binary.js";
import { datasetInfo, FASHION_MNIST_CLASSES, loadDataset } from "../../src/data/registry.js";
import { channelStats } from "../../src/data/stats.js";

const FASHION = "/usr/share/datasets/fashion-mnist";
// The shared copies sit beside the repository (../shared/datasets from the repo root, where npm test runs).
const SHARED = process.env.BADEXPERT_SHARED ?? resolve("../shared/datasets");
const CIFAR_JPEG = join(SHARED, "cifar10-jpeg.tar.gz");
const GTSRB_32 = join(SHARED, "gtsrb-32.tar.gz");

const skipUnless = (path: string): { skip: string } | { skip: false } =>
  existsSync(path) ? { skip: false } : { skip: `${path} is not on this machine` };

/** Loads twice (the second load must come from the cache) and reports both times. */
async function loadTwice(t: TestContext, name: string, path: string, split: Split): Promise<ImageDataset> {
  let start = performance.now();
  const ds = await loadDataset(name, { split, path });
  const first = (performance.now() - start) / 1000;
  start = performance.now();
  const again = await loadDataset(name, { split, path });
  const second = (performance.now() - start) / 1000;
  t.diagnostic(
    `${name} ${split}: first load ${first.toFixed(2)} s (decoded unless cached by an earlier run), cached ${second.toFixed(2)} s`,
  );
  assert.deepEqual(again.labels, ds.labels);
  assert.ok(
    Buffer.from(again.images.buffer, again.images.byteOffset, again.images.length).equals(ds.images),
    "cached images differ",
  );
  return ds;
}

function histogram(ds: ImageDataset): number[] {
  const h = new Array<number>(ds.classNames.length).fill(0);
  for (const y of ds.labels) h[y] = (h[y] ?? 0) + 1;
  return h;
}

function assertClose(actual: number[], expected: number[] | undefined, tol: number, what: string): void {
  assert.ok(expected, what);
  actual.forEach((v, i) =>
    assert.ok(Math.abs(v - (expected[i] ?? NaN)) <= tol, `${what}[${i}] = ${v}, expected ${expected[i]} ± ${tol}`),
  );
}

void describe("real datasets", { timeout: 600_000 }, () => {
  void it("Fashion-MNIST: 60,000 / 10,000 grey 28x28 images", skipUnless(FASHION), async (t) => {
    const train = await loadTwice(t, "fashion-mnist", FASHION, "train");
    const test = await loadTwice(t, "fashion-mnist", FASHION, "test");
    assert.deepEqual([train.count, train.height, train.width, train.channels], [60000, 28, 28, 1]);
    assert.deepEqual([test.count, test.height, test.width, test.channels], [10000, 28, 28, 1]);
    assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
    assert.deepEqual(histogram(train), new Array(10).fill(6000));
    assert.deepEqual(histogram(test), new Array(10).fill(1000));
    assert.deepEqual(Array.from(train.labels.subarray(0, 10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assertClose(channelStats(train).mean, datasetInfo("fashion-mnist").mean, 0.0005, "mean");
    assertClose(channelStats(train).std, datasetInfo("fashion-mnist").std, 0.0005, "std");
  });

  void it(
    "CIFAR-10 from the shared JPEG .tar.gz: 50,000 / 10,000 RGB 32x32 images",
    skipUnless(CIFAR_JPEG),
    async (t) => {
      const train = await loadTwice(t, "cifar10-folder", CIFAR_JPEG, "train");
      const test = await loadTwice(t, "cifar10-folder", CIFAR_JPEG, "test");
      assert.deepEqual([train.count, train.height, train.width, train.channels], [50000, 32, 32, 3]);
      assert.deepEqual([test.count, test.height, test.width, test.channels], [10000, 32, 32, 3]);
      assert.deepEqual(train.classNames, CIFAR10_CLASSES);
      assert.deepEqual(histogram(train), new Array(10).fill(5000));
      assert.deepEqual(histogram(test), new Array(10).fill(1000));
      // Lossy JPEG shifts the official statistics only slightly; swapped channels or a bad decode would not.
      assertClose(channelStats(train).mean, datasetInfo("cifar10").mean, 0.002, "mean");
      assertClose(channelStats(train).std, datasetInfo("cifar10").std, 0.005, "std");
    },
  );

  void it("GTSRB from the shared .tar.gz: 39,209 / 12,630 images, 43 classes", skipUnless(GTSRB_32), async (t) => {
    const train = await loadTwice(t, "gtsrb", GTSRB_32, "train");
    const test = await loadTwice(t, "gtsrb", GTSRB_32, "test");
    assert.deepEqual([train.count, train.height, train.width, train.channels], [39209, 32, 32, 3]);
    assert.deepEqual([test.count, test.height, test.width, test.channels], [12630, 32, 32, 3]);
    assert.equal(train.classNames.length, 43);
    const [htr, hte] = [histogram(train), histogram(test)];
    assert.ok(htr.every((n) => n > 0) && hte.every((n) => n > 0), "every class occurs in both splits");
    assert.deepEqual([htr[0], htr[1], htr[2], hte[0], hte[1], hte[2]], [210, 2220, 2250, 60, 720, 750]);
    // The first rows of the official GT-final_test.csv.
    assert.deepEqual(Array.from(test.labels.subarray(0, 10)), [16, 1, 38, 33, 11, 38, 18, 12, 25, 35]);
    assertClose(channelStats(train).mean, datasetInfo("gtsrb").mean, 0.0005, "mean");
    assertClose(channelStats(train).std, datasetInfo("gtsrb").std, 0.0005, "std");
  });
});
