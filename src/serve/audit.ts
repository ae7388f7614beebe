// The audit log: one JSON line per flagged input, appended with one write(2) on an O_APPEND
// descriptor before the answer goes out, so a crash loses at most the line being written and
// concurrent lines never interleave. With an image directory, the uploaded bytes are saved
// first and the line names the file.
import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

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

function extensionOf(b: Uint8Array): string {
  if (b[0] === 0x89 && b[1] === 0x50) return "png";
  if (b[0] === 0xff && b[1] === 0xd8) return "jpg";
  if (b[0] === 0x52 && b[1] === 0x49 && b[8] === 0x57) return "webp";
  if (b[0] === 0x47 && b[1] === 0x49) return "gif";
  if ((b[0] === 0x49 && b[1] === 0x49) || (b[0] === 0x4d && b[1] === 0x4d)) return "tiff";
  if (b[0] === 0x50 && (b[1] === 0x35 || b[1] === 0x36)) return "pnm";
  return "bin";
}

export class AuditLog {
  readonly path: string;
  readonly imagesDir: string | null;
  #fd: number | null;
  /** Lines written since start (a metric and a test hook). */
  lines = 0;

  private constructor(path: string, fd: number, imagesDir: string | null) {
    this.path = path;
    this.#fd = fd;
    this.imagesDir = imagesDir;
  }

  static async open(path: string, imagesDir: string | null): Promise<AuditLog> {
    await mkdir(dirname(path), { recursive: true });
    if (imagesDir) await mkdir(imagesDir, { recursive: true });
    return new AuditLog(path, openSync(path, "a"), imagesDir);
  }

  /** Saves the image (when configured), then appends the line. */
  async record(e: AuditEntry, image: Uint8Array): Promise<void> {
    let file: string | undefined;
    if (this.imagesDir) {
      file = join(this.imagesDir, `${e.requestId}-${e.index}.${extensionOf(image)}`);
      await writeFile(file, image);
    }
    if (this.#fd === null) throw new Error(`audit log ${this.path} is closed`);
    writeSync(this.#fd, `${JSON.stringify({ ...e, ...(file ? { image: file } : {}) })}\n`);
    this.lines++;
  }

  /** Flushes to disk and closes (graceful shutdown). */
  close(): void {
    if (this.#fd === null) return;
    fsyncSync(this.#fd);
    closeSync(this.#fd);
    this.#fd = null;
  }
}
