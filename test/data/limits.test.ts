// Bounded memory on hostile inputs: pixel limits checked from the header before decoding, IDX gzip
// inflated no further than its declared shape, and clear messages for paths that are not files.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createGzip, crc32, gzipSync } from "node:zlib";
import sharp from "sharp";
import { MAX_IMAGE_PIXELS, decodeImage } from "../../src/data/image-decode.js";
import { decodePnm } from "../../src/data/ppm.js";
import { MAX_IDX_BYTES, inflateIdx } from "../../src/data/readers/idx-inflate.js";
import { readMaybeGzipped } from "../../src/data/readers/idx.js";
import { listFiles } from "../../src/data/file-tree.js";
import { readImageFile } from "../../src/data/read-image-file.js";
import { DatasetFormatError } from "../../src/data/errors.js";
import { idxBytes, tempDir } from "./fixtures.js";

/** A PNG whose header declares width × height; its pixel data is absent (never reached). */
function pngHeaderOnly(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Uint8Array): Buffer => {
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 0, 0, 0, 0], 8); // 8-bit grey
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", gzipSync(Buffer.alloc(0))),
    chunk("IEND", new Uint8Array()),
  ]);
}

test("an image over the pixel limit is refused from its header, before decoding", async () => {
  const t0 = Date.now();
  const before = process.memoryUsage().rss;
  // 16383² (libvips' own limit) used to cost 1 GB for a 261 KB file.
  // An 8-bit PNG's header is read by our PNG fast path (png-decode.ts), which refuses it before pngjs or libvips run.
  await assert.rejects(
    decodeImage(pngHeaderOnly(16383, 16383), "huge.png", { channels: 1 }),
    (e: unknown) =>
      e instanceof DatasetFormatError &&
      /huge\.png: 16383x16383 = 268402689 pixels exceeds the limit of 50000000/.test(e.message),
  );
  assert.ok(process.memoryUsage().rss - before < 100 * 2 ** 20, "no pixel buffer was allocated");
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(MAX_IMAGE_PIXELS, 50_000_000);
  const small = await sharp(Buffer.alloc(100 * 100, 7), { raw: { width: 100, height: 100, channels: 1 } })
    .png()
    .toBuffer();
  await assert.rejects(
    decodeImage(small, "small.png", { channels: 1, maxPixels: 9999 }),
    /small\.png: 100x100 = 10000 pixels exceeds the limit of 9999/,
  );
  // The header is read before any decoder runs, for what the fast path leaves to libvips too (a 16-bit PNG, a JPEG).
  const deep = await sharp(Buffer.alloc(100 * 100, 7), { raw: { width: 100, height: 100, channels: 1 } })
    .toColourspace("grey16")
    .png()
    .toBuffer();
  await assert.rejects(
    decodeImage(deep, "deep.png", { channels: 1, maxPixels: 9999 }),
    /deep\.png: 100x100 = 10000 pixels exceeds the limit of 9999/,
  );
  const jpeg = await sharp(Buffer.alloc(100 * 100, 7), { raw: { width: 100, height: 100, channels: 1 } })
    .jpeg()
    .toBuffer();
  await assert.rejects(
    decodeImage(jpeg, "photo.jpg", { channels: 1, maxPixels: 9999 }),
    /photo\.jpg: 100x100 = 10000 pixels exceeds the limit of 9999/,
  );
  const ok = await decodeImage(small, "small.png", { channels: 1, maxPixels: 10000 });
  assert.deepEqual([ok.width, ok.height, ok.pixels[0]], [100, 100, 7]);
});

test("a PPM over the pixel limit is refused from its header", async () => {
  const header = new TextEncoder().encode("P5\n100000 100000\n255\n");
  assert.throws(
    () => decodePnm(header, "big.pgm", { maxPixels: MAX_IMAGE_PIXELS }),
    /big\.pgm: 100000x100000 = 10000000000 pixels exceeds the limit of 50000000/,
  );
  await assert.rejects(decodeImage(header, "big.pgm", { channels: 1 }), /exceeds the limit of 50000000/);
});

