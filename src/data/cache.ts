// Decoded datasets on disk, so a second load reads one file instead of decoding tens of thousands of images.
// File layout: 8-byte magic, u32 LE header length, UTF-8 JSON header, zero padding to a multiple of 8, image bytes,
// labels as int32 LE. The header carries the full key and a SHA-256 of the payload: a file is used only if every
// field checks out, otherwise it is reported, ignored and rebuilt.

import { createHash, randomBytes } from "node:crypto";
import { readdirSync, statSync } from "node:fs";
import { mkdir, open, rename, unlink, type FileHandle } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { ImageDataset, Split } from "./dataset.js";

const MAGIC = Buffer.from("BXDSET01", "latin1");
/** Bump when decoding changes in a way that makes older cache files wrong. */
export const CACHE_FORMAT_VERSION = 1;

interface CacheHeader {
  version: number;
  key: string;
  name: string;
  split: Split;
  count: number;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  source: string;
  imageBytes: number;
  labelBytes: number;
  sha256: string;
}

export function defaultCacheDir(): string {
  const explicit = process.env["BADEXPERT_CACHE"];
  if (explicit) return resolve(explicit);
  const xdg = process.env["XDG_CACHE_HOME"];
  return join(xdg ? resolve(xdg) : join(homedir(), ".cache"), "badexpert", "datasets");
}

/**
 * Size and mtime of `path`, or of every file below it, so that editing, adding or removing any input file
 * changes the key. Synchronous on purpose: for a 60,000-file folder, statSync takes about 0.3 s where the
 * promise API spends over a second handing each call to the thread pool; either is far less than decoding.
 */
export function fingerprintPath(path: string): string {
  const abs = resolve(path);
  const top = statSync(abs);
  if (!top.isDirectory()) return createHash("sha256").update(`${top.size}\0${top.mtimeMs}`).digest("hex");
  const lines: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = join(dir, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      const s = e.isDirectory() ? undefined : statSync(full);
      if (e.isDirectory() || s?.isDirectory()) walk(full, r);
      else if (s) lines.push(`${r}\0${s.size}\0${s.mtimeMs}\n`);
    }
  };
  walk(abs, "");
  lines.sort();
  const hash = createHash("sha256");
  for (const l of lines) hash.update(l);
  return hash.digest("hex");
}

export interface CacheKeyParts {
  reader: string;
  source: string;
  split: Split;
  options: Record<string, unknown>;
}

