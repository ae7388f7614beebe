// "Image folder" datasets (torchvision ImageFolder style): root/<class>/<image>, or root/<split>/<class>/<image>
// with split folders named train / test (aliases: training; val, validation, testing). Classes are the sorted
// class-folder names (code-unit order, like Python's sorted), so train and test agree on label indices; within a
// class, files are in natural order ("2.jpg" before "10.jpg"). Works on a folder or a .tar/.tar.gz streamed
// without extraction.

import { stat } from "node:fs/promises";
import { assertConsistent, type ImageDataset, type ReadOptions, type Split } from "../dataset.js";
import { DatasetFormatError } from "../errors.js";
import { isArchivePath, listFiles, memberName, scanTree } from "../file-tree.js";
import { copyBytes, decodeImage, isImageFile } from "../image-decode.js";
import { codeUnitCompare, naturalCompare } from "../natural-sort.js";

const SPLIT_DIRS: Record<Split, string[]> = {
  train: ["train", "training"],
  test: ["test", "val", "validation", "testing"],
};
const ANY_SPLIT = new Set([...SPLIT_DIRS.train, ...SPLIT_DIRS.test]);

export interface ImageFolderOptions extends ReadOptions {
  name?: string;
  /** When given, the class folders found must be exactly these (any order); labels still follow sorted order. */
  expectClasses?: string[];
}

interface Member {
  rel: string;
  cls: string;
  file: string;
  /** Everything above the class folder, split folder included. */
  parent: string;
}

function splitOf(rel: string): { segs: string[]; splitDir: string | undefined } {
  const segs = rel.split("/");
  const s = segs.length >= 3 ? segs[segs.length - 3]?.toLowerCase() : undefined;
  return { segs, splitDir: s !== undefined && ANY_SPLIT.has(s) ? s : undefined };
}

function member(rel: string, segs: string[]): Member {
  return {
    rel,
    cls: segs[segs.length - 2] ?? "",
    file: segs[segs.length - 1] ?? "",
    parent: segs.slice(0, segs.length - 2).join("/"),
  };
}

/** Chooses the files of `split`, one path at a time, so it works while an archive streams by. */
class LayoutSelector {
  readonly selected: Member[] = [];
  /** Class folders seen under each dataset root, across all splits (split layout only). */
  readonly classesByRoot = new Map<string, Set<string>>();
  sawSplitFolders = false;
  sawImages = false;

  constructor(
    private readonly split: Split,
    private readonly splitless: boolean,
  ) {}

  select(rel: string): boolean {
    if (!isImageFile(rel)) return false;
    const { segs, splitDir } = splitOf(rel);
    if (segs.length < 2) return false;
    this.sawImages = true;
    if (this.splitless) {
      this.selected.push(member(rel, segs));
      return true;
    }
    if (splitDir === undefined) return false;
    this.sawSplitFolders = true;
    // Classes from every split under the same dataset root keep train and test label indices identical.
    const root = segs.slice(0, segs.length - 3).join("/");
    let set = this.classesByRoot.get(root);
    if (!set) this.classesByRoot.set(root, (set = new Set()));
    set.add(segs[segs.length - 2] ?? "");
    if (!SPLIT_DIRS[this.split].includes(splitDir)) return false;
    this.selected.push(member(rel, segs));
    return true;
  }
}

