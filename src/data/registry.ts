// The datasets the toolkit knows by name: how to read each, where it usually lives, and its normalisation
// constants. loadDataset() is the one entry point the CLI and training code should use.

import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { cacheFilePath, cacheKey, defaultCacheDir, readCache, warnToStderr, writeCache, type Warn } from "./cache.js";
import {
  parseImageSize,
  type ChannelCount,
  type ImageDataset,
  type ImageSize,
  type ReadOptions,
  type Split,
} from "./dataset.js";
import { errorMessage } from "./errors.js";
import { CIFAR10_CLASSES, readCifar10Binary } from "./readers/cifar10-binary.js";
import { GTSRB_DEFAULT_SIZE, GTSRB_NUM_CLASSES, readGtsrb } from "./readers/gtsrb.js";
import { readIdxDataset } from "./readers/idx.js";
import { readArrayFile } from "./readers/array-file.js";
import { readImageFolder } from "./readers/image-folder.js";
import { BadExpertError } from "../util/errors.js";

export const MNIST_CLASSES = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

export interface DatasetInfo {
  name: string;
  description: string;
  /** What `path` should point at, for error messages and --help. */
  pathHint: string;
  defaultPath?: string;
  /** Undefined when the data decides (image-folder). */
  numClasses?: number;
  /** Size and channels produced when no imageSize/channels are given (undefined: the images' own size). */
  imageSize?: ImageSize;
  channels: ChannelCount;
  /** Per-channel normalisation constants in 0..1 units, for the default channel count. */
  mean?: number[];
  std?: number[];
  read(path: string, opts: ReadOptions): Promise<ImageDataset>;
}

const REGISTRY: readonly DatasetInfo[] = [
  {
    name: "mnist",
    description: "MNIST handwritten digits, official IDX files (gzipped or not), 28x28 grey, 60,000/10,000",
    pathHint: "the folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*",
    numClasses: 10,
    imageSize: { height: 28, width: 28 },
    channels: 1,
    mean: [0.1307],
    std: [0.3081],
    read: (path, opts) => readIdxDataset(path, { ...opts, name: "mnist", classNames: MNIST_CLASSES }),
  },
  {
    name: "fashion-mnist",
    description: "Fashion-MNIST, official IDX files (gzipped or not), 28x28 grey, 60,000/10,000",
    pathHint: "the folder holding train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-*",
    // Debian's dataset-fashion-mnist package installs the official files here.
    defaultPath: "/usr/share/datasets/fashion-mnist",
    numClasses: 10,
    imageSize: { height: 28, width: 28 },
    channels: 1,
    mean: [0.286],
    std: [0.353],
    read: (path, opts) => readIdxDataset(path, { ...opts, name: "fashion-mnist", classNames: FASHION_MNIST_CLASSES }),
  },
  {
    name: "cifar10",
    description: "CIFAR-10, official binary version (data_batch_1..5.bin, test_batch.bin), 32x32 RGB, 50,000/10,000",
    pathHint: "cifar-10-batches-bin/ (or its parent), or cifar-10-binary.tar.gz",
    numClasses: 10,
    imageSize: { height: 32, width: 32 },
    channels: 3,
    mean: [0.4914, 0.4822, 0.4465],
    std: [0.247, 0.2435, 0.2616],
    read: (path, opts) => readCifar10Binary(path, { ...opts, name: "cifar10" }),
  },
  {
    name: "cifar10-folder",
    description: "CIFAR-10 as images: <root>/{train,test}/<class>/*.{jpg,png}, a folder or a .tar.gz of one",
    pathHint: "a folder with train/<class>/ and test/<class>/, or a .tar/.tar.gz of it",
    numClasses: 10,
    channels: 3,
    // The binary version's constants; a lossy JPEG copy differs from them by well under 0.01.
    mean: [0.4914, 0.4822, 0.4465],
    std: [0.247, 0.2435, 0.2616],
    read: (path, opts) => readImageFolder(path, { ...opts, name: "cifar10-folder", expectClasses: CIFAR10_CLASSES }),
  },
  {
    name: "gtsrb",
    description:
      "GTSRB traffic signs, official layout (Final_Training, Final_Test + GT-final_test.csv), resized (default 32x32)",
    pathHint: "the GTSRB folder, its parent, or a .tar/.tar.gz of it",
    numClasses: GTSRB_NUM_CLASSES,
    imageSize: GTSRB_DEFAULT_SIZE,
    channels: 3,
    // channelStats() over the 39,209 training images at 32x32 RGB (the shared gtsrb-32.tar.gz copy, whose images
    // were resized by its uploader), rounded to 4 places.
    mean: [0.3398, 0.3117, 0.321],
    std: [0.2755, 0.2647, 0.2712],
    read: (path, opts) => readGtsrb(path, { ...opts, name: "gtsrb" }),
  },
  {
    name: "image-folder",
    description: "any <root>[/<split>]/<class>/<image> tree (JPEG, PNG, PPM, WebP...), a folder or a .tar/.tar.gz",
    pathHint: "a folder with <class>/ sub-folders, or with train/<class>/ and test/<class>/ (val/ also accepted)",
    channels: 3,
    read: (path, opts) => readImageFolder(path, { ...opts, name: "image-folder" }),
  },
  {
    name: "array",
    description:
      "NumPy arrays: a .npz with x (images) and y (labels), or a .npy with <name>.labels.npy; uint8 NHWC or float NCHW in 0..1",
    pathHint: "a .npz file, or a .npy file with its <name>.labels.npy",
    channels: 3,
    read: (path, opts) => readArrayFile(path, { ...opts, name: "array" }),
  },
];

