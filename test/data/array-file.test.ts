// NumPy arrays as clean data (the `array` dataset kind): .npz of uint8 NHWC and .npy of float
// NCHW written by numpy, both decoding to the same images; clear errors for the wrong shapes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDataset } from "../../src/data/registry.js";
import { parseNpy } from "../../src/io/npy.js";
import { fixture } from "../helpers/pytorch-fixtures.js";

test("a .npz of uint8 NHWC and a .npy of float NCHW (labels beside it) give the same images and labels", async () => {
  const a = await loadDataset("array", { split: "test", path: fixture("clean-uint8.npz"), cache: false });
  const b = await loadDataset("array", {
    split: "train",
    path: fixture("clean-float.npy"),
    cache: false,
    imageSize: 28,
    channels: 1,
  });
  for (const ds of [a, b]) {
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [48, 28, 28, 1]);
    assert.equal(ds.classNames.length, 10);
    assert.deepEqual(Array.from(ds.labels.subarray(0, 12)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
    // pixel p of image i is (7i + p) mod 256
    assert.equal(ds.images[0], 0);
    assert.equal(ds.images[3 * 784 + 300], (21 + 300) % 256);
  }
  assert.deepEqual(Array.from(a.images), Array.from(b.images));
  await assert.rejects(
    loadDataset("array", { split: "test", path: fixture("clean-uint8.npz"), cache: false, imageSize: 32 }),
    /images are 28x28 but 32x32 are needed \(arrays are not resized/,
  );
  await assert.rejects(
    loadDataset("array", { split: "test", path: fixture("clean-uint8.npz"), cache: false, channels: 3 }),
    /images have 1 channels but 3 are needed/,
  );
});

test("npy headers are parsed strictly; missing labels and wrong dtypes are named", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-npy-"));
  try {
    const header = "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }";
    const bytes = new Uint8Array([
      0x93,
      0x4e,
      0x55,
      0x4d,
      0x50,
      0x59,
      1,
      0,
      header.length,
      0,
      ...new TextEncoder().encode(header),
      ...new Array<number>(16).fill(0),
    ]);
    assert.throws(() => parseNpy(bytes, "c.npy"), /c\.npy: array dtype '<c8' is not supported/);
    assert.throws(() => parseNpy(new Uint8Array(12), "z.npy"), /z\.npy: not a \.npy file/);
    await writeFile(join(dir, "x.npy"), bytes);
    await assert.rejects(
      loadDataset("array", { split: "test", path: join(dir, "x.npy"), cache: false }),
      /the labels must be in .*x\.labels\.npy/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
