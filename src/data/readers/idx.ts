// MNIST-family IDX files (Fashion-MNIST, MNIST, KMNIST...): a big-endian header, then raw bytes.
// Files may be gzipped (as distributed) or not (as extracted); gzip is detected by content, not by name.

import { access } from "node:fs/promises";
import { join } from "node:path";
import { assertConsistent, type ImageDataset, type ReadOptions, type Split } from "../dataset.js";
import { DatasetFormatError } from "../errors.js";
import { reshapeDataset } from "../transform.js";
import { MAX_IDX_BYTES, inflateIdx } from "./idx-inflate.js";
import { readDatasetFile } from "../read-dataset-file.js";

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

export function parseIdx(buf: Uint8Array, file: string, expectedMagic: number, expectedDims: number): IdxArray {
  const fail = (problem: string): never => {
    throw new DatasetFormatError("idx", file, problem);
  };
  const hex = (v: number): string => "0x" + v.toString(16).padStart(8, "0");
  if (buf.length < 4) fail(`truncated: ${buf.length} bytes, not even a header`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = view.getUint32(0);
  if (magic !== expectedMagic) fail(`magic number ${hex(expectedMagic)} expected, found ${hex(magic)}`);
  const ndims = magic & 0xff;
  if (ndims !== expectedDims) fail(`${expectedDims} dimensions expected, header says ${ndims}`);
  const headerBytes = 4 + 4 * ndims;
  if (buf.length < headerBytes) fail(`truncated: header needs ${headerBytes} bytes, file has ${buf.length}`);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  const have = buf.length - headerBytes;
  if (have < n) fail(`truncated: header declares ${dims.join("x")} = ${n} data bytes, found ${have}`);
  if (have > n) fail(`${have - n} unexpected bytes after the ${dims.join("x")} data the header declares`);
  return { dims, data: buf.subarray(headerBytes) };
}

/** The file's IDX bytes; gzip is inflated no further than the shape its header declares. */
export async function readMaybeGzipped(file: string, reader = "idx"): Promise<Uint8Array> {
  // An IDX file, gzipped or not, is never larger than the largest IDX data we inflate.
  const raw = await readDatasetFile(file, reader, MAX_IDX_BYTES);
  if (raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  return inflateIdx(raw, file, reader);
}

export interface IdxPair {
  images: string;
  labels: string;
}

/** The official names, the ".idx3-ubyte" spelling some mirrors use, each gzipped or not. */
export function idxCandidates(dir: string, split: Split): { images: string[]; labels: string[] } {
  const p = split === "train" ? "train" : "t10k";
  const names = (kind: string, rank: number): string[] =>
    [`${p}-${kind}-idx${rank}-ubyte`, `${p}-${kind}.idx${rank}-ubyte`]
      .flatMap((n) => [n + ".gz", n])
      .map((n) => join(dir, n));
  return { images: names("images", 3), labels: names("labels", 1) };
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const p of paths) {
    try {
      await access(p);
      return p;
    } catch {
      // try the next spelling
    }
  }
  return undefined;
}

export async function findIdxFiles(dir: string, split: Split): Promise<IdxPair> {
  const c = idxCandidates(dir, split);
  const images = await firstExisting(c.images);
  const labels = await firstExisting(c.labels);
  if (!images || !labels) {
    const missing = !images ? c.images : c.labels;
    throw new DatasetFormatError(
      "idx",
      dir,
      `no ${split} ${!images ? "image" : "label"} file; tried ${missing.join(", ")}`,
    );
  }
  return { images, labels };
}

export interface IdxDatasetOptions extends ReadOptions {
  name: string;
  classNames: string[];
}

export async function readIdxDataset(dir: string, opts: IdxDatasetOptions): Promise<ImageDataset> {
  const files = await findIdxFiles(dir, opts.split);
  const [imgBuf, lblBuf] = await Promise.all([readMaybeGzipped(files.images), readMaybeGzipped(files.labels)]);
  const images = parseIdx(imgBuf, files.images, IDX_IMAGES_MAGIC, 3);
  const labels = parseIdx(lblBuf, files.labels, IDX_LABELS_MAGIC, 1);
  const [count = 0, height = 0, width = 0] = images.dims;
  const labelCount = labels.dims[0] ?? 0;
  if (count !== labelCount) {
    throw new DatasetFormatError("idx", files.labels, `${labelCount} labels but ${files.images} has ${count} images`);
  }
  const k = opts.classNames.length;
  const y = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const v = labels.data[i] ?? 0;
    if (v >= k) throw new DatasetFormatError("idx", files.labels, `label ${v} at index ${i} is outside 0..${k - 1}`);
    y[i] = v;
  }
  // Copy so the (possibly much larger) decompressed file buffer can be freed.
  const ds: ImageDataset = {
    name: opts.name,
    split: opts.split,
    images: new Uint8Array(images.data),
    labels: y,
    count,
    height,
    width,
    channels: 1,
    classNames: [...opts.classNames],
    source: dir,
  };
  assertConsistent(ds);
  return reshapeDataset(ds, { imageSize: opts.imageSize, channels: opts.channels }, opts.progress ?? true);
}
