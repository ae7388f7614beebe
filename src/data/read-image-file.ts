// Reading one image file a user named, with messages that say what is wrong with that path
// (a folder, a device, missing, too large) instead of a bare "EISDIR". The size limit keeps one
// stray multi-gigabyte file from costing its size in memory before the decoder even looks at it.
import { open } from "node:fs/promises";

/** 256 MiB: far above any encoded image within the decoder's pixel limit. */
export const MAX_IMAGE_FILE_BYTES = 256 * 2 ** 20;

export class ImageFileError extends Error {
  override name = "ImageFileError";
  constructor(
    readonly file: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${problem}`, options);
  }
}

const CODES: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "is a directory, not an image file",
  ELOOP: "a symlink loop",
  ENOTDIR: "a path component is not a directory",
};

export async function readImageFile(file: string, maxBytes = MAX_IMAGE_FILE_BYTES): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw new ImageFileError(file, CODES[code] ?? `cannot open (${code || String(e)})`, { cause: e });
  }
  try {
    const s = await handle.stat();
    if (s.isDirectory()) throw new ImageFileError(file, CODES.EISDIR ?? "");
    if (!s.isFile()) throw new ImageFileError(file, "not a regular file (a device, socket or pipe)");
    if (s.size > maxBytes) throw new ImageFileError(file, `${s.size} bytes is over the ${maxBytes}-byte limit for one image file`);
    return await handle.readFile();
  } catch (e) {
    if (e instanceof ImageFileError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? "";
    throw new ImageFileError(file, CODES[code] ?? `cannot read (${code || String(e)})`, { cause: e });
  } finally {
    await handle.close();
  }
}
