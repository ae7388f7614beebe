// Errors the service answers with a JSON body naming the problem and the HTTP status of its code
// (src/util/errors.ts). Anything else that escapes a handler is a 500 ("internal error"), logged
// with its stack.
import { BadExpertError, httpStatus, type ErrorCode } from "../util/errors.js";

export class ServeError extends BadExpertError {
  override name = "ServeError";
  /** Stable machine-readable name of the problem ("queue_full", "undecodable_image", ...): the body's `reason` and `error`. */
  readonly reason: string;
  readonly headers: Record<string, string>;
  readonly #status: number | undefined;

  /** o.status: only for a framework's own 4xx, which keeps its status (every other status is the code's). */
  constructor(
    code: ErrorCode,
    reason: string,
    message: string,
    o: { headers?: Record<string, string>; cause?: unknown; status?: number } = {},
  ) {
    super(code, message, o.cause === undefined ? undefined : { cause: o.cause });
    this.reason = reason;
    this.headers = o.headers ?? {};
    this.#status = o.status;
  }

  get statusCode(): number {
    return this.#status ?? httpStatus(this.code);
  }
}

/** An error's JSON body: {code, reason, message} as scan's error lines have them, and `error` (the reason, as the API has always named it). */
export function errorBody(
  code: ErrorCode,
  reason: string,
  message: string,
): { error: string; code: ErrorCode; reason: string; message: string } {
  return { error: reason, code, reason, message };
}

/** The queue is full: the client should come back later (503 + Retry-After). */
export function queueFull(queued: number, wanted: number, maxQueue: number): ServeError {
  return new ServeError(
    "E_BUSY",
    "queue_full",
    `scoring queue is full: ${queued} inputs waiting, this request adds ${wanted}, the limit is ${maxQueue} (--max-queue); retry later`,
    { headers: { "retry-after": "1" } },
  );
}

export function timedOut(ms: number, stage: string): ServeError {
  return new ServeError(
    "E_TIMEOUT",
    "timeout",
    `not scored within ${ms} ms (--timeout-ms; ${stage}); the input was not checked and must not be treated as clean`,
  );
}

export function scoringFailed(message: string): ServeError {
  return new ServeError(
    "E_UNSCORABLE",
    "scoring_failed",
    `${message}; the input was not checked and must not be treated as clean`,
    { headers: { "retry-after": "1" } },
  );
}

export function shuttingDown(): ServeError {
  return new ServeError("E_BUSY", "shutting_down", "the server is shutting down and takes no new inputs", {
    headers: { "retry-after": "5" },
  });
}

/** The end of a shutdown's grace period came before this request was scored. */
export function drainExpired(graceMs: number): ServeError {
  return new ServeError(
    "E_BUSY",
    "shutting_down",
    `the server's shutdown grace period (${graceMs / 1000} s, --drain-timeout) ended before this input was scored; it was not checked and must not be treated as clean`,
    { headers: { "retry-after": "5" } },
  );
}
