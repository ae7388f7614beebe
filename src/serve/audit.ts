// The audit log: one JSON line per flagged input, appended with one write(2) on an O_APPEND
// descriptor before the answer goes out, so a crash loses at most the line being written and
// concurrent lines never interleave. With an image directory, the uploaded bytes are saved
// first and the line names the file.
//
// Rotation by size, as logrotate's numbered scheme: before a line that would take the file past
// `maxBytes`, the file is flushed (fsync) and closed, LOG.<keep> is deleted, LOG.<i> renamed to
// LOG.<i+1>, LOG to LOG.1, and a fresh LOG opened. All of it is synchronous on the one thread
// that writes lines, so a line is never split between two files and none is written while the
// files move. Only names of that pattern are touched, and only when each is a regular file: a
// directory or link in one of those places stops rotation (reported), never anything removed.
import { closeSync, fstatSync, fsyncSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface AuditEntry {
  time: string;
  requestId: string;
  client: string;
  route: string;
  /** Position of the input in its request. */
  index: number;
  pred: number;
  class: string;
  score: number | null;
  threshold: number;
  reason?: string;
}

export interface AuditRotation {
  /** Size past which the file is rotated before the next line. */
  maxBytes: number;
  /** Rotated files kept (LOG.1 ... LOG.<keep>); the oldest beyond them is deleted. */
  keep: number;
}

function extensionOf(b: Uint8Array): string {
  if (b[0] === 0x89 && b[1] === 0x50) return "png";
  if (b[0] === 0xff && b[1] === 0xd8) return "jpg";
  if (b[0] === 0x52 && b[1] === 0x49 && b[8] === 0x57) return "webp";
  if (b[0] === 0x47 && b[1] === 0x49) return "gif";
  if ((b[0] === 0x49 && b[1] === 0x49) || (b[0] === 0x4d && b[1] === 0x4d)) return "tiff";
  if (b[0] === 0x50 && (b[1] === 0x35 || b[1] === 0x36)) return "pnm";
  return "bin";
}

/** What is at `path`: nothing, a regular file, or something rotation must not move. */
function kindAt(path: string): "none" | "file" | string {
  try {
    const s = lstatSync(path);
    if (s.isFile()) return "file";
    return s.isDirectory() ? "a directory" : s.isSymbolicLink() ? "a symbolic link" : "not a regular file";
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "none";
    throw e;
  }
}

export class AuditLog {
  readonly path: string;
  readonly imagesDir: string | null;
  readonly rotation: AuditRotation;
  #fd: number | null;
  #size: number;
  /** Size at which the next rotation is tried (raised past a failed one, so it is not retried on every line). */
  #rotateAt: number;
  #writing = 0;
  #closing: Promise<void> | null = null;
  #idle: (() => void) | null = null;
  readonly #onError: (e: Error) => void;
  /** Lines written since start (a metric and a test hook). */
  lines = 0;
  /** Rotations done since start. */
  rotations = 0;

  private constructor(
    path: string,
    fd: number,
    imagesDir: string | null,
    rotation: AuditRotation,
    onError: (e: Error) => void,
  ) {
    this.path = path;
    this.#fd = fd;
    this.#size = fstatSync(fd).size;
    this.#rotateAt = rotation.maxBytes;
    this.imagesDir = imagesDir;
    this.rotation = rotation;
    this.#onError = onError;
  }

  /** Opens (appends to) `path`; `onError` hears of a rotation that could not be done (the log keeps growing in place). */
  static async open(
    path: string,
    imagesDir: string | null,
    rotation: AuditRotation = { maxBytes: 100 * 1024 * 1024, keep: 5 },
    onError: (e: Error) => void = () => undefined,
  ): Promise<AuditLog> {
    if (!Number.isInteger(rotation.maxBytes) || rotation.maxBytes < 1)
      throw new RangeError(`audit log: maxBytes must be a positive integer, got ${rotation.maxBytes}`);
    if (!Number.isInteger(rotation.keep) || rotation.keep < 1)
      throw new RangeError(`audit log: keep must be a positive integer, got ${rotation.keep}`);
    await mkdir(dirname(path), { recursive: true });
    if (imagesDir) await mkdir(imagesDir, { recursive: true });
    return new AuditLog(path, openSync(path, "a"), imagesDir, rotation, onError);
  }

  /** Saves the image (when configured), then appends the line (rotating first when it would not fit). */
  async record(e: AuditEntry, image: Uint8Array): Promise<void> {
    if (this.#fd === null || this.#closing !== null) throw new Error(`audit log ${this.path} is closed`);
    this.#writing++;
    try {
      let file: string | undefined;
      if (this.imagesDir) {
        file = join(this.imagesDir, `${e.requestId}-${e.index}.${extensionOf(image)}`);
        await writeFile(file, image);
      }
      this.#append(`${JSON.stringify({ ...e, ...(file ? { image: file } : {}) })}\n`);
    } finally {
      if (--this.#writing === 0) this.#idle?.();
    }
  }

  #append(line: string): void {
    const bytes = Buffer.from(line);
    if (this.#size > 0 && this.#size + bytes.length > this.#rotateAt) this.#rotate();
    const fd = this.#fd;
    if (fd === null) throw new Error(`audit log ${this.path} is closed`);
    // One write(2) for the line; a short write (full disk) is completed, never left half.
    let done = writeSync(fd, bytes);
    while (done < bytes.length) done += writeSync(fd, bytes, done);
    this.#size += bytes.length;
    this.lines++;
  }

  #rotate(): void {
    const fd = this.#fd as number;
    const { keep, maxBytes } = this.rotation;
    const slot = (i: number): string => `${this.path}.${i}`;
    // Checked before anything moves, so a refused rotation leaves every file where it was.
    const blocked = [this.path, ...Array.from({ length: keep }, (_, i) => slot(i + 1))]
      .map((p) => ({ p, kind: kindAt(p) }))
      .find((x) => x.kind !== "none" && x.kind !== "file");
    if (blocked) {
      this.#rotateAt = this.#size + maxBytes;
      this.#onError(
        new Error(
          `audit log rotation skipped: ${blocked.p} is ${blocked.kind}, not a file this log wrote; ${basename(this.path)} keeps growing until it is moved away`,
        ),
      );
      return;
    }
    fsyncSync(fd);
    closeSync(fd);
    this.#fd = null;
    try {
      if (kindAt(slot(keep)) === "file") unlinkSync(slot(keep));
      for (let i = keep - 1; i >= 1; i--) if (kindAt(slot(i)) === "file") renameSync(slot(i), slot(i + 1));
      renameSync(this.path, slot(1));
      this.rotations++;
      this.#rotateAt = maxBytes;
    } catch (e) {
      this.#rotateAt = this.#size + maxBytes;
      this.#onError(new Error(`audit log rotation failed: ${(e as Error).message}; writing on in ${this.path}`));
    } finally {
      this.#fd = openSync(this.path, "a");
      this.#size = fstatSync(this.#fd).size;
    }
  }

  /** Takes no more lines, waits for those being recorded, flushes to disk and closes (graceful shutdown). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#writing > 0) await new Promise<void>((r) => (this.#idle = r));
      const fd = this.#fd;
      this.#fd = null;
      if (fd === null) return;
      fsyncSync(fd);
      closeSync(fd);
    })();
    return this.#closing;
  }
}
