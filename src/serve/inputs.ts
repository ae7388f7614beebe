// The images a request carries, in the four accepted forms: a raw image body (Content-Type
// image/* or application/octet-stream), JSON {"image": base64}, JSON {"images": [...]} or a JSON
// array of base64 strings, and multipart/form-data with one or more files. Only the bytes are
// extracted here; decoding happens afterwards, image by image, behind the pixel limit.
import type { FastifyRequest } from "fastify";
import { ServeError } from "./errors.js";
import { printable } from "../util/printable.js";

export interface RequestImages {
  images: { name: string; data: Uint8Array }[];
  /** True for the batch forms (array, "images", multipart): the answer is a list. */
  batch: boolean;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const DATA_URL = /^data:[\w.+-]+\/[\w.+-]+;base64,/;
export const ACCEPTED_TYPES = "image/* or application/octet-stream (raw image), application/json, multipart/form-data";

export function fromBase64(v: unknown, name: string): Uint8Array {
  if (typeof v !== "string")
    throw new ServeError(
      "E_USAGE",
      "bad_field",
      `${name}: expected a base64 string, got ${v === null ? "null" : typeof v}`,
    );
  const s = v.replace(DATA_URL, "").replace(/\s+/g, "");
  if (s.length === 0) throw new ServeError("E_INPUT_DECODE", "empty_image", `${name}: empty string`);
  if (!BASE64.test(s) || s.length % 4 === 1)
    throw new ServeError("E_INPUT_DECODE", "bad_base64", `${name}: not valid base64`);
  return new Uint8Array(Buffer.from(s, "base64"));
}

function fromJson(body: unknown): RequestImages {
  if (Array.isArray(body))
    return { images: body.map((v, i) => ({ name: `images[${i}]`, data: fromBase64(v, `images[${i}]`) })), batch: true };
  if (body === null || typeof body !== "object") {
    throw new ServeError(
      "E_USAGE",
      "missing_field",
      `JSON body must be {"image": "<base64>"}, {"images": ["<base64>", ...]} or an array of base64 strings; got ${body === null ? "null" : typeof body}`,
    );
  }
  const o = body as Record<string, unknown>;
  if ("images" in o) {
    if (!Array.isArray(o.images))
      throw new ServeError(
        "E_USAGE",
        "bad_field",
        `"images" must be an array of base64 strings, got ${o.images === null ? "null" : typeof o.images}`,
      );
    return {
      images: o.images.map((v, i) => ({ name: `images[${i}]`, data: fromBase64(v, `images[${i}]`) })),
      batch: true,
    };
  }
  if ("image" in o) return { images: [{ name: "image", data: fromBase64(o.image, "image") }], batch: false };
  const keys = Object.keys(o);
  throw new ServeError(
    "E_USAGE",
    "missing_field",
    `JSON body has no "image" or "images" field (found: ${keys.length ? keys.map((k) => JSON.stringify(k)).join(", ") : "no fields"})`,
  );
}

/** busboy's and @fastify/multipart's own words for a malformed body are kept, on one short line. */
function shortMessage(e: unknown): string {
  const m = (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").trim();
  return m.length > 200 ? `${m.slice(0, 200)}…` : m;
}

async function fromMultipart(req: FastifyRequest, maxBytes: number): Promise<RequestImages> {
  const contentType = req.headers["content-type"] ?? "";
  if (!/;\s*boundary=("[^"]+"|[^\s;]+)/i.test(contentType)) {
    throw new ServeError(
      "E_USAGE",
      "bad_multipart",
      "Content-Type multipart/form-data has no boundary parameter (expected multipart/form-data; boundary=...)",
    );
  }
  const images: RequestImages["images"] = [];
  let total = 0;
  try {
    for await (const part of req.parts()) {
      if (part.type !== "file") continue;
      const data = new Uint8Array(await part.toBuffer());
      // The plugin limits each file; the body as a whole gets the same limit as the other forms.
      total += data.length;
      if (total > maxBytes)
        throw new ServeError(
          "E_INPUT_TOO_LARGE",
          "body_too_large",
          `multipart files total more than ${maxBytes} bytes (--max-body-bytes)`,
        );
      images.push({
        name: part.filename ? `${part.fieldname}:${part.filename}` : `${part.fieldname}[${images.length}]`,
        data,
      });
    }
  } catch (e) {
    // Limits (FST_* codes) are answered by the error handler; anything else the parser threw is a malformed body.
    if (
      e instanceof ServeError ||
      (typeof (e as { code?: unknown }).code === "string" && String((e as { code: string }).code).startsWith("FST_"))
    )
      throw e;
    const after = images.length ? ` after ${images.length} complete file part${images.length === 1 ? "" : "s"}` : "";
    throw new ServeError("E_USAGE", "bad_multipart", `the multipart body is malformed${after}: ${shortMessage(e)}`, {
      cause: e,
    });
  }
  if (images.length === 0)
    throw new ServeError(
      "E_USAGE",
      "missing_field",
      "multipart body has no file parts (send each image as a file field)",
    );
  return { images, batch: true };
}

/** Keys JSON.parse keeps as own properties but that poison a prototype once copied with assignment. */
function poisonedKey(value: unknown): string | null {
  // Iterative: a deeply nested body must not overflow the stack.
  const stack: { v: unknown; path: string }[] = [{ v: value, path: "$" }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { v, path } = item;
    if (v === null || typeof v !== "object") continue;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--)
        if (v[i] !== null && typeof v[i] === "object") stack.push({ v: v[i], path: `${path}[${i}]` });
      continue;
    }
    const o = v as Record<string, unknown>;
    if (Object.prototype.hasOwnProperty.call(o, "__proto__")) return `"__proto__" at ${path}`;
    const c = Object.prototype.hasOwnProperty.call(o, "constructor") ? o.constructor : undefined;
    if (c !== null && typeof c === "object" && Object.prototype.hasOwnProperty.call(c, "prototype"))
      return `"constructor": {"prototype": ...} at ${path}`;
    for (const [k, x] of Object.entries(o))
      if (x !== null && typeof x === "object") stack.push({ v: x, path: `${path}[${printable(k, 40)}]` });
  }
  return null;
}