export function cacheKey(parts: CacheKeyParts): string {
  const source = resolve(parts.source);
  const sortedOptions = Object.fromEntries(
    Object.entries(parts.options)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return JSON.stringify({
    v: CACHE_FORMAT_VERSION,
    reader: parts.reader,
    source,
    split: parts.split,
    options: sortedOptions,
    files: fingerprintPath(source),
  });
}

export function cacheFilePath(dir: string, name: string, split: Split, key: string): string {
  const digest = createHash("sha256").update(key).digest("hex").slice(0, 20);
  return join(dir, `${name.replace(/[^A-Za-z0-9_.-]/g, "_")}-${split}-${digest}.bin`);
}

function payloadHash(images: Uint8Array, labels: Uint8Array): string {
  return createHash("sha256").update(images).update(labels).digest("hex");
}

function labelsToLE(labels: Int32Array): Uint8Array {
  const out = new Uint8Array(labels.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < labels.length; i++) view.setInt32(4 * i, labels[i] ?? 0, true);
  return out;
}

export type Warn = (message: string) => void;
export const warnToStderr: Warn = (m) => process.stderr.write(`badexpert: ${m}\n`);

/** Writes via a temporary file and rename, so readers never see a half-written cache file. */
export async function writeCache(file: string, key: string, ds: ImageDataset): Promise<void> {
  const labelBytes = labelsToLE(ds.labels);
  const header: CacheHeader = {
    version: CACHE_FORMAT_VERSION,
    key,
    name: ds.name,
    split: ds.split,
    count: ds.count,
    height: ds.height,
    width: ds.width,
    channels: ds.channels,
    classNames: ds.classNames,
    source: ds.source,
    imageBytes: ds.images.length,
    labelBytes: labelBytes.length,
    sha256: payloadHash(ds.images, labelBytes),
  };
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(align8(MAGIC.length + 4 + json.length));
  MAGIC.copy(prefix, 0);
  prefix.writeUInt32LE(json.length, MAGIC.length);
  json.copy(prefix, MAGIC.length + 4);

  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "w");
  // No fsync: a file torn by a crash fails the checksum on the next read and is rebuilt, so durability buys nothing.
  try {
    let position = 0;
    for (const part of [prefix, ds.images, labelBytes]) {
      await writeFully(fh, part, position);
      position += part.length;
    }
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/** One write() moves at most about 2 GB on Linux, so large datasets need the loop. */
async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await fh.write(data, off, Math.min(data.length - off, 1 << 30), position + off);
    off += bytesWritten;
  }
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

class CorruptCache extends Error {}

/**
 * The cached dataset, or undefined when there is no usable file. A file that exists but fails any check is
 * reported through `warn` and deleted so it is rebuilt.
 */
export async function readCache(
  file: string,
  key: string,
  warn: Warn = warnToStderr,
): Promise<ImageDataset | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(file, "r");
  } catch {
    return undefined;
  }
  try {
    const size = (await fh.stat()).size;
    const fixed = Buffer.alloc(MAGIC.length + 4);
    const bad = (why: string): never => {
      throw new CorruptCache(why);
    };
    if ((await fh.read(fixed, 0, fixed.length, 0)).bytesRead !== fixed.length) bad("shorter than its header");
    if (!fixed.subarray(0, MAGIC.length).equals(MAGIC)) bad("bad magic");
    const jsonLength = fixed.readUInt32LE(MAGIC.length);
    if (jsonLength > 16 * 1024 * 1024 || fixed.length + jsonLength > size) bad("header length out of range");
    const json = Buffer.alloc(jsonLength);
    if ((await fh.read(json, 0, jsonLength, fixed.length)).bytesRead !== jsonLength) bad("truncated header");
    let parsed: unknown;
    try {
      parsed = JSON.parse(json.toString("utf8"));
    } catch {
      bad("header is not JSON");
    }
    const h = checkHeader(parsed) ?? bad("header fields missing or mistyped");
    if (h.version !== CACHE_FORMAT_VERSION) bad(`format version ${h.version}`);
    if (h.key !== key) bad("key mismatch (hash collision or renamed file)");
    const per = h.height * h.width * h.channels;
    if (h.imageBytes !== h.count * per || h.labelBytes !== 4 * h.count) bad("sizes disagree with the shape");
    const dataStart = align8(fixed.length + jsonLength);
    if (size !== dataStart + h.imageBytes + h.labelBytes)
      bad(`file is ${size} bytes, header implies ${dataStart + h.imageBytes + h.labelBytes}`);

    const images = new Uint8Array(h.imageBytes);
    const labelBytes = new Uint8Array(h.labelBytes);
    await readFully(fh, images, dataStart);
    await readFully(fh, labelBytes, dataStart + h.imageBytes);
    if (payloadHash(images, labelBytes) !== h.sha256) bad("checksum mismatch");
    const view = new DataView(labelBytes.buffer);
    const labels = new Int32Array(h.count);
    for (let i = 0; i < h.count; i++) {
      const y = view.getInt32(4 * i, true);
      if (y < 0 || y >= h.classNames.length) bad(`label ${y} out of range`);
      labels[i] = y;
    }
    return {
      name: h.name,
      split: h.split,
      images,
      labels,
      count: h.count,
      height: h.height,
      width: h.width,
      channels: h.channels,
      classNames: h.classNames,
      source: h.source,
    };
  } catch (e) {
    if (!(e instanceof CorruptCache)) throw e;
    warn(`ignoring corrupt dataset cache ${file} (${e.message}); rebuilding it`);
    await unlink(file).catch(() => undefined);
    return undefined;
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, into: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < into.length) {
    const { bytesRead } = await fh.read(into, off, Math.min(into.length - off, 1 << 30), position + off);
    if (bytesRead === 0) throw new CorruptCache("unexpected end of file");
    off += bytesRead;
  }
}

function checkHeader(v: unknown): CacheHeader | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = new Map(Object.entries(v));
  const int = (k: string): number => {
    const x = o.get(k);
    return typeof x === "number" && Number.isSafeInteger(x) && x >= 0 ? x : NaN;
  };
  const str = (k: string): string | undefined => {
    const x = o.get(k);
    return typeof x === "string" ? x : undefined;
  };
  const split = o.get("split");
  const classNames = o.get("classNames");
  const h = {
    version: int("version"),
    key: str("key"),
    name: str("name"),
    split: split === "train" || split === "test" ? split : undefined,
    count: int("count"),
    height: int("height"),
    width: int("width"),
    channels: int("channels"),
    classNames:
      Array.isArray(classNames) && classNames.every((c): c is string => typeof c === "string") ? classNames : undefined,
    source: str("source"),
    imageBytes: int("imageBytes"),
    labelBytes: int("labelBytes"),
    sha256: str("sha256"),
  };
  const { key, name, split: sp, classNames: cn, source, sha256 } = h;
  if (key === undefined || name === undefined || sp === undefined || cn === undefined) return undefined;
  if (source === undefined || sha256 === undefined) return undefined;
  const nums = [h.version, h.count, h.height, h.width, h.channels, h.imageBytes, h.labelBytes];
  if (nums.some((n) => Number.isNaN(n))) return undefined;
  return { ...h, key, name, split: sp, classNames: cn, source, sha256 };
}
