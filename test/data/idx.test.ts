import assert from "node:assert/strict";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { readIdxDataset } from "../../src/data/readers/idx.js";
import { DatasetFormatError } from "../../src/data/errors.js";
import { idxBytes, pseudoRandomBytes, tempDir, writeBytes, writeIdxPair } from "./fixtures.js";

const CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const opts = (split: "train" | "test") => ({ split, name: "mnist", classNames: CLASSES, progress: false });

void describe("IDX reader (MNIST / Fashion-MNIST)", () => {
  void it("reads gzipped train files and raw test files with exact pixels and labels", async () => {
    const dir = await tempDir(after);
    const train = { images: pseudoRandomBytes(3 * 2 * 3, 1), labels: [0, 9, 4], height: 2, width: 3 };
    const test = { images: pseudoRandomBytes(2 * 2 * 3, 2), labels: [7, 1], height: 2, width: 3 };
    await writeIdxPair(dir, "train", train, true);
    await writeIdxPair(dir, "t10k", test, false);

    const tr = await readIdxDataset(dir, opts("train"));
    assert.deepEqual([tr.count, tr.height, tr.width, tr.channels], [3, 2, 3, 1]);
    assert.deepEqual(tr.images, train.images);
    assert.deepEqual(Array.from(tr.labels), [0, 9, 4]);
    assert.equal(tr.split, "train");
    assert.equal(tr.source, dir);
    assert.deepEqual(tr.classNames, CLASSES);

    const te = await readIdxDataset(dir, opts("test"));
    assert.deepEqual(te.images, test.images);
    assert.deepEqual(Array.from(te.labels), [7, 1]);
  });

  void it("accepts the dotted '.idx3-ubyte' spelling some mirrors use", async () => {
    const dir = await tempDir(after);
    const { images, labels } = await writeIdxPair(
      dir,
      "train",
      { images: Uint8Array.of(5, 6), labels: [3], height: 1, width: 2 },
      false,
    );
    await rename(images, join(dir, "train-images.idx3-ubyte"));
    await rename(labels, join(dir, "train-labels.idx1-ubyte"));
    const ds = await readIdxDataset(dir, opts("train"));
    assert.deepEqual(Array.from(ds.images), [5, 6]);
    assert.deepEqual(Array.from(ds.labels), [3]);
  });

  void it("names the file and both magic numbers when the magic is wrong", async () => {
    const dir = await tempDir(after);
    await writeIdxPair(dir, "train", { images: Uint8Array.of(1, 2), labels: [1], height: 1, width: 2 }, true);
    const file = join(dir, "train-images-idx3-ubyte.gz");
    await writeFile(file, gzipSync(idxBytes(0x801, [1], Uint8Array.of(1))));
    await assert.rejects(readIdxDataset(dir, opts("train")), (e: unknown) => {
      assert.ok(e instanceof DatasetFormatError);
      assert.equal(e.message, `idx: ${file}: magic number 0x00000803 expected, found 0x00000801`);
      assert.equal(e.file, file);
      return true;
    });
  });

  void it("rejects a truncated raw file and a truncated gzip stream", async () => {
    const dir = await tempDir(after);
    const { images } = await writeIdxPair(
      dir,
      "t10k",
      { images: pseudoRandomBytes(40, 3), labels: [1, 2], height: 4, width: 5 },
      false,
    );
    const full = await readFile(images);
    await writeFile(images, full.subarray(0, full.length - 5));
    await assert.rejects(readIdxDataset(dir, opts("test")), {
      message: `idx: ${images}: truncated: header declares 2x4x5 = 40 data bytes, found 35`,
    });

    const gz = await writeIdxPair(
      dir,
      "train",
      { images: pseudoRandomBytes(400, 4), labels: new Array(4).fill(1), height: 10, width: 10 },
      true,
    );
    const zipped = await readFile(gz.images);
    await writeFile(gz.images, zipped.subarray(0, zipped.length - 20));
    await assert.rejects(readIdxDataset(dir, opts("train")), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /^idx: .*train-images-idx3-ubyte\.gz: gzip data is corrupt or truncated/);
      return true;
    });
  });

  void it("rejects trailing bytes, wrong dimension counts, count mismatches and labels out of range", async () => {
    const dir = await tempDir(after);
    const fx = { images: pseudoRandomBytes(8, 5), labels: [1, 2], height: 2, width: 2 };
    const { images, labels } = await writeIdxPair(dir, "train", fx, false);

    await writeFile(images, idxBytes(0x803, [2, 2, 2], new Uint8Array(9)));
    await assert.rejects(readIdxDataset(dir, opts("train")), {
      message: `idx: ${images}: 1 unexpected bytes after the 2x2x2 data the header declares`,
    });

    await writeFile(images, idxBytes(0x802, [2, 4], new Uint8Array(8)));
    await assert.rejects(readIdxDataset(dir, opts("train")), {
      message: `idx: ${images}: magic number 0x00000803 expected, found 0x00000802`,
    });

    await writeFile(images, idxBytes(0x803, [3, 2, 2], new Uint8Array(12)));
    await assert.rejects(readIdxDataset(dir, opts("train")), {
      message: `idx: ${labels}: 2 labels but ${images} has 3 images`,
    });

    await writeFile(images, idxBytes(0x803, [2, 2, 2], fx.images));
    await writeFile(labels, idxBytes(0x801, [2], Uint8Array.of(3, 10)));
    await assert.rejects(readIdxDataset(dir, opts("train")), {
      message: `idx: ${labels}: label 10 at index 1 is outside 0..9`,
    });
  });

  void it("says which names it tried when files are missing", async () => {
    const dir = await tempDir(after);
    await assert.rejects(readIdxDataset(dir, opts("test")), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, /no test image file; tried .*t10k-images-idx3-ubyte\.gz, .*t10k-images-idx3-ubyte, /);
      return true;
    });
  });

  void it("resizes and converts channels on request", async () => {
    const dir = await tempDir(after);
    const img = new Uint8Array(6 * 6).fill(77);
    img.fill(200, 36 - 6); // bottom row differs, so a wrong resize would show
    await writeIdxPair(dir, "train", { images: img, labels: [2], height: 6, width: 6 }, false);
    const ds = await readIdxDataset(dir, { ...opts("train"), imageSize: { height: 3, width: 3 }, channels: 3 });
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [1, 3, 3, 3]);
    assert.equal(ds.images.length, 27);
    // Top row comes only from grey 77 rows; each pixel repeated in R, G, B.
    assert.deepEqual(Array.from(ds.images.subarray(0, 9)), new Array(9).fill(77));
    const bottom = Array.from(ds.images.subarray(18, 27));
    assert.ok(
      bottom.every((v) => v > 77 && v <= 200 && v === bottom[0]),
      `bottom row ${bottom.join(",")}`,
    );

    const same = await readIdxDataset(dir, { ...opts("train"), imageSize: { height: 6, width: 6 }, channels: 1 });
    assert.deepEqual(same.images, img);
  });

  void it("reports a missing label file separately from a missing image file", async () => {
    const dir = await tempDir(after);
    await writeBytes(join(dir, "train-images-idx3-ubyte"), idxBytes(0x803, [1, 1, 1], Uint8Array.of(9)));
    await assert.rejects(
      readIdxDataset(dir, opts("train")),
      /no train label file; tried .*train-labels-idx1-ubyte\.gz/,
    );
  });
});
