import assert from "node:assert/strict";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CIFAR10_CLASSES, readCifar10Binary } from "../../src/data/readers/cifar10-binary.js";
import { cifarRecord, concat, pseudoRandomBytes, tarGz, tempDir, writeBytes } from "./fixtures.js";

interface Rec {
  label: number;
  planar: Uint8Array;
}

function records(n: number, seed: number): Rec[] {
  return Array.from({ length: n }, (_, i) => ({
    label: (seed + i) % 10,
    planar: pseudoRandomBytes(3072, seed * 100 + i),
  }));
}

/** The reference conversion, written independently of the reader: NHWC index of (image, y, x, channel). */
function expectedNhwc(recs: Rec[]): Uint8Array {
  const out = new Uint8Array(recs.length * 3072);
  recs.forEach((r, i) => {
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++)
        for (let c = 0; c < 3; c++) out[i * 3072 + (y * 32 + x) * 3 + c] = r.planar[c * 1024 + y * 32 + x] ?? -1;
  });
  return out;
}

async function writeBatches(dir: string, perBatch: number): Promise<{ train: Rec[]; test: Rec[] }> {
  const train: Rec[] = [];
  for (let b = 1; b <= 5; b++) {
    const recs = records(perBatch, b);
    train.push(...recs);
    await writeBytes(join(dir, `data_batch_${b}.bin`), concat(recs.map((r) => cifarRecord(r.label, r.planar))));
  }
  const test = records(perBatch + 1, 9);
  await writeBytes(join(dir, "test_batch.bin"), concat(test.map((r) => cifarRecord(r.label, r.planar))));
  return { train, test };
}

void describe("CIFAR-10 binary reader", () => {
  void it("converts channel-planar records to NHWC, batches 1..5 in order", async () => {
    const dir = await tempDir(after);
    const { train, test } = await writeBatches(dir, 2);
    const tr = await readCifar10Binary(dir, { split: "train", progress: false });
    assert.deepEqual([tr.count, tr.height, tr.width, tr.channels], [10, 32, 32, 3]);
    assert.deepEqual(
      Array.from(tr.labels),
      train.map((r) => r.label),
    );
    assert.deepEqual(tr.images, expectedNhwc(train));
    // Spot check spelled out: pixel (y=1, x=2) of image 3 is (R,G,B) from planes at offset 1*32+2.
    const p = train[3]?.planar ?? new Uint8Array();
    const at = 3 * 3072 + (1 * 32 + 2) * 3;
    assert.deepEqual(Array.from(tr.images.subarray(at, at + 3)), [p[34], p[1024 + 34], p[2048 + 34]]);
    assert.deepEqual(tr.classNames, CIFAR10_CLASSES);

    const te = await readCifar10Binary(dir, { split: "test", progress: false });
    assert.equal(te.count, 3);
    assert.deepEqual(te.images, expectedNhwc(test));
  });

  void it("finds cifar-10-batches-bin below the given folder and reads batches.meta.txt", async () => {
    const root = await tempDir(after);
    const dir = join(root, "cifar-10-batches-bin");
    await mkdir(dir);
    await writeBatches(dir, 1);
    const names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    await writeFile(join(dir, "batches.meta.txt"), names.join("\n") + "\n\n");
    const ds = await readCifar10Binary(root, { split: "test", progress: false });
    assert.deepEqual(ds.classNames, names);
    assert.equal(ds.source, dir);
  });

  void it("reads the official .tar.gz directly, identical to the extracted folder", async () => {
    const root = await tempDir(after);
    await writeBatches(join(root, "cifar-10-batches-bin"), 2);
    const archive = await tarGz(root, ["cifar-10-batches-bin"], join(root, "cifar-10-binary.tar.gz"));
    const fromDir = await readCifar10Binary(root, { split: "train", progress: false });
    const fromTar = await readCifar10Binary(archive, { split: "train", progress: false });
    assert.deepEqual(fromTar.images, fromDir.images);
    assert.deepEqual(fromTar.labels, fromDir.labels);
    assert.equal(fromTar.source, archive);
  });

  void it("rejects a size that is not a multiple of 3073 and a label byte above 9, naming the file", async () => {
    const dir = await tempDir(after);
    await writeBatches(dir, 1);
    const bad = join(dir, "data_batch_3.bin");
    await writeFile(bad, new Uint8Array(3073 + 5));
    await assert.rejects(readCifar10Binary(dir, { split: "train", progress: false }), {
      message: `cifar10: ${bad}: size 3078 is not a multiple of the 3073-byte record`,
    });
    const rec = cifarRecord(10, new Uint8Array(3072));
    await writeFile(bad, concat([cifarRecord(1, new Uint8Array(3072)), rec]));
    await assert.rejects(readCifar10Binary(dir, { split: "train", progress: false }), {
      message: `cifar10: ${bad}: label byte 10 of record 1 is outside 0..9`,
    });
  });

  void it("rejects a batches.meta.txt without ten names", async () => {
    const dir = await tempDir(after);
    await writeBatches(dir, 1);
    const meta = await writeBytes(join(dir, "batches.meta.txt"), "cat\ndog\n");
    await assert.rejects(readCifar10Binary(dir, { split: "test", progress: false }), {
      message: `cifar10: ${meta}: expected 10 class names, found 2`,
    });
  });

  void it("explains what is missing, and recognises an image-folder copy", async () => {
    const dir = await tempDir(after);
    await assert.rejects(
      readCifar10Binary(dir, { split: "train", progress: false }),
      /cifar10: .*: no data_batch_1\.bin here or in/,
    );
    await mkdir(join(dir, "train"));
    await assert.rejects(
      readCifar10Binary(dir, { split: "train", progress: false }),
      /use the 'cifar10-folder' dataset/,
    );
    await writeBatches(dir, 1);
    const empty = join(dir, "data_batch_4.bin");
    await writeFile(empty, new Uint8Array(0));
    await assert.rejects(readCifar10Binary(dir, { split: "train", progress: false }), {
      message: `cifar10: ${empty}: is empty`,
    });
    await rm(empty);
    await assert.rejects(readCifar10Binary(dir, { split: "train", progress: false }), {
      message: `cifar10: ${empty}: missing or unreadable`,
    });
  });
});
