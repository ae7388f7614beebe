// The OpenAPI 3.1 description served at GET /openapi.json: the routes, the accepted request
// forms, the result records and the error body, so clients can be generated or checked.
import type { ServeOptions } from "./options.js";

const detection = {
  type: "object",
  required: [
    "pred",
    "predClass",
    "class",
    "detector",
    "expertConfidence",
    "auxiliaryConfidence",
    "score",
    "threshold",
    "flagged",
  ],
  properties: {
    pred: { type: "integer", description: "M's predicted class index" },
    predClass: {
      type: "string",
      description: "M's predicted class name (the field the library's and scan's records use)",
    },
    class: { type: "string", description: "M's predicted class name (the same as predClass)" },
    detector: {
      type: "string",
      description:
        'the detector that scored it: "badexpert" or a baseline\'s registry name (strip, scale-up, teco, ibd-psc, cd, frequency, sentinet)',
    },
    expertConfidence: {
      type: ["number", "null"],
      description:
        "b: the backdoor expert B's softmax probability of the predicted class; null when a baseline detector is served (it has no B)",
    },
    auxiliaryConfidence: {
      type: ["number", "null"],
      description:
        "a: the auxiliary model M''s softmax probability of the predicted class; null when a baseline detector is served (it has no M')",
    },
    score: {
      type: ["number", "null"],
      description:
        "the detector's score (BaDExpert: the score rule's value; a baseline: its own score, higher = more suspicious); null when it was not a finite number (then flagged is true)",
    },
    threshold: { type: "number", description: "inputs scoring above it are flagged" },
    flagged: { type: "boolean", description: "suspected backdoor input" },
    reason: { type: "string", description: "why an input is flagged without a valid score" },
    frames: {
      type: "integer",
      description:
        "with --frames all, for an image of several frames: how many were scored (the image is flagged when any is)",
    },
    frame: {
      type: "integer",
      description: "with --frames all: the frame this record reports (the highest score, or one without a valid score)",
    },
  },
};

const nullableObject = (description: string) => ({ type: ["object", "null"], description });