/**
 * The JSON body parser: JSON.parse, with messages that say what is wrong, and a refusal of the
 * prototype-poisoning keys ("__proto__", "constructor.prototype") named as such rather than as
 * invalid JSON.
 */
export function parseJsonBody(text: string): unknown {
  if (text.length === 0) throw new ServeError("E_USAGE", "empty_body", "the JSON body is empty");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ServeError("E_USAGE", "bad_json", `the body is not valid JSON: ${shortMessage(e)}`);
  }
  const key = poisonedKey(value);
  if (key !== null)
    throw new ServeError(
      "E_USAGE",
      "bad_json",
      `the JSON body has the key ${key}, which is refused (a prototype-poisoning pattern); send {"image": "<base64>"} or {"images": [...]}`,
    );
  return value;
}

/** Extracts the images of a request, or throws a 4xx ServeError naming what is wrong. */
export async function requestImages(
  req: FastifyRequest,
  limits: { maxImages: number; maxBytes: number },
): Promise<RequestImages> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  let r: RequestImages;
  if (type === "application/json") r = fromJson(req.body);
  else if (type === "multipart/form-data") r = await fromMultipart(req, limits.maxBytes);
  else if (req.body instanceof Uint8Array)
    r = { images: [{ name: "body", data: new Uint8Array(req.body) }], batch: false };
  else
    throw new ServeError(
      "E_INPUT_UNSUPPORTED",
      "unsupported_media_type",
      `Content-Type ${JSON.stringify(type)} is not accepted; send ${ACCEPTED_TYPES}`,
    );
  if (r.images.length === 0) throw new ServeError("E_USAGE", "no_images", "the request holds no images");
  if (r.images.length > limits.maxImages) {
    throw new ServeError(
      "E_INPUT_TOO_LARGE",
      "too_many_images",
      `the request holds ${r.images.length} images; at most ${limits.maxImages} per request (--max-images-per-request)`,
    );
  }
  return r;
}
