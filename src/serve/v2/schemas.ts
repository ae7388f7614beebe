// The Open Inference Protocol's HTTP routes as data: method, URL and the fastify JSON schemas
// that validate each request (params, headers, body) and describe its answers. routes.ts
// registers exactly these, and openapi.ts turns exactly these into /openapi.json's /v2 paths,
// so the document cannot drift from what is validated.
import { DATATYPES } from "./tensor.js";
import { EXTENSIONS, INPUT_NAME, MODEL_VERSION, OUTPUTS } from "./models.js";
import { HEADER_LENGTH } from "./http-codec.js";

export interface RouteSchema {
  summary: string;
  description?: string;
  params?: Record<string, unknown>;
  headers?: Record<string, unknown>;
  body?: Record<string, unknown>;
  /** By status code; `null` schema: an empty body, described only. */
  response: Record<string, { description: string; schema?: Record<string, unknown> }>;
  /** Answers without a bearer token (probes). */
  public: boolean;
  /** Bodies other than JSON that the route also takes or answers (OpenAPI only). */
  binary?: boolean;
}

export interface V2Route {
  method: "GET" | "POST";
  url: string;
  /** What the handler does, in routes.ts. */
  handler: "live" | "ready" | "server" | "model" | "modelReady" | "infer";
  schema: RouteSchema;
}

// Not typed in the schema: fastify's validator coerces types, and a coerced binary_data_size
// or binary_data would change meaning; the handlers check each parameter they read.
const parameter = { description: "a string, number or boolean" };
const parameters = { type: "object", additionalProperties: parameter, description: "name: value pairs" };
const error = {
  type: "object",
  required: ["error"],
  properties: { error: { type: "string", description: "what is wrong, naming the input, field or limit" } },
};
const errorAnswer = (description: string): { description: string; schema: Record<string, unknown> } => ({
  description,
  schema: error,
});

const tensorMetadata = {
  type: "object",
  required: ["name", "datatype", "shape"],
  properties: {
    name: { type: "string" },
    datatype: { type: "string", enum: [...DATATYPES] },
    shape: { type: "array", items: { type: "integer" }, description: "-1: a dimension of variable size (the batch)" },
  },
};

const modelParams = {
  type: "object",
  required: ["name"],
  properties: {
    name: {
      type: "string",
      maxLength: 256,
      description:
        'the detector ("badexpert" unless --model-name says otherwise) or the filtered model ("<name>-filtered")',
    },
    version: {
      type: "string",
      maxLength: 64,
      description: `the model's version: ${MODEL_VERSION} (the only one served)`,
    },
  },
};

const inferBody = {
  type: "object",
  required: ["inputs"],
  properties: {
    id: { type: "string", maxLength: 256, description: "returned in the answer" },
    parameters: {
      ...parameters,
      description: "binary_data_output (boolean): every output as binary data (binary extension)",
    },
    inputs: {
      type: "array",
      minItems: 1,
      maxItems: 16,
      items: {
        type: "object",
        required: ["name", "datatype", "shape"],
        properties: {
          name: { type: "string", maxLength: 256, description: `"${INPUT_NAME}"` },
          datatype: {
            type: "string",
            maxLength: 16,
            description:
              "UINT8 (shape [-1, H, W, C], NHWC pixels), FP32 ([-1, C, H, W], pixel / 255 in [0, 1]) or BYTES ([-1] or [-1, 1], encoded images)",
          },
          shape: { type: "array", minItems: 1, maxItems: 8, items: { type: "integer", minimum: 0 } },
          parameters: {
            ...parameters,
            description:
              'content_type: "base64" (BYTES as base64 strings in JSON, as MLServer\'s codec); binary_data_size (integer): the bytes of this tensor after the JSON (binary extension)',
          },
          data: { description: "the elements, row-major, flat or nested by dimension; absent with binary_data_size" },
        },
      },
    },
    outputs: {
      type: "array",
      maxItems: 16,
      items: {
        type: "object",
        required: ["name"],
        properties: {
          name: { type: "string", maxLength: 256 },
          parameters: { ...parameters, description: "binary_data (boolean): this output as binary data" },
        },
      },
      description: "the outputs to answer, in this order (default: all)",
    },
  },
};

const describeOutputs = (role: "detector" | "filtered"): string =>
  OUTPUTS[role].map((o) => `${o.name} (${o.datatype}): ${o.description}`).join("; ");

const inferAnswer = {
  type: "object",
  required: ["model_name", "outputs"],
  properties: {
    model_name: { type: "string" },
    model_version: { type: "string" },
    id: { type: "string" },
    outputs: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "datatype", "shape"],
        properties: {
          name: { type: "string" },
          datatype: { type: "string" },
          shape: { type: "array", items: { type: "integer" } },
          parameters: { type: "object", additionalProperties: parameter },
          data: { type: "array", description: "absent when the output is binary data (parameters.binary_data_size)" },
        },
      },
    },
  },
};