/** GET /v1/detector: every field the route returns (the server test checks the two agree). */
const detectorSummary = {
  type: "object",
  required: [
    "detector",
    "kind",
    "architecture",
    "classNames",
    "imageSize",
    "channels",
    "rule",
    "params",
    "threshold",
    "targetFpr",
    "calibration",
    "checkpoint",
    "trust",
    "source",
    "hashes",
    "loadedAt",
    "serving",
  ],
  properties: {
    detector: { type: "string", description: '"badexpert" or the baseline\'s registry name' },
    kind: { type: "string", enum: ["badexpert", "baseline"] },
    architecture: { type: "string", description: "M's zoo architecture (or the imported model's)" },
    classNames: { type: "array", items: { type: "string" } },
    imageSize: {
      type: "array",
      items: { type: "integer" },
      description: "[height, width] the model reads; inputs are resized to it",
    },
    channels: { type: "integer" },
    rule: { type: ["string", "null"], description: "BaDExpert's score rule; null for a baseline" },
    params: nullableObject("a baseline's resolved parameters; null for BaDExpert"),
    threshold: { type: "number", description: "inputs scoring above it are flagged" },
    targetFpr: { type: "number", description: "the false-positive rate the threshold was calibrated at" },
    calibration: {
      type: "object",
      description: "the calibration record: threshold, target FPR, count of clean calibration scores, their quantiles",
    },
    checkpoint: nullableObject(
      "a baseline's checkpoint {path, weightsSha256}; null for BaDExpert (its bundle holds M)",
    ),
    trust: {
      type: "object",
      required: ["signature", "key", "warnings"],
      description: "what loading the bundle established of its origin",
      properties: {
        signature: {
          type: "string",
          enum: ["verified", "unsigned", "signed-unverified"],
          description:
            "verified: signed and checked with a known key; unsigned: no signature (baseline bundles never have one); signed-unverified: signed, but no key was known",
        },
        key: nullableObject(
          "{source: option | environment | default location, path} of the key the signature was checked with; null when none was known",
        ),
        warnings: {
          type: "array",
          items: { type: "string" },
          description: "the load's warnings (also logged at warn level, event bundle_trust)",
        },
      },
    },
    source: {
      type: "object",
      description: "{bundle: DIR}, or {inMemory: true} for a server made from an in-memory detector",
    },
    hashes: { type: "object", additionalProperties: { type: "string" }, description: "SHA-256 of each bundle file" },
    loadedAt: {
      type: "string",
      format: "date-time",
      description: "when the workers loaded this detector (changes on reload)",
    },
    serving: {
      type: "object",
      required: [
        "engine",
        "engineRequested",
        "engineFallback",
        "workers",
        "threadsPerWorker",
        "maxBatch",
        "maxWaitMs",
        "maxQueue",
        "timeoutMs",
        "onFlag",
      ],
      properties: {
        engine: { type: "string", enum: ["libtorch", "onnxruntime"], description: "the engine the workers score with" },
        engineRequested: {
          type: "string",
          enum: ["auto", "libtorch", "onnxruntime"],
          description: "--engine as given (auto may fall back to libtorch)",
        },
        engineFallback: {
          type: ["string", "null"],
          description:
            "why auto scores on libtorch (onnxruntime-node missing, or the model uses an operator the ONNX exporter does not translate); null when it does not fall back",
        },
        workers: { type: "integer" },
        threadsPerWorker: { type: "integer" },
        maxBatch: { type: "integer", description: "largest batch the dynamic batcher forms" },
        maxWaitMs: { type: "number", description: "longest a request waits for a batch to fill" },
        maxQueue: { type: "integer", description: "queued inputs beyond which requests get 503 with Retry-After" },
        timeoutMs: { type: "number", description: "per-request limit; beyond it 504" },
        onFlag: {
          type: "string",
          enum: ["reject", "annotate"],
          description: "what /v1/predict does with a flagged input",
        },
      },
    },
  },
};

const error = {
  type: "object",
  required: ["error", "code", "reason", "message"],
  properties: {
    code: {
      type: "string",
      description:
        "the error code, one per kind of failure (E_USAGE, E_INPUT_DECODE, E_INPUT_UNSUPPORTED, E_INPUT_TOO_LARGE, E_UNSCORABLE, E_BUSY, E_TIMEOUT, E_UNAUTHORIZED, E_NOT_FOUND, E_FLAGGED, E_INTERNAL; docs/errors.md): the HTTP status follows from it",
    },
    reason: {
      type: "string",
      description:
        "machine-readable problem (not_an_image, undecodable_image, unsupported_image_format, multi_frame, too_many_pixels, bad_multipart, bad_json, body_too_large, queue_full, decode_busy, timeout, flagged, ...)",
    },
    error: { type: "string", description: "the same as reason" },
    message: { type: "string", description: "what is wrong, naming the input, field or limit" },
    requestId: { type: "string" },
  },
};

const images = {
  required: true,
  content: {
    "image/*": {
      schema: { type: "string", format: "binary" },
      description: "one image (PNG, JPEG, WebP, GIF, TIFF, PPM/PGM); also application/octet-stream",
    },
    "application/json": {
      schema: {
        oneOf: [
          { type: "object", required: ["image"], properties: { image: { type: "string", contentEncoding: "base64" } } },
          {
            type: "object",
            required: ["images"],
            properties: { images: { type: "array", items: { type: "string", contentEncoding: "base64" } } },
          },
          { type: "array", items: { type: "string", contentEncoding: "base64" } },
        ],
      },
    },
    "multipart/form-data": {
      schema: { type: "object", additionalProperties: { type: "string", format: "binary" } },
      description: "one file part per image",
    },
  },
};

const errors = (codes: number[]): Record<string, unknown> =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      {
        description: ERROR_TEXT[c] ?? "error",
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      },
    ]),
  );

