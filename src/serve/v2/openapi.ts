// The /v2 paths of /openapi.json, made from the route table that fastify validates requests
// with (schemas.ts): a path parameter, header, body or answer the routes do not check cannot
// appear here, and one they check cannot be missing.
import { V2_ROUTES } from "./schemas.js";

type Json = Record<string, unknown>;

const BINARY_BODY = {
  schema: { type: "string", format: "binary" },
  description:
    "binary tensor data extension: the JSON request (its byte length in Inference-Header-Content-Length), then each binary input's bytes in input order",
};

/** OpenAPI path items for the /v2 routes; `secured`: the non-public ones need the bearer token. */
export function v2Paths(secured: boolean): Record<string, Json> {
  const paths: Record<string, Json> = {};
  for (const r of V2_ROUTES) {
    const s = r.schema;
    const path = r.url.replace(/:(\w+)/g, "{$1}");
    const parameters: Json[] = [];
    const params = s.params as { properties?: Record<string, Json> } | undefined;
    for (const name of (path.match(/\{(\w+)\}/g) ?? []).map((m) => m.slice(1, -1))) {
      const schema = params?.properties?.[name] ?? { type: "string" };
      parameters.push({
        name,
        in: "path",
        required: true,
        schema,
        ...(typeof schema.description === "string" ? { description: schema.description } : {}),
      });
    }
    const headers = s.headers as { properties?: Record<string, Json> } | undefined;
    for (const [name, schema] of Object.entries(headers?.properties ?? {})) {
      parameters.push({
        name,
        in: "header",
        required: false,
        schema,
        ...(typeof schema.description === "string" ? { description: schema.description } : {}),
      });
    }
    const responses = Object.fromEntries(
      Object.entries(s.response).map(([code, a]) => {
        const content: Json = {};
        if (a.schema) content["application/json"] = { schema: a.schema };
        if (code === "200" && s.binary)
          content["application/octet-stream"] = {
            schema: { type: "string", format: "binary" },
            description:
              "with binary outputs: the JSON answer (its byte length in the Inference-Header-Content-Length header), then each binary output's bytes",
          };
        return [code, { description: a.description, ...(Object.keys(content).length > 0 ? { content } : {}) }];
      }),
    );
    const operation: Json = {
      summary: s.summary,
      ...(s.description ? { description: s.description } : {}),
      tags: ["Open Inference Protocol (KServe v2)"],
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(s.body
        ? {
            requestBody: {
              required: true,
              content: {
                "application/json": { schema: s.body },
                ...(s.binary ? { "application/octet-stream": BINARY_BODY } : {}),
              },
            },
          }
        : {}),
      security: secured && !s.public ? [{ bearer: [] }] : [],
      responses,
    };
    paths[path] = { ...(paths[path] ?? {}), [r.method.toLowerCase()]: operation };
  }
  return paths;
}
