// A dataset laid out as files can come as a folder or as a tar archive (optionally gzip-compressed). Readers see
// both as a stream of (relative path, bytes) so an archive is never extracted to disk, and only the members a
// reader asks for are held in memory, a bounded number at a time.

import { readdir, realpath, stat } from "node:fs/promises";
import { join } from "node:path";
import { Parser, type ReadEntry } from "tar";
import { forEachLimit, TaskLimiter } from "./concurrency.js";
import { DatasetFormatError, errorMessage } from "./errors.js";
import { progressReporter } from "./progress.js";
import { MAX_DATASET_FILE_BYTES, readDatasetFileSync } from "./read-dataset-file.js";
import { FileReadError, openRegularFile } from "../util/read-regular-file.js";

export interface TreeScan {
  /** Called for every regular file (path relative to the root, '/'-separated); true to receive its bytes. */
  select(rel: string): boolean;
  /** Receives selected files; several calls may run at once (up to `concurrency`). */
  onFile(rel: string, data: Buffer): Promise<void> | void;
}

export interface ScanOptions {
  concurrency?: number;
  progressLabel?: string;
  progress?: boolean;
  /** For folders: the listing (from `listFiles`) when the caller already has it. */
  files?: string[];
}

const ARCHIVE = /\.(tar|tar\.gz|tgz)$/i;

export function isArchivePath(path: string): boolean {
  return ARCHIVE.test(path);
}

/** How errors should name a file inside `root` (a folder or an archive). */
export function memberName(root: string, rel: string): string {
  return isArchivePath(root) ? `${root}:${rel}` : join(root, rel);
}

/** Hidden files and macOS archive debris ("._x.jpg", "__MACOSX/") are never dataset members. */
export function isJunkPath(rel: string): boolean {
  return rel.split("/").some((s) => s.startsWith(".") || s === "__MACOSX");
}

export async function scanTree(root: string, scan: TreeScan, opts: ScanOptions = {}): Promise<void> {
  const info = await stat(root).catch((e: unknown) => {
    throw new DatasetFormatError(
      "files",
      root,
      `cannot open (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`,
      { cause: e },
    );
  });
  const select = scan.select.bind(scan);
  scan = { select: (rel) => !isJunkPath(rel) && select(rel), onFile: scan.onFile.bind(scan) };
  if (info.isDirectory()) await scanDirectory(root, scan, opts);
  else if (isArchivePath(root)) await scanArchive(root, scan, opts);
  else throw new DatasetFormatError("files", root, "expected a folder or a .tar/.tar.gz/.tgz archive");
}

/**
 * Relative paths of every regular file below `root`, symlinks followed. A symlink that points
 * back into a folder being walked (a loop) or nowhere (dangling) is an error naming it: followed,
 * a loop lists every file dozens of times; skipped, a dangling link silently drops images.
 */
export async function listFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, prefix: string, ancestors: ReadonlySet<string>): Promise<void> => {
    const here = await realpath(dir);
    const inside = new Set(ancestors).add(here);
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      const path = join(dir, e.name);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const s = await stat(path).catch((err: unknown) => {
          const code = (err as NodeJS.ErrnoException).code;
          const why =
            code === "ENOENT"
              ? "a dangling symlink (its target does not exist)"
              : code === "ELOOP"
                ? "a symlink loop"
                : `a symlink that cannot be followed (${code ?? errorMessage(err)})`;
          throw new DatasetFormatError("files", path, why, { cause: err });
        });
        isDir = s.isDirectory();
        isFile = s.isFile();
        if (isDir && inside.has(await realpath(path))) {
          throw new DatasetFormatError(
            "files",
            path,
            `a symlink loop: it points back to ${await realpath(path)}, a folder that contains it`,
          );
        }
      }
      if (isDir) await walk(path, rel, inside);
      else if (isFile) out.push(rel);
    }
  };
  await walk(root, "", new Set());
  return out;
}

async function scanDirectory(root: string, scan: TreeScan, opts: ScanOptions): Promise<void> {
  const wanted = (opts.files ?? (await listFiles(root))).filter((rel) => scan.select(rel));
  const progress = progressReporter(opts.progressLabel ?? root, wanted.length, opts.progress);
  let done = 0;
  await forEachLimit(wanted, opts.concurrency ?? 8, async (rel) => {
    // Sync read: dataset files are small, and the promise API's four thread-pool round trips per file compete
    // with sharp for the same pool (reading GTSRB from a folder took about twice as long that way).
    // Checked on the open handle too: the listing saw a regular file, but the path may have changed since.
    await scan.onFile(rel, readDatasetFileSync(join(root, rel), "files"));
    progress.update(++done);
  });
  progress.finish();
}

function normaliseMemberPath(p: string): string {
  return p.replace(/^(\.\/)+/, "").replace(/\/+/g, "/");
}

async function scanArchive(archive: string, scan: TreeScan, opts: ScanOptions): Promise<void> {
  // A FIFO or a device named like an archive would block the stream or never end: opened and checked first.
  let opened;
  try {
    opened = await openRegularFile(archive, { maxBytes: Number.MAX_SAFE_INTEGER, what: "archive" });
  } catch (e) {
    throw new DatasetFormatError("archive", archive, e instanceof FileReadError ? e.problem : errorMessage(e), {
      cause: e,
    });
  }
  const { handle, size } = opened;
  const limiter = new TaskLimiter(opts.concurrency ?? 8);
  const progress = progressReporter(opts.progressLabel ?? archive, size, opts.progress);
  let parseError: Error | undefined;
  const onEntry = (entry: ReadEntry): void => {
    const rel = normaliseMemberPath(entry.path);
    if ((entry.type !== "File" && entry.type !== "OldFile" && entry.type !== "ContiguousFile") || !scan.select(rel)) {
      entry.resume();
      return;
    }
    if (entry.size > MAX_DATASET_FILE_BYTES) {
      parseError ??= new Error(
        `member ${rel} is ${entry.size} bytes, over the ${MAX_DATASET_FILE_BYTES}-byte limit for one dataset file`,
      );
      entry.resume();
      return;
    }
    const chunks: Buffer[] = [];
    entry.on("data", (c: Buffer) => chunks.push(c));
    entry.on("end", () => {
      const data = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      if (data.length !== entry.size) {
        parseError ??= new Error(`member ${rel} is truncated (${data.length} of ${entry.size} bytes)`);
        return;
      }
      limiter.start(async () => {
        await scan.onFile(rel, data);
      });
    });
  };
  // strict: a truncated or corrupt archive must fail rather than silently yield fewer images.
  const parser = new Parser({ strict: true, onReadEntry: onEntry });
  const ended = new Promise<void>((resolve, reject) => {
    parser.on("end", () => resolve());
    parser.on("error", (e: Error) => reject(e));
  });
  ended.catch(() => undefined);
  parser.on("error", (e: Error) => (parseError ??= e));

  const fail = (e: unknown): never => {
    throw new DatasetFormatError("archive", archive, errorMessage(e), { cause: e });
  };
  try {
    // The stream closes the handle when it ends or is destroyed.
    const input = handle.createReadStream({ highWaterMark: 256 * 1024 });
    for await (const chunk of input) {
      parser.write(chunk as Buffer);
      if (parseError) fail(parseError);
      progress.update(input.bytesRead);
      await limiter.waitForSlot();
    }
    parser.end();
    if (parseError) fail(parseError);
    await ended;
  } catch (e) {
    if (e instanceof DatasetFormatError) throw e;
    fail(e);
  }
  if (parseError) fail(parseError);
  await limiter.drain();
  progress.finish();
}
