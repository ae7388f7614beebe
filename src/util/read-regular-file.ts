// Reading a file we were told to open, with its type and size checked on the open handle before
// a byte is read: a FIFO would block the read forever, a link to /dev/zero would be read without
// end, and a multi-gigabyte file would cost its size in memory before any parser looks at it.
// Checking the handle (fstat) rather than the path (stat) leaves no gap in which the path can be
// swapped for something else between the check and the read. O_NONBLOCK keeps the open itself
// from waiting for a writer on a FIFO.
import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { BadExpertError } from "./errors.js";

/** E_IO, or E_INPUT_TOO_LARGE for a file over its size limit. */
export class FileReadError extends BadExpertError {
  override name = "FileReadError";
  constructor(
    readonly file: string,
    readonly problem: string,
    /** The errno code behind the problem ("ENOENT", ...), or "ETYPE"/"ESIZE" for our own checks. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason === "ESIZE" ? "E_INPUT_TOO_LARGE" : "E_IO", `${file}: ${problem}`, options);
  }
}

const PROBLEMS: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "is a directory, not a file",
  ELOOP: "a symlink loop",
  ENOTDIR: "a path component is not a directory",
};

export interface ReadRegularFileOptions {
  /** Largest size accepted, in bytes; a larger file is refused before it is read. */
  maxBytes: number;
  /** What the file is, for messages ("manifest", "signature", "image file"). */
  what?: string;
}

function openError(file: string, what: string, e: unknown): FileReadError {
  const code = (e as NodeJS.ErrnoException).code ?? "";
  return new FileReadError(file, PROBLEMS[code] ?? `cannot open the ${what} (${code || String(e)})`, code || "EOPEN", {
    cause: e,
  });
}

function readError(file: string, what: string, e: unknown): FileReadError {
  if (e instanceof FileReadError) return e;
  const code = (e as NodeJS.ErrnoException).code ?? "";
  return new FileReadError(file, PROBLEMS[code] ?? `cannot read the ${what} (${code || String(e)})`, code || "EREAD", {
    cause: e,
  });
}

/** The checks on the open handle's fstat: a regular file of at most maxBytes. */
function checkStat(
  file: string,
  s: { isDirectory(): boolean; isFile(): boolean; size: number },
  what: string,
  maxBytes: number,
): void {
  if (s.isDirectory()) throw new FileReadError(file, `is a directory, not a ${what}`, "EISDIR");
  if (!s.isFile())
    throw new FileReadError(file, `the ${what} is not a regular file (a device, socket or pipe)`, "ETYPE");
  if (s.size > maxBytes)
    throw new FileReadError(file, `${s.size} bytes is over the ${maxBytes}-byte limit for a ${what}`, "ESIZE");
}

/**
 * Opens a regular file of at most `maxBytes` for reading in parts (a header first, a stream):
 * the same checks as readRegularFile, on the open handle. The caller closes the handle.
 */
export async function openRegularFile(
  file: string,
  o: ReadRegularFileOptions,
): Promise<{ handle: FileHandle; size: number }> {
  const what = o.what ?? "file";
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw openError(file, what, e);
  }
  try {
    const s = await handle.stat();
    checkStat(file, s, what, o.maxBytes);
    return { handle, size: s.size };
  } catch (e) {
    await handle.close();
    throw readError(file, what, e);
  }
}

/**
 * Reads a whole regular file whose size is at most `maxBytes`. Refuses directories, FIFOs,
 * sockets, devices and oversized files with a FileReadError that names the file and the problem.
 */
export async function readRegularFile(file: string, o: ReadRegularFileOptions): Promise<Buffer> {
  const what = o.what ?? "file";
  const { handle, size } = await openRegularFile(file, o);
  try {
    // Read at most one byte past the limit: a file that grows after the fstat still cannot make
    // us read more than maxBytes + 1.
    const buf = Buffer.allocUnsafe(Math.min(size, o.maxBytes) + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buf.length) break;
    }
    if (filled > o.maxBytes)
      throw new FileReadError(file, `grew past the ${o.maxBytes}-byte limit for a ${what} while being read`, "ESIZE");
    return buf.subarray(0, filled);
  } catch (e) {
    throw readError(file, what, e);
  } finally {
    await handle.close();
  }
}

/** readRegularFile for synchronous callers (libtorch's loaders, tight dataset loops): the same checks. */
export function readRegularFileSync(file: string, o: ReadRegularFileOptions): Buffer {
  const what = o.what ?? "file";
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw openError(file, what, e);
  }
  try {
    const s = fstatSync(fd);
    checkStat(file, s, what, o.maxBytes);
    const buf = Buffer.allocUnsafe(Math.min(s.size, o.maxBytes) + 1);
    let filled = 0;
    for (;;) {
      const bytesRead = readSync(fd, buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buf.length) break;
    }
    if (filled > o.maxBytes)
      throw new FileReadError(file, `grew past the ${o.maxBytes}-byte limit for a ${what} while being read`, "ESIZE");
    return buf.subarray(0, filled);
  } catch (e) {
    throw readError(file, what, e);
  } finally {
    closeSync(fd);
  }
}

/** SHA-256 (hex) and size of a regular file of at most `maxBytes`, streamed: memory stays one chunk whatever the size. */
export async function sha256OfRegularFile(
  file: string,
  o: ReadRegularFileOptions,
): Promise<{ sha256: string; bytes: number }> {
  const what = o.what ?? "file";
  const { handle } = await openRegularFile(file, o);
  try {
    const hash = createHash("sha256");
    const chunk = Buffer.allocUnsafe(1 << 20);
    let total = 0;
    for (;;) {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > o.maxBytes)
        throw new FileReadError(file, `grew past the ${o.maxBytes}-byte limit for a ${what} while being read`, "ESIZE");
      hash.update(chunk.subarray(0, bytesRead));
    }
    return { sha256: hash.digest("hex"), bytes: total };
  } catch (e) {
    throw readError(file, what, e);
  } finally {
    await handle.close();
  }
}

/** `readRegularFile` decoded as UTF-8. */
export async function readRegularTextFile(file: string, o: ReadRegularFileOptions): Promise<string> {
  return (await readRegularFile(file, o)).toString("utf8");
}
