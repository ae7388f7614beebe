// Every error becomes a JSON body {error, message, requestId} with a status that says whose
// problem it is: 4xx names what is wrong with the request, 503/504 say the input was not
// checked (never "clean"), 500 is a bug (logged with its stack, message kept generic).
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { errorBody, ServeError } from "./errors.js";
import type { ErrorCode } from "../util/errors.js";
import { ACCEPTED_TYPES } from "./inputs.js";
import type { ServeMetrics } from "./metrics.js";
import type { ServeOptions } from "./options.js";

/** fastify's and @fastify/multipart's own errors, reworded to name the limit or the fix. */
function fromFramework(e: FastifyError, req: FastifyRequest, o: ServeOptions): ServeError | null {
  switch (e.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
    case "FST_REQ_FILE_TOO_LARGE":
      return new ServeError(
        "E_INPUT_TOO_LARGE",
        "body_too_large",
        `the request body is larger than ${o.maxBodyBytes} bytes (--max-body-bytes)`,
      );
    case "FST_FILES_LIMIT":
    case "FST_PARTS_LIMIT":
      return new ServeError(
        "E_INPUT_TOO_LARGE",
        "too_many_images",
        `the multipart body has more than ${o.maxImagesPerRequest} files (--max-images-per-request)`,
      );
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new ServeError(
        "E_INPUT_UNSUPPORTED",
        "unsupported_media_type",
        `Content-Type ${JSON.stringify(req.headers["content-type"] ?? "")} is not accepted; send ${ACCEPTED_TYPES}`,
      );
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new ServeError("E_USAGE", "empty_body", "the JSON body is empty");
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new ServeError("E_USAGE", "bad_content_length", "Content-Length does not match the body");
    case "FST_INVALID_MULTIPART_CONTENT_TYPE":
      return new ServeError("E_USAGE", "bad_multipart", "the multipart body is malformed (missing boundary?)");
  }
  if (e instanceof SyntaxError || e.code === "FST_ERR_CTP_INVALID_JSON_BODY") {
    return new ServeError("E_USAGE", "bad_json", `the body is not valid JSON: ${e.message}`);
  }
  const status = e.statusCode;
  if (status !== undefined && status >= 400 && status < 500)
    return new ServeError("E_USAGE", (e.code ?? "bad_request").toLowerCase(), e.message, { status });
  return null;
}

/** The JSON body of an error answer; the Open Inference Protocol's routes answer {"error": message}. */
export type ErrorBody = (
  e: { code: ErrorCode; reason: string; message: string },
  requestId: string,
) => Record<string, unknown>;
const v1Body: ErrorBody = (e, requestId) => ({ ...errorBody(e.code, e.reason, e.message), requestId });

export function handleError(
  err: unknown,
  req: FastifyRequest,
  reply: FastifyReply,
  metrics: ServeMetrics,
  o: ServeOptions,
  body: ErrorBody = v1Body,
): FastifyReply {
  const e = err instanceof ServeError ? err : err instanceof Error ? fromFramework(err as FastifyError, req, o) : null;
  if (!e) {
    req.log.error({ err }, "internal error");
    return reply
      .code(500)
      .send(
        body(
          { code: "E_INTERNAL", reason: "internal", message: "internal error (logged with request id)" },
          String(req.id),
        ),
      );
  }
  if (e.statusCode >= 500) {
    metrics.refused.inc({ reason: e.reason });
    req.log.warn(
      { event: "refused", code: e.code, reason: e.reason, err: e.message },
      "request refused without a score",
    );
  } else {
    req.log.info({ event: "bad_request", code: e.code, reason: e.reason, err: e.message }, "bad request");
  }
  return reply
    .code(e.statusCode)
    .headers(e.headers)
    .send(body(e, String(req.id)));
}
