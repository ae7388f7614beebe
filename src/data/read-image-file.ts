// Reading one image file a user named, with messages that say what is wrong with that path
// (a folder, a device or pipe, missing, too large) instead of a bare "EISDIR". The read itself is
// readRegularFile's: type and size checked on the open handle, a FIFO opened without waiting for
// a writer, so a pipe among scan's inputs is an error line rather than a scan that never ends.
// The size limit keeps one stray multi-gigabyte file from costing its size in memory before the
// decoder even looks at it.
import { FileReadError, readRegularFile } from "../util/read-regular-file.js";

/** 256 MiB: far above any encoded image within the decoder's pixel limit. */
export const MAX_IMAGE_FILE_BYTES = 256 * 2 ** 20;

/** A FileReadError of an image file: E_IO, or E_INPUT_TOO_LARGE for a file over the size limit. */
export class ImageFileError extends FileReadError {
  override name = "ImageFileError";
}

/** The read's own words for the other reasons ("no such file", ...) stand. */
const PROBLEMS: Record<string, string> = {
  EISDIR: "is a directory, not an image file",
  ETYPE: "not a regular file (a device, socket or pipe)",
};

export async function readImageFile(file: string, maxBytes = MAX_IMAGE_FILE_BYTES): Promise<Uint8Array> {
  try {
    return await readRegularFile(file, { maxBytes, what: "image file" });
  } catch (e) {
    if (!(e instanceof FileReadError)) throw e;
    throw new ImageFileError(file, PROBLEMS[e.reason] ?? e.problem, e.reason, { cause: e });
  }
}