export function datasetNames(): string[] {
  return REGISTRY.map((d) => d.name);
}

export function datasetInfo(name: string): DatasetInfo {
  const info = REGISTRY.find((d) => d.name === name);
  if (!info)
    throw new BadExpertError("E_USAGE", `unknown dataset '${name}'; valid names: ${datasetNames().join(", ")}`);
  return info;
}

export interface LoadOptions {
  split: Split;
  /** Defaults to the registry's default path where there is one. */
  path?: string;
  /** A side length, [height, width], or {height, width}. */
  imageSize?: number | readonly [number, number] | ImageSize;
  channels?: ChannelCount;
  /** Use and fill the on-disk cache; default true. */
  cache?: boolean;
  /** Default: $BADEXPERT_CACHE, else $XDG_CACHE_HOME/badexpert/datasets, else ~/.cache/badexpert/datasets. */
  cacheDir?: string;
  /** Progress lines on stderr for slow decodes; default true. */
  progress?: boolean;
  /** Where cache warnings go; default stderr. */
  warn?: Warn;
}

export async function loadDataset(name: string, opts: LoadOptions): Promise<ImageDataset> {
  const info = datasetInfo(name);
  if (opts.split !== "train" && opts.split !== "test") {
    throw new BadExpertError("E_USAGE", `split must be "train" or "test", got ${JSON.stringify(opts.split)}`);
  }
  if (opts.channels !== undefined && opts.channels !== 1 && opts.channels !== 3) {
    throw new BadExpertError("E_USAGE", `channels must be 1 or 3, got ${String(opts.channels)}`);
  }
  const given = opts.path ?? info.defaultPath;
  if (given === undefined) {
    throw new BadExpertError("E_USAGE", `dataset '${name}' has no default location; pass its path (${info.pathHint})`);
  }
  const path = resolve(given);
  try {
    await stat(path);
  } catch {
    const what = opts.path === undefined ? "its default path" : "the given path";
    throw new BadExpertError(
      "E_DATA",
      `dataset '${name}': ${path} (${what}) does not exist; pass the path of ${info.pathHint}`,
    );
  }

  const imageSize = opts.imageSize === undefined ? undefined : parseImageSize(opts.imageSize);
  const read: ReadOptions = { split: opts.split, progress: opts.progress ?? true };
  if (imageSize) read.imageSize = imageSize;
  if (opts.channels) read.channels = opts.channels;
  if (opts.cache === false) return info.read(path, read);

  const warn = opts.warn ?? warnToStderr;
  const { key, file } = cacheLocation(name, path, opts.split, imageSize, opts.channels, opts.cacheDir);
  const cached = await readCache(file, key, warn);
  if (cached) return cached;
  const ds = await info.read(path, read);
  try {
    await writeCache(file, key, ds);
  } catch (e) {
    warn(`could not write dataset cache ${file}: ${errorMessage(e)}`);
  }
  return ds;
}

function cacheLocation(
  name: string,
  path: string,
  split: Split,
  imageSize: ImageSize | undefined,
  channels: ChannelCount | undefined,
  cacheDir: string | undefined,
): { key: string; file: string } {
  const key = cacheKey({
    reader: name,
    source: path,
    split,
    options: { imageSize: imageSize ? `${imageSize.height}x${imageSize.width}` : undefined, channels },
  });
  return { key, file: cacheFilePath(cacheDir ?? defaultCacheDir(), name, split, key) };
}

/** Where loadDataset keeps (or would keep) the cache file for these options; for tests and cache tools. */
export function datasetCacheFile(name: string, opts: LoadOptions): string {
  const info = datasetInfo(name);
  const path = resolve(opts.path ?? info.defaultPath ?? ".");
  const imageSize = opts.imageSize === undefined ? undefined : parseImageSize(opts.imageSize);
  return cacheLocation(name, path, opts.split, imageSize, opts.channels, opts.cacheDir).file;
}
