import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readGtsrb } from "../../src/data/readers/gtsrb.js";
import { pseudoRandomBytes, solid, tarGz, tempDir, writeGtsrbTree, type GtsrbImage } from "./fixtures.js";

const img = (file: string, classId: number, seed: number, width = 2, height = 2): GtsrbImage => ({
  file,
  classId,
  width,
  height,
  pixels: pseudoRandomBytes(width * height * 3, seed),
});

const TRAIN = [
  img("00000_00000.ppm", 0, 1),
  img("00000_00001.ppm", 0, 2),
  img("00002_00000.ppm", 2, 3),
  img("00042_00000.ppm", 42, 4),
];
const TEST = [img("00000.ppm", 42, 5), img("00001.ppm", 0, 6), img("00002.ppm", 2, 7)];
const NATIVE = { height: 2, width: 2 };

async function tree(): Promise<{ root: string; base: string }> {
  const root = await tempDir(after);
  // The label file lists the test images out of file-name order: the CSV order must win.
  const base = await writeGtsrbTree(root, TRAIN, TEST, ["00002.ppm", "00000.ppm", "00001.ppm"]);
  return { root, base };
}

void describe("GTSRB reader", () => {
  void it("reads training images class by class in CSV order with exact pixels", async () => {
    const { root } = await tree();
    const ds = await readGtsrb(root, { split: "train", imageSize: NATIVE, progress: false });
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [4, 2, 2, 3]);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 2, 42]);
    TRAIN.forEach((t, i) => assert.deepEqual(ds.images.subarray(i * 12, (i + 1) * 12), t.pixels, t.file));
    assert.equal(ds.classNames.length, 43);
    assert.equal(ds.classNames[14], "Stop");
  });

  void it("orders test images by GT-final_test.csv and ignores the unlabelled .test.csv", async () => {
    const { base } = await tree();
    const ds = await readGtsrb(base, { split: "test", imageSize: NATIVE, progress: false });
    assert.deepEqual(Array.from(ds.labels), [2, 42, 0]);
    const order = [TEST[2], TEST[0], TEST[1]];
    order.forEach((t, i) => assert.deepEqual(ds.images.subarray(i * 12, (i + 1) * 12), t?.pixels));
  });

  void it("resizes to 32x32 by default (a solid image stays solid) and can give grey images", async () => {
    const root = await tempDir(after);
    const train = [
      { file: "a.ppm", classId: 1, width: 40, height: 27, pixels: solid(40, 27, [10, 200, 30]) },
      { file: "b.ppm", classId: 1, width: 15, height: 31, pixels: solid(15, 31, [255, 0, 128]) },
    ];
    await writeGtsrbTree(root, train, []);
    const ds = await readGtsrb(root, { split: "train", progress: false });
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [2, 32, 32, 3]);
    assert.deepEqual(ds.images.subarray(0, 3072), solid(32, 32, [10, 200, 30]));
    assert.deepEqual(ds.images.subarray(3072), solid(32, 32, [255, 0, 128]));

    const grey = await readGtsrb(root, {
      split: "train",
      imageSize: { height: 8, width: 4 },
      channels: 1,
      progress: false,
    });
    assert.deepEqual([grey.height, grey.width, grey.channels], [8, 4, 1]);
    // ITU-R 601 luma, rounded: (299*10 + 587*200 + 114*30 + 500) / 1000 = 124.
    assert.deepEqual(Array.from(grey.images.subarray(0, 32)), new Array(32).fill(124));
  });

  void it("reads a .tar.gz of the tree, identical to the folder", async () => {
    const { root } = await tree();
    const archive = await tarGz(root, ["GTSRB"], join(root, "gtsrb.tar.gz"));
    for (const split of ["train", "test"] as const) {
      const a = await readGtsrb(root, { split, imageSize: NATIVE, progress: false });
      const b = await readGtsrb(archive, { split, imageSize: NATIVE, progress: false });
      assert.deepEqual(b.images, a.images);
      assert.deepEqual(b.labels, a.labels);
      assert.equal(b.source, archive);
    }
  });

  void it("names the CSV and the missing image when a label row has no file", async () => {
    const { base } = await tree();
    const missing = join(base, "Final_Training", "Images", "00002", "00002_00000.ppm");
    await rm(missing);
    const csv = join(base, "Final_Training", "Images", "00002", "GT-00002.csv");
    await assert.rejects(readGtsrb(base, { split: "train", progress: false }), {
      message: `gtsrb: ${csv}: line 2 names 00002_00000.ppm, which is missing`,
    });
  });

  void it("names the image whose PPM header is bad", async () => {
    const { base } = await tree();
    const bad = join(base, "Final_Test", "Images", "00001.ppm");
    await writeFile(bad, "P6\n2 2\n65535\n");
    await assert.rejects(readGtsrb(base, { split: "test", progress: false }), {
      message: `ppm: ${bad}: maxval 65535 is not supported (1..255)`,
    });
  });

  void it("rejects class ids out of range, mismatched folders, missing CSVs and test labels", async () => {
    const { base } = await tree();
    const csv = join(base, "Final_Training", "Images", "00000", "GT-00000.csv");
    const text = await readFile(csv, "utf8");
    await writeFile(csv, text.replace(/;0\r\n$/, ";43\r\n"));
    await assert.rejects(readGtsrb(base, { split: "train", progress: false }), {
      message: `gtsrb: ${csv}: line 3: ClassId "43" is outside 0..42`,
    });
    await writeFile(csv, text.replace(/;0\r\n$/, ";5\r\n"));
    await assert.rejects(readGtsrb(base, { split: "train", progress: false }), {
      message: `gtsrb: ${csv}: line 3: ClassId 5 in the folder of class 00000`,
    });
    await rm(csv);
    await assert.rejects(
      readGtsrb(base, { split: "train", progress: false }),
      /gtsrb: .*Final_Training\/Images\/00000: no GT-00000\.csv$/,
    );

    const gt = join(base, "Final_Test", "GT-final_test.csv");
    await rm(gt);
    await assert.rejects(
      readGtsrb(base, { split: "test", progress: false }),
      /no GT-final_test\.csv \(the test labels, from GTSRB_Final_Test_GT\.zip/,
    );
  });

  void it("refuses a test label file without the ClassId column", async () => {
    const { base } = await tree();
    const gt = join(base, "Final_Test", "GT-final_test.csv");
    await writeFile(gt, "Filename;Width;Height\r\n00000.ppm;2;2\r\n");
    await assert.rejects(readGtsrb(base, { split: "test", progress: false }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.match(e.message, new RegExp(`^gtsrb: ${gt}: header has no ClassId column`));
      return true;
    });
  });
});