/** gzip of an IDX header declaring `dims` followed by `zeros` zero bytes, built in 1 MiB chunks. */
async function gzipBomb(dims: number[], zeros: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const out: Buffer[] = [];
  gz.on("data", (c: Buffer) => out.push(c));
  const done = new Promise((resolve) => gz.on("end", resolve));
  gz.write(idxBytes(0x803, dims, new Uint8Array()));
  const chunk = Buffer.alloc(2 ** 20);
  for (let left = zeros; left > 0; left -= chunk.length)
    gz.write(left >= chunk.length ? chunk : chunk.subarray(0, left));
  gz.end();
  await done;
  return Buffer.concat(out);
}

test("an IDX gzip bomb is refused as soon as it outgrows its declared shape", async () => {
  // 256 MiB of zeros behind a header declaring 10 images of 28x28: about 250 KB compressed.
  const bomb = await gzipBomb([10, 28, 28], 256 * 2 ** 20);
  assert.ok(bomb.length < 1e6);
  const before = process.memoryUsage().rss;
  await assert.rejects(
    inflateIdx(bomb, "bomb.gz"),
    (e: unknown) =>
      e instanceof DatasetFormatError &&
      /bomb\.gz: inflates to more than the 7856 bytes its header declares; refusing/.test(e.message),
  );
  assert.ok(process.memoryUsage().rss - before < 64 * 2 ** 20, "inflating stopped early");
  // A header declaring more than the limit is refused before its data is inflated.
  const huge = gzipSync(idxBytes(0x803, [100000, 1000, 1000], new Uint8Array(16)));
  await assert.rejects(
    inflateIdx(huge, "huge.gz"),
    new RegExp(`huge\\.gz: header declares 100000000016 bytes, more than the limit of ${MAX_IDX_BYTES}`),
  );
  // An honest file inflates to exactly its bytes.
  const honest = idxBytes(0x803, [2, 2, 2], Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  assert.deepEqual(Array.from(await inflateIdx(gzipSync(honest), "ok.gz")), Array.from(honest));
  await assert.rejects(
    inflateIdx(gzipSync(honest).subarray(0, 20), "cut.gz"),
    /cut\.gz: gzip data is corrupt or truncated/,
  );
});

test("paths that are not files get messages naming them", async () => {
  const dir = await tempDir(after);
  await mkdir(join(dir, "sub"));
  await assert.rejects(readMaybeGzipped(join(dir, "sub")), new RegExp(`idx: ${dir}/sub: is a directory, not a file`));
  await assert.rejects(readImageFile(join(dir, "sub")), new RegExp(`${dir}/sub: is a directory, not an image file`));
  await assert.rejects(readImageFile(join(dir, "none.png")), new RegExp(`${dir}/none\\.png: no such file`));
  await assert.rejects(readImageFile("/dev/null"), /\/dev\/null: not a regular file/);
  await writeFile(join(dir, "five.png"), "12345");
  await assert.rejects(readImageFile(join(dir, "five.png"), 4), /five\.png: 5 bytes is over the 4-byte limit/);
});

test("symlink loops and dangling symlinks under a dataset folder are errors naming the link", async () => {
  const dir = await tempDir(after);
  await mkdir(join(dir, "cat"), { recursive: true });
  await writeFile(join(dir, "cat", "a.png"), "x");
  assert.deepEqual(await listFiles(dir), ["cat/a.png"]);
  await symlink("..", join(dir, "cat", "loop"));
  await assert.rejects(
    listFiles(dir),
    (e: unknown) =>
      e instanceof DatasetFormatError &&
      e.message ===
        `files: ${join(dir, "cat", "loop")}: a symlink loop: it points back to ${dir}, a folder that contains it`,
  );
  const other = await tempDir(after);
  await writeFile(join(other, "b.png"), "x");
  await symlink(join(other, "gone.png"), join(other, "dangling.png"));
  await assert.rejects(listFiles(other), new RegExp(`${other}/dangling\\.png: a dangling symlink`));
  // A symlink to a folder outside the walk is followed.
  const third = await tempDir(after);
  await symlink(join(dir, "cat"), join(third, "linked"));
  await assert.rejects(listFiles(third), /a symlink loop/, "the loop inside the linked folder is still found");
});
