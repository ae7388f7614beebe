// readRegularFile and its siblings refuse FIFOs, devices, directories and oversized files on the
// open handle, at once and without reading them; regular files come back whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import {
  FileReadError,
  openRegularFile,
  readRegularFile,
  readRegularFileSync,
  sha256OfRegularFile,
} from "../../src/util/read-regular-file.js";

/** Opens the FIFO's write end and closes it: a reader that (wrongly) waits on it gets end-of-file, so a regression fails instead of hanging. */
function release(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // no reader waiting: nothing to release
  }
}

test("FIFOs, devices, directories and oversized files are refused before a byte is read", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-rrf-"));
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const zero = join(dir, "zero");
  await symlink("/dev/zero", zero);
  const small = join(dir, "small");
  await writeFile(small, "hello");
  try {
    const rssBefore = process.memoryUsage().rss;
    const t0 = Date.now();
    const readers: [string, (f: string, max: number) => Promise<unknown>][] = [
      ["readRegularFile", (f, max) => readRegularFile(f, { maxBytes: max, what: "manifest" })],
      [
        "readRegularFileSync",
        (f, max) => Promise.resolve().then(() => readRegularFileSync(f, { maxBytes: max, what: "manifest" })),
      ],
      ["sha256OfRegularFile", (f, max) => sha256OfRegularFile(f, { maxBytes: max, what: "manifest" })],
      [
        "openRegularFile",
        async (f, max) => (await openRegularFile(f, { maxBytes: max, what: "manifest" })).handle.close(),
      ],
    ];
    for (const [name, read] of readers) {
      await assert.rejects(
        read(fifo, 1 << 20),
        (e: unknown) =>
          e instanceof FileReadError &&
          e.reason === "ETYPE" &&
          /fifo: the manifest is not a regular file \(a device, socket or pipe\)/.test(e.message),
        `${name}: FIFO`,
      );
      await assert.rejects(
        read(zero, 1 << 20),
        (e: unknown) => e instanceof FileReadError && e.reason === "ETYPE",
        `${name}: /dev/zero`,
      );
      await assert.rejects(
        read(dir, 1 << 20),
        (e: unknown) =>
          e instanceof FileReadError && e.reason === "EISDIR" && /is a directory, not a manifest/.test(e.message),
        `${name}: directory`,
      );
      await assert.rejects(
        read(small, 4),
        (e: unknown) =>
          e instanceof FileReadError &&
          e.reason === "ESIZE" &&
          /5 bytes is over the 4-byte limit for a manifest/.test(e.message),
        `${name}: size`,
      );
      await assert.rejects(
        read(join(dir, "missing"), 10),
        (e: unknown) => e instanceof FileReadError && e.reason === "ENOENT" && /missing: no such file/.test(e.message),
        `${name}: missing`,
      );
    }
    assert.ok(Date.now() - t0 < 5000, `refused at once (${Date.now() - t0} ms)`);
    assert.ok(process.memoryUsage().rss - rssBefore < 64 * 2 ** 20, "nothing was read from /dev/zero");
    assert.equal((await readRegularFile(small, { maxBytes: 5 })).toString(), "hello");
    assert.equal(readRegularFileSync(small, { maxBytes: 5 }).toString(), "hello");
    assert.deepEqual(await sha256OfRegularFile(small, { maxBytes: 5 }), {
      sha256: createHash("sha256").update("hello").digest("hex"),
      bytes: 5,
    });
  } finally {
    release(fifo);
    await rm(dir, { recursive: true, force: true });
  }
});