export async function readImageFolder(path: string, opts: ImageFolderOptions): Promise<ImageDataset> {
  const info = await stat(path).catch((e: unknown) => {
    throw new DatasetFormatError("image-folder", path, "does not exist", { cause: e });
  });
  const archive = !info.isDirectory();
  if (archive && !isArchivePath(path)) {
    throw new DatasetFormatError("image-folder", path, "expected a folder or a .tar/.tar.gz/.tgz archive");
  }
  const channels = opts.channels ?? 3;
  const target = opts.imageSize ? { size: opts.imageSize, channels } : { channels };
  const pixels = new Map<string, { data: Uint8Array; width: number; height: number }>();
  const progress = opts.progress ?? true;
  const files = archive ? undefined : await listFiles(path);

  const pass = async (splitless: boolean): Promise<LayoutSelector> => {
    const sel = new LayoutSelector(opts.split, splitless);
    await scanTree(
      path,
      {
        select: (rel) => sel.select(rel),
        onFile: async (rel, data) => {
          const img = await decodeImage(data, memberName(path, rel), target);
          // Copy: PPM pixels may be a view into a large read buffer.
          pixels.set(rel, { data: copyBytes(img.pixels), width: img.width, height: img.height });
        },
      },
      {
        progressLabel: `decoding ${opts.name ?? "image-folder"} ${opts.split} from ${path}`,
        progress,
        concurrency: 12,
        ...(files ? { files } : {}),
      },
    );
    return sel;
  };

  let sel = await pass(false);
  if (sel.selected.length === 0) {
    if (sel.sawSplitFolders) {
      throw new DatasetFormatError(
        "image-folder",
        path,
        `no ${opts.split} images: expected <${SPLIT_DIRS[opts.split].join("|")}>/<class>/<image>`,
      );
    }
    if (!sel.sawImages) {
      throw new DatasetFormatError(
        "image-folder",
        path,
        "no images (.jpg .png .ppm .pgm .webp .tif .gif) in <class>/ folders",
      );
    }
    // No split folders at all: the whole tree is one split.
    sel = await pass(true);
  }

  const parents = [...new Set(sel.selected.map((m) => m.parent))];
  if (parents.length > 1) {
    const show = (p: string): string => (p === "" ? "the top level" : p);
    throw new DatasetFormatError(
      "image-folder",
      path,
      `class folders found under more than one root (${parents.slice(0, 3).map(show).join(", ")}); point at one of them`,
    );
  }
  // In the split layout the parent ends with the split folder; the dataset root is the folder above it.
  const datasetRoot = (sel.selected[0]?.parent ?? "").split("/").slice(0, -1).join("/");
  const classSet = sel.classesByRoot.get(datasetRoot) ?? new Set(sel.selected.map((m) => m.cls));
  const classNames = [...classSet].sort(codeUnitCompare);
  if (opts.expectClasses) {
    const want = [...opts.expectClasses].sort(codeUnitCompare);
    if (want.join("\n") !== classNames.join("\n")) {
      throw new DatasetFormatError(
        "image-folder",
        path,
        `class folders are [${classNames.join(", ")}], expected [${want.join(", ")}]`,
      );
    }
  }
  const classIndex = new Map(classNames.map((c, i) => [c, i]));
  const ordered = [...sel.selected].sort(
    (a, b) => (classIndex.get(a.cls) ?? 0) - (classIndex.get(b.cls) ?? 0) || naturalCompare(a.file, b.file),
  );

  const first = ordered[0];
  const firstPx = first ? pixels.get(first.rel) : undefined;
  const height = firstPx?.height ?? opts.imageSize?.height ?? 0;
  const width = firstPx?.width ?? opts.imageSize?.width ?? 0;
  const per = height * width * channels;
  const images = new Uint8Array(ordered.length * per);
  const labels = new Int32Array(ordered.length);
  ordered.forEach((m, i) => {
    const px = pixels.get(m.rel);
    if (!px) throw new Error(`image-folder: ${memberName(path, m.rel)} was selected but not decoded`);
    if (px.width !== width || px.height !== height) {
      throw new DatasetFormatError(
        "image-folder",
        memberName(path, m.rel),
        `is ${px.width}x${px.height} but ${memberName(path, first?.rel ?? "")} is ${width}x${height}; give an image size to resize`,
      );
    }
    images.set(px.data, i * per);
    labels[i] = classIndex.get(m.cls) ?? 0;
  });
  const ds: ImageDataset = {
    name: opts.name ?? "image-folder",
    split: opts.split,
    images,
    labels,
    count: ordered.length,
    height,
    width,
    channels,
    classNames,
    source: path,
  };
  assertConsistent(ds);
  return ds;
}
