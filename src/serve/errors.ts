// Errors the service answers with a status code and a JSON body naming the problem. Anything
// else that escapes a handler is a 500 ("internal error"), logged with its stack.
export class ServeError extends Error {
  readonly statusCode: number;
  /** Stable machine-readable name of the problem (also in the JSON body). */
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(statusCode: number, code: string, message: string, o: { headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.statusCode = statusCode;
    this.code = code;
    this.headers = o.headers ?? {};
  }
}

/** The queue is full: the client should come back later (503 + Retry-After). */
export function queueFull(queued: number, wanted: number, maxQueue: number): ServeError {
  return new ServeError(
    503,
    "queue_full",
    `scoring queue is full: ${queued} inputs waiting, this request adds ${wanted}, the limit is ${maxQueue} (--max-queue); retry later`,
    { headers: { "retry-after": "1" } },
  );
}

export function timedOut(ms: number, stage: string): ServeError {
  return new ServeError(504, "timeout", `not scored within ${ms} ms (--timeout-ms; ${stage}); the input was not checked and must not be treated as clean`);
}

export function scoringFailed(message: string): ServeError {
  return new ServeError(503, "scoring_failed", `${message}; the input was not checked and must not be treated as clean`, { headers: { "retry-after": "1" } });
}

export function shuttingDown(): ServeError {
  return new ServeError(503, "shutting_down", "the server is shutting down and takes no new inputs", { headers: { "retry-after": "5" } });
}

/** The end of a shutdown's grace period came before this request was scored. */
export function drainExpired(graceMs: number): ServeError {
  return new ServeError(503, "shutting_down", `the server's shutdown grace period (${graceMs / 1000} s, --drain-timeout) ended before this input was scored; it was not checked and must not be treated as clean`, { headers: { "retry-after": "5" } });
}
