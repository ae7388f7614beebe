// The Open Inference Protocol's HTTP routes, as a fastify plugin with its own body parser (JSON,
// or JSON and binary tensor data) and its own error form ({"error": "..."}), registered from the
// route table in schemas.ts. Authentication, request counting, the drain and the metrics are
// the server's hooks, inherited from the root.
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from "fastify";
import { ServeError } from "../errors.js";
import type { InferenceCore, RequestContext } from "./core.js";
import { encodeAnswer, HEADER_LENGTH, inferRequestOf, parseInferBody, type InferBody } from "./http-codec.js";
import { infer } from "./infer.js";
import { EXTENSIONS, modelMetadata, resolveModel } from "./models.js";
import { V2_ROUTES, type RouteSchema } from "./schemas.js";
import { packageVersion as serverVersion } from "../../util/package-version.js";

/** The body types an infer request may have; anything else is 415. */
const BODY_TYPES = new Set(["", "application/json", "application/octet-stream"]);

/** The part of a route table entry fastify validates with (and answers are serialized by). */
export function fastifySchema(s: RouteSchema): FastifySchema {
  const response = Object.fromEntries(
    Object.entries(s.response).flatMap(([code, r]) => (r.schema ? [[code, r.schema]] : [])),
  );
  // A copy: fastify compiles what it is given, and openapi.ts reads the originals.
  return structuredClone({
    ...(s.params ? { params: s.params } : {}),
    ...(s.headers ? { headers: s.headers } : {}),
    ...(s.body ? { body: s.body } : {}),
    response,
  });
}

export function contextOf(req: FastifyRequest): RequestContext {
  return { id: String(req.id), client: req.ip, log: req.log };
}

interface ModelParams {
  name: string;
  version?: string;
}

/**
 * Registers the /v2 routes on `app` (an encapsulated plugin instance: the parser and error
 * handler set here apply to these routes only). `onError` answers an error thrown by a route,
 * given the body form {"error": message}.
 */
export function registerV2Routes(
  app: FastifyInstance,
  core: InferenceCore,
  onError: (err: unknown, req: FastifyRequest, reply: FastifyReply) => FastifyReply,
): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (req, body, done) => {
    try {
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
      if (!BODY_TYPES.has(type))
        throw new ServeError(
          "E_INPUT_UNSUPPORTED",
          "unsupported_media_type",
          `Content-Type ${JSON.stringify(type.slice(0, 100))} is not accepted; send application/json, or application/octet-stream with Inference-Header-Content-Length (binary tensor data)`,
        );
      done(null, parseInferBody(body as Buffer, req.headers[HEADER_LENGTH]));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.setErrorHandler(onError);

  const handlers: Record<
    (typeof V2_ROUTES)[number]["handler"],
    (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>
  > = {
    live: async (_req, reply) => reply.code(200).send(),
    ready: async (_req, reply) => reply.code(core.ready() ? 200 : 400).send(),
    server: async () => ({ name: "badexpert", version: serverVersion(), extensions: EXTENSIONS }),
    model: async (req) => {
      const p = req.params as ModelParams;
      return modelMetadata(resolveModel(core.options.modelName, p.name, p.version), core.info, core.engine);
    },
    modelReady: async (req, reply) => {
      const p = req.params as ModelParams;
      resolveModel(core.options.modelName, p.name, p.version);
      return reply.code(core.ready() ? 200 : 400).send();
    },
    infer: async (req, reply) => {
      const p = req.params as ModelParams;
      const model = resolveModel(core.options.modelName, p.name, p.version);
      const answer = await infer(
        core,
        contextOf(req),
        `/v2/models/${model.name}/infer`,
        model,
        inferRequestOf(req.body as InferBody),
      );
      const out = encodeAnswer(answer);
      if ("json" in out) return reply.send(out.json);
      return reply.type("application/octet-stream").header(HEADER_LENGTH, String(out.headerLength)).send(out.binary);
    },
  };
  for (const r of V2_ROUTES)
    app.route({ method: r.method, url: r.url, schema: fastifySchema(r.schema), handler: handlers[r.handler] });
}
