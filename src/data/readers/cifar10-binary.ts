// CIFAR-10 "binary version": records of 1 label byte + 3072 pixel bytes stored plane by plane (all R, then G,
// then B, each 32x32 row-major). Reads the extracted cifar-10-batches-bin folder, its parent, or the official
// cifar-10-binary.tar.gz directly.

import { stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { assertConsistent, type ImageDataset, type ReadOptions, type Split } from "../dataset.js";
import { DatasetFormatError } from "../errors.js";
import { isArchivePath, memberName, scanTree } from "../file-tree.js";
import { reshapeDataset } from "../transform.js";
import { readDatasetFile } from "../read-dataset-file.js";
import { FileReadError } from "../../util/read-regular-file.js";

export const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];
const SIDE = 32;
const PLANE = SIDE * SIDE;
export const CIFAR_RECORD_BYTES = 1 + 3 * PLANE;

export function cifarBatchNames(split: Split): string[] {
  return split === "train" ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`) : ["test_batch.bin"];
}

/** Number of records in a batch file, after checking its size. */
export function cifarRecordCount(bytes: number, file: string): number {
  if (bytes === 0) throw new DatasetFormatError("cifar10", file, "is empty");
  if (bytes % CIFAR_RECORD_BYTES !== 0) {
    throw new DatasetFormatError(
      "cifar10",
      file,
      `size ${bytes} is not a multiple of the ${CIFAR_RECORD_BYTES}-byte record`,
    );
  }
  return bytes / CIFAR_RECORD_BYTES;
}

/** Decodes `data`'s records into NHWC `images` / `labels` starting at record `first`. */
export function decodeCifarBatch(
  data: Uint8Array,
  file: string,
  images: Uint8Array,
  labels: Int32Array,
  first: number,
  numClasses = 10,
): number {
  const n = cifarRecordCount(data.length, file);
  for (let r = 0; r < n; r++) {
    const base = r * CIFAR_RECORD_BYTES;
    const y = data[base] ?? 0;
    if (y >= numClasses) {
      throw new DatasetFormatError("cifar10", file, `label byte ${y} of record ${r} is outside 0..${numClasses - 1}`);
    }
    labels[first + r] = y;
    const out = (first + r) * 3 * PLANE;
    const red = base + 1;
    for (let p = 0; p < PLANE; p++) {
      images[out + 3 * p] = data[red + p] ?? 0;
      images[out + 3 * p + 1] = data[red + PLANE + p] ?? 0;
      images[out + 3 * p + 2] = data[red + 2 * PLANE + p] ?? 0;
    }
  }
  return n;
}

export function parseCifarMeta(text: string, file: string): string[] {
  const names = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (names.length !== 10)
    throw new DatasetFormatError("cifar10", file, `expected 10 class names, found ${names.length}`);
  return names;
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** The folder holding the .bin files: `path` itself or its `cifar-10-batches-bin` child. */
export async function resolveCifarFolder(path: string, split: Split): Promise<string> {
  const first = cifarBatchNames(split)[0] ?? "";
  for (const dir of [path, join(path, "cifar-10-batches-bin")]) if (await exists(join(dir, first))) return dir;
  const hint =
    (await exists(join(path, "train"))) || (await exists(join(path, "test")))
      ? " (this looks like an image-folder copy: use the 'cifar10-folder' dataset)"
      : "";
  throw new DatasetFormatError("cifar10", path, `no ${first} here or in ${join(path, "cifar-10-batches-bin")}${hint}`);
}

export async function readCifar10Binary(path: string, opts: ReadOptions & { name?: string }): Promise<ImageDataset> {
  const wanted = cifarBatchNames(opts.split);
  const files = new Map<string, { data: Uint8Array; file: string }>();
  let meta: { text: string; file: string } | undefined;
  let source = path;
  if (isArchivePath(path)) {
    const want = new Set([...wanted, "batches.meta.txt"]);
    await scanTree(
      path,
      {
        select: (rel) => want.has(basename(rel)),
        onFile: (rel, data) => {
          const name = basename(rel);
          const prev = name === "batches.meta.txt" ? meta?.file : files.get(name)?.file;
          if (prev) throw new DatasetFormatError("cifar10", path, `two members named ${name}: ${prev} and ${rel}`);
          if (name === "batches.meta.txt") meta = { text: data.toString("utf8"), file: memberName(path, rel) };
          else files.set(name, { data, file: memberName(path, rel) });
        },
      },
      { progressLabel: `reading ${path}`, progress: opts.progress ?? true },
    );
    for (const name of wanted)
      if (!files.has(name)) throw new DatasetFormatError("cifar10", path, `archive has no ${name}`);
  } else {
    const dir = await resolveCifarFolder(path, opts.split);
    source = dir;
    for (const name of wanted) {
      const file = join(dir, name);
      const data = await readDatasetFile(file, "cifar10").catch((e: unknown) => {
        // A device or a pipe is said as such; anything else keeps the short message.
        const cause = e instanceof DatasetFormatError ? e.cause : undefined;
        const why =
          cause instanceof FileReadError && (cause.reason === "ETYPE" || cause.reason === "ESIZE")
            ? cause.problem
            : "missing or unreadable";
        throw new DatasetFormatError("cifar10", file, why, { cause: e });
      });
      files.set(name, { data, file });
    }
    const metaFile = join(dir, "batches.meta.txt");
    // The class names: a few hundred bytes.
    if (await exists(metaFile))
      meta = { text: (await readDatasetFile(metaFile, "cifar10", 1024 * 1024)).toString("utf8"), file: metaFile };
  }

  const classNames = meta ? parseCifarMeta(meta.text, meta.file) : [...CIFAR10_CLASSES];
  const batches = wanted.map((n) => files.get(n) as { data: Uint8Array; file: string });
  const count = batches.reduce((a, b) => a + cifarRecordCount(b.data.length, b.file), 0);
  const images = new Uint8Array(count * 3 * PLANE);
  const labels = new Int32Array(count);
  let at = 0;
  for (const b of batches) at += decodeCifarBatch(b.data, b.file, images, labels, at, classNames.length);
  const ds: ImageDataset = {
    name: opts.name ?? "cifar10",
    split: opts.split,
    images,
    labels,
    count,
    height: SIDE,
    width: SIDE,
    channels: 3,
    classNames,
    source,
  };
  assertConsistent(ds);
  return reshapeDataset(ds, { imageSize: opts.imageSize, channels: opts.channels }, opts.progress ?? true);
}
