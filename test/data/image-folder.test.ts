import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { after, describe, it } from "node:test";
import { readImageFolder } from "../../src/data/readers/image-folder.js";
import { jpeg, png, ppm, pseudoRandomBytes, solid, tarGz, tempDir, writeBytes } from "./fixtures.js";

const W = 3;
const H = 2;
const rgb = (seed: number): Uint8Array => pseudoRandomBytes(W * H * 3, seed);

/** train/{dog,cat}/ with numeric names that sort differently as text, test/ without the "dog" class. */
async function cifarLike(): Promise<{ root: string; px: Map<string, Uint8Array> }> {
  const root = await tempDir(after);
  const px = new Map<string, Uint8Array>();
  let seed = 1;
  for (const rel of [
    "train/dog/10.png",
    "train/dog/2.png",
    "train/cat/1.png",
    "train/cat/0003.png",
    "test/cat/7.png",
  ]) {
    const p = rgb(seed++);
    px.set(rel, p);
    await writeBytes(join(root, rel), await png(W, H, p));
  }
  await writeBytes(join(root, "train/cat/notes.txt"), "not an image");
  // macOS debris that archives often carry: must be skipped, not decoded.
  await writeBytes(join(root, "train/cat/._1.png"), "AppleDouble metadata");
  await writeBytes(join(root, "__MACOSX/train/cat/2.png"), "AppleDouble metadata");
  return { root, px };
}