const healthAnswers = (what: string): RouteSchema["response"] => ({
  "200": { description: `${what}: yes (empty body)` },
  "400": { description: `${what}: no (empty body)` },
});

const model = (url: string): V2Route[] => [
  {
    method: "GET",
    url,
    handler: "model",
    schema: {
      summary:
        "model metadata: the input (image, UINT8 NHWC at the bundle's size; FP32 NCHW and BYTES images are accepted too) and the outputs",
      params: modelParams,
      response: {
        "200": {
          description: "model metadata",
          schema: {
            type: "object",
            required: ["name", "platform", "inputs", "outputs"],
            properties: {
              name: { type: "string" },
              versions: { type: "array", items: { type: "string" } },
              platform: { type: "string" },
              inputs: { type: "array", items: tensorMetadata },
              outputs: { type: "array", items: tensorMetadata },
            },
          },
        },
        "401": errorAnswer("missing or wrong bearer token"),
        "404": errorAnswer("no such model or version"),
      },
      public: false,
    },
  },
  {
    method: "GET",
    url: `${url}/ready`,
    handler: "modelReady",
    schema: {
      summary: "whether the model is ready for inference",
      params: modelParams,
      response: { ...healthAnswers("ready"), "404": errorAnswer("no such model or version") },
      public: true,
    },
  },
  {
    method: "POST",
    url: `${url}/infer`,
    handler: "infer",
    schema: {
      summary: "inference: one row per image in every output",
      description:
        `The detector model answers ${describeOutputs("detector")}. The filtered model answers ${describeOutputs("filtered")}. ` +
        "An input that could not be scored is never answered clean: the detector flags it and says why in error, the filtered model refuses it. " +
        "With the binary extension the body is the JSON followed by the tensors' bytes (little-endian, row-major; BYTES elements as a 4-byte length and the bytes), the JSON's length in Inference-Header-Content-Length; an answer with binary outputs has the same layout and header.",
      params: modelParams,
      headers: {
        type: "object",
        properties: {
          [HEADER_LENGTH]: {
            type: "string",
            pattern: "^[0-9]+$",
            description: "binary extension: bytes of JSON at the start of the body",
          },
        },
      },
      body: inferBody,
      binary: true,
      response: {
        "200": {
          description: "the outputs (JSON, or JSON and binary data with Inference-Header-Content-Length)",
          schema: inferAnswer,
        },
        "400": errorAnswer("malformed request: shape, datatype, input or output name, tensor data"),
        "401": errorAnswer("missing or wrong bearer token"),
        "404": errorAnswer("no such model or version"),
        "413": errorAnswer("body, image count or pixel count over its limit"),
        "415": errorAnswer("body neither JSON nor binary-extension data, or an image format not supported"),
        "503": errorAnswer("queue full, shutting down or scoring failed (Retry-After): the inputs were not checked"),
        "504": errorAnswer("not scored in time: the inputs were not checked"),
      },
      public: false,
    },
  },
];

export const V2_ROUTES: readonly V2Route[] = [
  {
    method: "GET",
    url: "/v2/health/live",
    handler: "live",
    schema: {
      summary: "liveness (Kubernetes livenessProbe): the server answers requests",
      response: healthAnswers("live"),
      public: true,
    },
  },
  {
    method: "GET",
    url: "/v2/health/ready",
    handler: "ready",
    schema: {
      summary:
        "readiness (Kubernetes readinessProbe): every worker has loaded and verified the bundle, and the server is not shutting down",
      response: healthAnswers("ready"),
      public: true,
    },
  },
  {
    method: "GET",
    url: "/v2",
    handler: "server",
    schema: {
      summary: `server metadata: name, version and the protocol extensions implemented (${EXTENSIONS.join(", ")})`,
      response: {
        "200": {
          description: "server metadata",
          schema: {
            type: "object",
            required: ["name", "version", "extensions"],
            properties: {
              name: { type: "string" },
              version: { type: "string" },
              extensions: { type: "array", items: { type: "string" } },
            },
          },
        },
        "401": errorAnswer("missing or wrong bearer token"),
      },
      public: false,
    },
  },
  ...model("/v2/models/:name"),
  ...model("/v2/models/:name/versions/:version"),
];

export const V2_INFER_ROUTES = new Set(V2_ROUTES.filter((r) => r.handler === "infer").map((r) => r.url));
export const V2_PUBLIC_ROUTES = new Set(V2_ROUTES.filter((r) => r.schema.public).map((r) => r.url));
