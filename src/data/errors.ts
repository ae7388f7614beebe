// One error type for malformed or missing dataset files (E_DATA), so callers (the CLI) can tell bad data from bugs.
import { BadExpertError, type ErrorCode } from "../util/errors.js";

export class DatasetFormatError extends BadExpertError {
  override name = "DatasetFormatError";
  constructor(
    /** Short reader name, e.g. "idx", "cifar10", "gtsrb". */
    readonly reader: string,
    /** The file (or archive member, as `archive:member`) that was wrong. */
    readonly file: string,
    readonly problem: string,
    /** code: E_DATA unless a subclass says otherwise (an image input's decoding problem). */
    options?: { cause?: unknown; code?: ErrorCode },
  ) {
    super(options?.code ?? "E_DATA", `${reader}: ${file}: ${problem}`, options);
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
