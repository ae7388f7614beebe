// Reading a file we were told to open, with its type and size checked on the open handle before
// a byte is read: a FIFO would block the read forever, a link to /dev/zero would be read without
// end, and a multi-gigabyte file would cost its size in memory before any parser looks at it.
// Checking the handle (fstat) rather than the path (stat) leaves no gap in which the path can be
// swapped for something else between the check and the read. O_NONBLOCK keeps the open itself
// from waiting for a writer on a FIFO.
import { constants } from "node:fs";
import { open } from "node:fs/promises";

export class FileReadError extends Error {
  override name = "FileReadError";
  constructor(
    readonly file: string,
    readonly problem: string,
    /** The errno code behind the problem ("ENOENT", ...), or "ETYPE"/"ESIZE" for our own checks. */
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${problem}`, options);
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

/**
 * Reads a whole regular file whose size is at most `maxBytes`. Refuses directories, FIFOs,
 * sockets, devices and oversized files with a FileReadError that names the file and the problem.
 */
export async function readRegularFile(file: string, o: ReadRegularFileOptions): Promise<Buffer> {
  const what = o.what ?? "file";
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw new FileReadError(file, PROBLEMS[code] ?? `cannot open the ${what} (${code || String(e)})`, code || "EOPEN", { cause: e });
  }
  try {
    const s = await handle.stat();
    if (s.isDirectory()) throw new FileReadError(file, `is a directory, not a ${what}`, "EISDIR");
    if (!s.isFile()) throw new FileReadError(file, `the ${what} is not a regular file (a device, socket or pipe)`, "ETYPE");
    if (s.size > o.maxBytes) throw new FileReadError(file, `${s.size} bytes is over the ${o.maxBytes}-byte limit for a ${what}`, "ESIZE");
    // Read at most one byte past the limit: a file that grows after the fstat still cannot make
    // us read more than maxBytes + 1.
    const buf = Buffer.allocUnsafe(Math.min(s.size, o.maxBytes) + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buf.length) break;
    }
    if (filled > o.maxBytes) throw new FileReadError(file, `grew past the ${o.maxBytes}-byte limit for a ${what} while being read`, "ESIZE");
    return buf.subarray(0, filled);
  } catch (e) {
    if (e instanceof FileReadError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw new FileReadError(file, PROBLEMS[code] ?? `cannot read the ${what} (${code || String(e)})`, code || "EREAD", { cause: e });
  } finally {
    await handle.close();
  }
}

/** `readRegularFile` decoded as UTF-8. */
export async function readRegularTextFile(file: string, o: ReadRegularFileOptions): Promise<string> {
  return (await readRegularFile(file, o)).toString("utf8");
}