void describe("image-folder reader", () => {
  void it("labels by sorted class folder and orders files numerically, with exact PNG pixels", async () => {
    const { root, px } = await cifarLike();
    const ds = await readImageFolder(root, { split: "train", progress: false });
    assert.deepEqual(ds.classNames, ["cat", "dog"]);
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 1]);
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels], [4, H, W, 3]);
    const order = ["train/cat/1.png", "train/cat/0003.png", "train/dog/2.png", "train/dog/10.png"];
    order.forEach((rel, i) => assert.deepEqual(ds.images.subarray(i * 18, (i + 1) * 18), px.get(rel), rel));
  });

  void it("keeps train's class indices for a test split that lacks a class", async () => {
    const { root, px } = await cifarLike();
    const ds = await readImageFolder(root, { split: "test", progress: false });
    assert.deepEqual(ds.classNames, ["cat", "dog"]);
    assert.deepEqual(Array.from(ds.labels), [0]);
    assert.deepEqual(ds.images, px.get("test/cat/7.png"));
  });

  void it("streams a .tar.gz to the same result as the folder", async () => {
    const { root } = await cifarLike();
    const archive = await tarGz(root, ["train", "test"], join(root, "..", `${root.split("/").pop() ?? "x"}.tar.gz`));
    after(() => import("node:fs/promises").then((fs) => fs.rm(archive, { force: true })));
    for (const split of ["train", "test"] as const) {
      const a = await readImageFolder(root, { split, progress: false });
      const b = await readImageFolder(archive, { split, progress: false });
      assert.deepEqual(b.images, a.images);
      assert.deepEqual(b.labels, a.labels);
      assert.deepEqual(b.classNames, a.classNames);
    }
  });

  void it("fails on a truncated or non-tar archive, naming it", async () => {
    const { root } = await cifarLike();
    const out = await tempDir(after);
    const archive = await tarGz(root, ["train", "test"], join(out, "data.tar.gz"));
    const bytes = await readFile(archive);
    await writeFile(archive, bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(readImageFolder(archive, { split: "train", progress: false }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.ok(e.message.startsWith(`archive: ${archive}: `), e.message);
      return true;
    });
    await writeFile(archive, gzipSync(Buffer.from("just some text, not a tar file")));
    await assert.rejects(readImageFolder(archive, { split: "train", progress: false }), {
      message: `archive: ${archive}: TAR_BAD_ARCHIVE: Unrecognized archive format`,
    });
  });

  void it("reads a tree without split folders, and 'val' as the test split", async () => {
    const root = await tempDir(after);
    await writeBytes(join(root, "plain/b/x.ppm"), ppm(W, H, rgb(1)));
    await writeBytes(join(root, "plain/a/y.png"), await png(W, H, rgb(2)));
    const ds = await readImageFolder(join(root, "plain"), { split: "test", progress: false });
    assert.deepEqual(ds.classNames, ["a", "b"]);
    assert.deepEqual(ds.images.subarray(0, 18), rgb(2));
    assert.deepEqual(ds.images.subarray(18), rgb(1));

    await writeBytes(join(root, "imnet/train/n01/a.png"), await png(W, H, rgb(3)));
    await writeBytes(join(root, "imnet/val/n01/b.png"), await png(W, H, rgb(4)));
    const val = await readImageFolder(join(root, "imnet"), { split: "test", progress: false });
    assert.deepEqual(val.images, rgb(4));
  });

  void it("decodes JPEG approximately and converts grey/RGB channels exactly", async () => {
    const root = await tempDir(after);
    await writeBytes(join(root, "c/j.jpg"), await jpeg(16, 16, solid(16, 16, [200, 40, 90])));
    const ds = await readImageFolder(root, { split: "train", progress: false });
    const off = ds.images.reduce((m, v, i) => Math.max(m, Math.abs(v - ([200, 40, 90][i % 3] ?? 0))), 0);
    assert.ok(off <= 3, `JPEG error ${off} grey levels`);

    const g = await tempDir(after);
    const greyPx = Uint8Array.from({ length: W * H }, (_, i) => 30 * i);
    await writeBytes(join(g, "k/grey.png"), await png(W, H, greyPx, 1));
    const three = await readImageFolder(g, { split: "train", progress: false });
    assert.equal(three.channels, 3);
    assert.deepEqual(
      Array.from(three.images),
      Array.from(greyPx).flatMap((v) => [v, v, v]),
    );
    const one = await readImageFolder(g, { split: "train", channels: 1, progress: false });
    assert.deepEqual(one.images, greyPx);

    const c = await tempDir(after);
    await writeBytes(join(c, "k/rgba.png"), await png(1, 2, Uint8Array.of(255, 0, 0, 10, 0, 0, 255, 255), 4));
    const luma = await readImageFolder(c, { split: "train", channels: 1, progress: false });
    assert.deepEqual(Array.from(luma.images), [76, 29], "alpha dropped, L = .299R + .587G + .114B");
  });

  void it("requires one size unless asked to resize", async () => {
    const root = await tempDir(after);
    await writeBytes(join(root, "a/1.png"), await png(4, 4, solid(4, 4, [1, 2, 3])));
    await writeBytes(join(root, "a/2.png"), await png(6, 4, solid(6, 4, [9, 8, 7])));
    await assert.rejects(
      readImageFolder(root, { split: "train", progress: false }),
      /is 6x4 but .*1\.png is 4x4; give an image size to resize/,
    );
    const ds = await readImageFolder(root, { split: "train", imageSize: { height: 5, width: 5 }, progress: false });
    assert.deepEqual([ds.height, ds.width], [5, 5]);
    assert.deepEqual(ds.images.subarray(75), solid(5, 5, [9, 8, 7]));
  });

  void it("names an undecodable image, and reports layouts it cannot use", async () => {
    const root = await tempDir(after);
    const bad = await writeBytes(join(root, "train/a/broken.jpg"), "definitely not a jpeg");
    await assert.rejects(readImageFolder(root, { split: "train", progress: false }), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.ok(e.message.startsWith(`image: ${bad}: cannot decode:`), e.message);
      return true;
    });
    await assert.rejects(
      readImageFolder(root, { split: "test", progress: false }),
      /no test images: expected <test\|val\|validation\|testing>\/<class>\/<image>/,
    );
    const empty = await tempDir(after);
    await assert.rejects(readImageFolder(empty, { split: "train", progress: false }), /no images/);
    await assert.rejects(readImageFolder(join(empty, "nope"), { split: "train", progress: false }), /does not exist/);
  });

  void it("checks the class folders against an expected list", async () => {
    const { root } = await cifarLike();
    await assert.rejects(readImageFolder(root, { split: "train", expectClasses: ["cat", "bird"], progress: false }), {
      message: `image-folder: ${root}: class folders are [cat, dog], expected [bird, cat]`,
    });
  });
});
