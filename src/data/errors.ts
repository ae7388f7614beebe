// One error type for malformed or missing dataset files, so callers (the CLI) can tell bad data from bugs.

export class DatasetFormatError extends Error {
  override name = "DatasetFormatError";
  constructor(
    /** Short reader name, e.g. "idx", "cifar10", "gtsrb". */
    readonly reader: string,
    /** The file (or archive member, as `archive:member`) that was wrong. */
    readonly file: string,
    readonly problem: string,
    options?: { cause?: unknown },
  ) {
    super(`${reader}: ${file}: ${problem}`, options);
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
