// The image files a command is given: paths as named, and folders expanded into the image files
// in them (with `recursive`, in their sub-folders too), in natural order ("2.png" before
// "10.png"). Inside a folder nothing is followed: a symbolic link is skipped and reported, so a
// scan never leaves the folder it was given, never loops, and never silently drops an input it
// could have read (the caller says what was skipped). A path named on the command line is taken
// as given, link or not: the user chose it.
import { lstat, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { isImageFile } from "./image-decode.js";
import { naturalCompare } from "./natural-sort.js";

export interface InputFiles {
  /**
   * The paths to read, in the order named: a file as given, a folder as its images in natural
   * order. A folder without any image file stays in the list as itself (in `emptyFolders` too),
   * so the caller can report it where it was named instead of dropping it.
   */
  files: string[];
  emptyFolders: string[];
  /** What the folders held that is not read, for the caller to report. */
  skipped: {
    /** Symbolic links inside a folder (not followed). */
    links: string[];
    /** Sub-folders not descended into (without `recursive`). */
    folders: string[];
    /** Regular files whose names are not of an image format (by extension). */
    notImages: string[];
    /** FIFOs, sockets, devices. */
    special: string[];
  };
}

/** Expands `paths` (files and folders); a path that does not exist is kept as a file, for the reader to report. */
export async function inputFiles(paths: readonly string[], o: { recursive?: boolean } = {}): Promise<InputFiles> {
  const out: InputFiles = {
    files: [],
    emptyFolders: [],
    skipped: { links: [], folders: [], notImages: [], special: [] },
  };
  for (const p of paths) {
    const s = await stat(p).catch(() => null);
    const images = s?.isDirectory() ? await folderImages(p, o.recursive === true, out.skipped) : null;
    if (images === null) out.files.push(p);
    else if (images.length > 0) out.files.push(...images);
    else {
      out.files.push(p);
      out.emptyFolders.push(p);
    }
  }
  return out;
}

async function folderImages(root: string, recursive: boolean, skipped: InputFiles["skipped"]): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isSymbolicLink()) skipped.links.push(path);
      else if (e.isDirectory()) {
        if (recursive) await walk(path);
        else skipped.folders.push(path);
      } else if (e.isFile()) {
        if (isImageFile(e.name)) found.push(path);
        else skipped.notImages.push(path);
      } else if (e.isFIFO() || e.isSocket() || e.isBlockDevice() || e.isCharacterDevice()) {
        skipped.special.push(path);
      } else {
        // An entry type readdir cannot tell (some file systems): ask without following links.
        const s = await lstat(path);
        if (s.isFile() && isImageFile(e.name)) found.push(path);
        else skipped.special.push(path);
      }
    }
  };
  await walk(root);
  // Natural order over the whole relative path, so "a/2.png" < "a/10.png" < "b/1.png".
  return found.sort((a, b) => naturalCompare(a.slice(root.length), b.slice(root.length)));
}
