import assert from "node:assert/strict";
import { readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { readCache, writeCache } from "../../src/data/cache.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { datasetCacheFile, loadDataset } from "../../src/data/registry.js";
import { pseudoRandomBytes, tempDir, writeIdxPair } from "./fixtures.js";

async function mnistDir(): Promise<{ dir: string; images: string; pixels: Uint8Array }> {
  const dir = await tempDir(after);
  const pixels = pseudoRandomBytes(5 * 4 * 4, 11);
  const { images } = await writeIdxPair(
    dir,
    "train",
    { images: pixels, labels: [0, 1, 2, 3, 9], height: 4, width: 4 },
    true,
  );
  return { dir, images, pixels };
}

void describe("dataset cache", () => {
  void it("writes one file on the first load and serves the second load from it", async () => {
    const { dir, images, pixels } = await mnistDir();
    const cacheDir = await tempDir(after);
    const warnings: string[] = [];
    const opts = {
      split: "train" as const,
      path: dir,
      cacheDir,
      progress: false,
      warn: (m: string) => warnings.push(m),
    };
    const first = await loadDataset("mnist", opts);
    assert.deepEqual(first.images, pixels);
    const file = datasetCacheFile("mnist", opts);
    assert.ok((await stat(file)).size > pixels.length);
    assert.deepEqual(await readdir(cacheDir), [file.split("/").pop()], "no temporary files left behind");

    // Same size and mtime but different bytes: only a cache hit can still return the old pixels.
    const { mtime } = await stat(images);
    const other = await mnistDir();
    await writeFile(images, await readFile(other.images));
    await utimes(images, mtime, mtime);
    const second = await loadDataset("mnist", opts);
    assert.deepEqual(second.images, first.images);
    assert.deepEqual(second.labels, first.labels);
    assert.deepEqual(
      { ...second, images: null, labels: null },
      { ...first, images: null, labels: null },
      "metadata survives the round trip",
    );

    // A new mtime changes the key, so the edited source is decoded again.
    await utimes(images, new Date(), new Date(Date.now() + 5000));
    const third = await loadDataset("mnist", opts);
    assert.deepEqual(third.images, other.pixels);
    assert.deepEqual(warnings, []);
  });

  void it("keys on options: a resized load gets its own file", async () => {
    const { dir } = await mnistDir();
    const cacheDir = await tempDir(after);
    const base = { split: "train" as const, path: dir, cacheDir, progress: false };
    const a = await loadDataset("mnist", base);
    const b = await loadDataset("mnist", { ...base, imageSize: 2, channels: 3 });
    assert.deepEqual([a.height, a.channels, b.height, b.channels], [4, 1, 2, 3]);
    assert.equal((await readdir(cacheDir)).length, 2);
    assert.notEqual(datasetCacheFile("mnist", base), datasetCacheFile("mnist", { ...base, imageSize: 2, channels: 3 }));
  });

  void it("ignores, reports and rebuilds a corrupted cache file", async () => {
    const { dir, pixels } = await mnistDir();
    const cacheDir = await tempDir(after);
    const warnings: string[] = [];
    const opts = {
      split: "train" as const,
      path: dir,
      cacheDir,
      progress: false,
      warn: (m: string) => warnings.push(m),
    };
    await loadDataset("mnist", opts);
    const file = datasetCacheFile("mnist", opts);
    const good = await readFile(file);

    const corruptions: [string, Buffer][] = [
      ["checksum mismatch", Buffer.from(good.map((v, i) => (i === good.length - 30 ? v ^ 0xff : v)))],
      ["file is", good.subarray(0, good.length - 7)],
      ["bad magic", Buffer.concat([Buffer.from("NOTMAGIC"), good.subarray(8)])],
      ["header", Buffer.concat([good.subarray(0, 12), Buffer.from("{{{{"), good.subarray(16)])],
    ];
    for (const [why, bytes] of corruptions) {
      warnings.length = 0;
      await writeFile(file, bytes);
      const ds = await loadDataset("mnist", opts);
      assert.deepEqual(ds.images, pixels, why);
      assert.equal(warnings.length, 1, why);
      assert.match(warnings[0] ?? "", new RegExp(`ignoring corrupt dataset cache .*${why}.*rebuilding`));
      assert.deepEqual(await readFile(file), good, `rebuilt file is valid again (${why})`);
    }
  });

  void it("writes nothing when caching is off", async () => {
    const { dir } = await mnistDir();
    const cacheDir = await tempDir(after);
    await loadDataset("mnist", { split: "train", path: dir, cacheDir, cache: false, progress: false });
    assert.deepEqual(await readdir(cacheDir), []);
  });

  void it("rejects a cache file written under another key", async () => {
    const cacheDir = await tempDir(after);
    const ds: ImageDataset = {
      name: "t",
      split: "test",
      images: Uint8Array.of(1, 2, 3, 4),
      labels: Int32Array.of(1, 0),
      count: 2,
      height: 1,
      width: 2,
      channels: 1,
      classNames: ["a", "b"],
      source: "/x",
    };
    const file = join(cacheDir, "t.bin");
    await writeCache(file, "key-1", ds);
    assert.deepEqual(await readCache(file, "key-1", () => assert.fail("no warning expected")), ds);
    const warnings: string[] = [];
    assert.equal(await readCache(file, "key-2", (m) => warnings.push(m)), undefined);
    assert.match(warnings[0] ?? "", /key mismatch/);
    assert.equal(
      await readCache(join(cacheDir, "absent.bin"), "k", () => assert.fail("absent is not corrupt")),
      undefined,
    );
  });
});
