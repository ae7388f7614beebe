// Reading one file of a dataset (an IDX file, a CIFAR-10 batch, a .npz, a folder member) with its
// type and size checked on the open handle before a byte is read (util/read-regular-file.ts): a
// FIFO or a device under a dataset path would otherwise block or never end. Problems are
// DatasetFormatErrors naming the reader and the file, like every other dataset error.
import { FileReadError, readRegularFile, readRegularFileSync } from "../util/read-regular-file.js";
import { DatasetFormatError } from "./errors.js";

/**
 * 4 GiB, Node's largest Buffer: generous for any one dataset file (CIFAR-10's batches are 30 MB,
 * Fashion-MNIST's training images 47 MB), and readers bound what they decode on their own.
 */
export const MAX_DATASET_FILE_BYTES = 2 ** 32 - 1;

function datasetError(reader: string, file: string, e: unknown): DatasetFormatError {
  const problem =
    e instanceof FileReadError ? e.problem : `cannot read (${e instanceof Error ? e.message : String(e)})`;
  return new DatasetFormatError(reader, file, problem, { cause: e });
}

/** The file's bytes; `reader` names the dataset reader in messages ("idx", "cifar10", ...). */
export async function readDatasetFile(
  file: string,
  reader: string,
  maxBytes = MAX_DATASET_FILE_BYTES,
): Promise<Buffer> {
  try {
    return await readRegularFile(file, { maxBytes });
  } catch (e) {
    throw datasetError(reader, file, e);
  }
}

/** readDatasetFile for synchronous loops (a folder's members, read many at a time). */
export function readDatasetFileSync(file: string, reader: string, maxBytes = MAX_DATASET_FILE_BYTES): Buffer {
  try {
    return readRegularFileSync(file, { maxBytes });
  } catch (e) {
    throw datasetError(reader, file, e);
  }
}
