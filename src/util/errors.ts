// One error type for every failure a user can act on: BadExpertError carries a stable `code`
// beside its message, so a library caller's `catch`, the CLI's exit status and the service's HTTP
// status all read the same field. ERROR_CODES is the only place a code is mapped to an exit
// status or an HTTP status; any other error (a broken invariant, a bug) is E_INTERNAL.

/** Every code, what it means, and how the CLI and the service answer it. */
export const ERROR_CODES = {
  /** An argument, option, parameter or request field is missing, malformed or out of range. */
  E_USAGE: { exit: 2, http: 400 },
  /** An input image cannot be decoded: empty, not an image, or broken bytes. */
  E_INPUT_DECODE: { exit: 1, http: 400 },
  /** An input in a format, media type or frame count the detector does not judge. */
  E_INPUT_UNSUPPORTED: { exit: 1, http: 415 },
  /** An input over a limit: bytes, pixels, frames or images per request. */
  E_INPUT_TOO_LARGE: { exit: 1, http: 413 },
  /** The detector could not judge this input (no finite score, or scoring failed): never "clean". */
  E_UNSCORABLE: { exit: 1, http: 503 },
  /** The service cannot take the input now (queue full, decoding budget busy, shutting down); retry later. */
  E_BUSY: { exit: 1, http: 503 },
  /** Not scored within the deadline: the input was not checked. */
  E_TIMEOUT: { exit: 1, http: 504 },
  /** A detector bundle is missing a file, fails its signature or hash check, or its manifest is malformed. */
  E_BUNDLE_INTEGRITY: { exit: 1, http: 500 },
  /** A model or weights file (safetensors, torch.save zip, pickle, state_dict, model.json) is malformed or refused. */
  E_MODEL_FORMAT: { exit: 1, http: 500 },
  /** A dataset file is missing, malformed or refused. */
  E_DATA: { exit: 1, http: 500 },
  /** A signing or verification key file is unreadable or not an Ed25519 PEM key. */
  E_KEY: { exit: 1, http: 500 },
  /** A file cannot be read or written (missing, a directory, a device or pipe, permission denied). */
  E_IO: { exit: 1, http: 500 },
  /** The request has no valid bearer token. */
  E_UNAUTHORIZED: { exit: 1, http: 401 },
  /** No such route, or the resource is switched off. */
  E_NOT_FOUND: { exit: 1, http: 404 },
  /** The input was flagged as a suspected backdoor input and the caller asked for flagged inputs to be refused. */
  E_FLAGGED: { exit: 1, http: 422 },
  /** Anything else: a bug or a broken invariant (the service logs it and answers a generic message). */
  E_INTERNAL: { exit: 1, http: 500 },
} as const satisfies Record<string, { exit: number; http: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class BadExpertError extends Error {
  override name = "BadExpertError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === "string" && Object.hasOwn(ERROR_CODES, x);
}

/** The code of any thrown value: a BadExpertError's own, E_INTERNAL for anything else. */
export function errorCode(e: unknown): ErrorCode {
  return e instanceof BadExpertError ? e.code : "E_INTERNAL";
}

/** The code of an error being wrapped where it has one, else `fallback`: a wrapper keeps the kind of failure it wraps. */
export function codeOr(e: unknown, fallback: ErrorCode): ErrorCode {
  return e instanceof BadExpertError ? e.code : fallback;
}

/** The CLI's exit status for a code: 2 for a usage error, 1 for every other failure. */
export function exitStatus(code: ErrorCode): number {
  return ERROR_CODES[code].exit;
}

/** The service's HTTP status for a code. */
export function httpStatus(code: ErrorCode): number {
  return ERROR_CODES[code].http;
}