const ERROR_TEXT: Record<number, string> = {
  400: "the body or an image is malformed (the message names which)",
  401: "missing or wrong bearer token",
  413: "body, image count, frame count or pixel count (per image or per request) over its limit",
  415: "unsupported Content-Type or image format, or an image of several frames (--frames refuse, the default)",
  422: "input flagged as a suspected backdoor input (predict with --on-flag reject)",
  503: "queue full, decoding budget busy until the deadline, scoring failed or shutting down (Retry-After); the input was not checked",
  504: "not scored in time; the input was not checked",
};

export function openApiDocument(o: ServeOptions): Record<string, unknown> {
  const single = {
    oneOf: [
      { $ref: "#/components/schemas/Detection" },
      {
        type: "object",
        required: ["results"],
        properties: { results: { type: "array", items: { $ref: "#/components/schemas/Detection" } } },
      },
    ],
  };
  const security = o.token ? [{ bearer: [] }] : [];
  return {
    openapi: "3.1.0",
    info: {
      title: "badexpert serve",
      version: "1",
      description:
        'Backdoor-input detection in front of an image classifier: BaDExpert, or a baseline detector from a baseline detector bundle (records then carry null b and a). A single image (raw body or {"image"}) gets one record; ' +
        'the batch forms ({"images"}, a JSON array, multipart) get {"results": [...]} in request order. An input that could not be ' +
        "scored is never reported clean: the request fails with 503/504.",
    },
    components: {
      schemas: { Detection: detection, DetectorSummary: detectorSummary, Error: error },
      ...(o.token ? { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } } : {}),
    },
    paths: {
      "/v1/detect": {
        post: {
          summary: "score images with the detector",
          security,
          requestBody: images,
          responses: {
            "200": { description: "one record per image", content: { "application/json": { schema: single } } },
            ...errors([400, 401, 413, 415, 503, 504]),
          },
        },
      },
      "/v1/predict": {
        post: {
          summary: `the firewall: M's prediction for clean inputs; flagged inputs ${o.onFlag === "reject" ? "refused with 422 (a batch with any flagged input is refused whole)" : "answered with flagged: true"}`,
          security,
          requestBody: images,
          responses: {
            "200": {
              description:
                "predictions ({pred, class, flagged} per image; flagged ones also carry score and threshold)",
            },
            ...errors([400, 401, 413, 415, 422, 503, 504]),
          },
        },
      },
      "/v1/detector": {
        get: {
          summary:
            "the loaded detector: its name and kind (badexpert or baseline), architecture, classes, rule (BaDExpert) or params and checkpoint hash (a baseline), threshold, target FPR, bundle hashes",
          security,
          responses: {
            "200": {
              description: "detector summary",
              content: { "application/json": { schema: { $ref: "#/components/schemas/DetectorSummary" } } },
            },
          },
        },
      },
      "/v1/flagged": {
        get: {
          summary:
            "the dashboard's data: flagged rate and flagged inputs per class over the window, the explain feed's counters, and the latest flagged inputs (newest first) with B's saliency overlay as a PNG data: URL (404 when the feed is off, as it always is for a baseline detector)",
          security,
          responses: { "200": { description: "{window, feed, recent}" }, ...errors([401, 404]) },
        },
      },
      "/": {
        get: {
          summary: "the dashboard page (HTML + JavaScript polling /v1/flagged; with a token, open it as /#token=TOKEN)",
          responses: { "200": { description: "HTML" } },
        },
      },
      "/healthz": { get: { summary: "the process is up", responses: { "200": { description: "ok" } } } },
      "/readyz": {
        get: {
          summary: "workers hold a detector and the server takes requests",
          responses: { "200": { description: "ready" }, "503": { description: "starting or shutting down" } },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics (text format)",
          security,
          responses: { "200": { description: "metrics" } },
        },
      },
      "/openapi.json": { get: { summary: "this document", responses: { "200": { description: "OpenAPI 3.1" } } } },
    },
  };
}
