// The HTTP body of an inference request and of its answer: JSON, or JSON followed by tensor bytes
// (the protocol's binary tensor data extension). In a binary body the header
// Inference-Header-Content-Length gives the JSON's length; each input with the parameter
// binary_data_size takes that many bytes of what follows, in the order of the inputs. An answer
// carries an output as bytes when the request asked (binary_data on the output, or
// binary_data_output on the request), with the same header and binary_data_size on the output.
import { parseJsonBody } from "../inputs.js";
import { ServeError } from "../errors.js";
import type { InferAnswer, InferRequest } from "./infer.js";
import { bad, jsonValues, rawBytes, type InputTensor, type Params } from "./tensor.js";

export const HEADER_LENGTH = "inference-header-content-length";

/** The tensor bytes after the JSON header of a parsed body (absent for a JSON-only body). */
const tails = new WeakMap<object, Uint8Array>();

/**
 * Parses an infer body: all of it as JSON, or with Inference-Header-Content-Length, that many
 * bytes of JSON and the rest kept as the tensors' bytes.
 */
export function parseInferBody(body: Buffer, headerLength: string | string[] | undefined): unknown {
  let json = body;
  let tail: Uint8Array | null = null;
  if (headerLength !== undefined) {
    const h = Array.isArray(headerLength) ? headerLength.join(",") : headerLength;
    if (!/^\d{1,15}$/.test(h))
      throw new ServeError(
        "E_USAGE",
        "bad_header",
        `Inference-Header-Content-Length must be a byte count, got ${JSON.stringify(h.slice(0, 40))}`,
      );
    const n = Number(h);
    if (n > body.length)
      throw new ServeError(
        "E_USAGE",
        "bad_header",
        `Inference-Header-Content-Length is ${n}, the body has ${body.length} bytes`,
      );
    json = body.subarray(0, n);
    tail = new Uint8Array(body.buffer, body.byteOffset + n, body.length - n);
  }
  let value: unknown;
  try {
    value = parseJsonBody(json.toString("utf8"));
  } catch (e) {
    if (
      e instanceof ServeError &&
      e.reason === "bad_json" &&
      headerLength === undefined &&
      json.length > 0 &&
      json[0] !== 0x7b
    ) {
      throw new ServeError(
        "E_USAGE",
        "bad_json",
        `${e.message} (a body with binary tensor data needs the header Inference-Header-Content-Length: <bytes of its JSON part>)`,
      );
    }
    throw e;
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new ServeError(
      "E_USAGE",
      "bad_json",
      `the inference request must be a JSON object with "inputs", got ${Array.isArray(value) ? "an array" : value === null ? "null" : typeof value}`,
    );
  if (tail !== null) tails.set(value, tail);
  return value;
}

/** The request body as fastify's schema validated it. */
export interface InferBody {
  id?: string;
  parameters?: Params;
  inputs: { name: string; datatype: string; shape: number[]; parameters?: Params; data?: unknown }[];
  outputs?: { name: string; parameters?: Params }[];
}

/** The request in the protocol's terms: each input's data from JSON, or its share of the binary tail. */
export function inferRequestOf(body: InferBody): InferRequest {
  const tail = tails.get(body) ?? null;
  let at = 0;
  const inputs: InputTensor[] = body.inputs.map((t, i) => {
    const parameters = t.parameters ?? {};
    const size = parameters.binary_data_size;
    const what = `input ${i} (${JSON.stringify(t.name)})`;
    if (size === undefined) {
      if (t.data === undefined) throw bad(`${what} has no "data" and no parameters.binary_data_size`);
      return { name: t.name, datatype: t.datatype, shape: t.shape, parameters, data: { kind: "json", values: t.data } };
    }
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
      throw bad(`${what}: parameters.binary_data_size must be a byte count, got ${JSON.stringify(size).slice(0, 40)}`);
    if (t.data !== undefined) throw bad(`${what} has both "data" and parameters.binary_data_size`);
    if (tail === null)
      throw bad(
        `${what} has parameters.binary_data_size but the request has no binary data (send the header Inference-Header-Content-Length)`,
      );
    if (at + size > tail.length)
      throw bad(
        `${what}: binary_data_size ${size} runs past the end of the binary data (${tail.length - at} bytes left)`,
      );
    const bytes = tail.subarray(at, at + size);
    at += size;
    return { name: t.name, datatype: t.datatype, shape: t.shape, parameters, data: { kind: "raw", bytes } };
  });
  if (tail !== null && at !== tail.length)
    throw bad(`the body has ${tail.length - at} bytes of binary data that no input's binary_data_size claims`);
  return {
    ...(body.id !== undefined ? { id: body.id } : {}),
    parameters: body.parameters ?? {},
    inputs,
    ...(body.outputs ? { outputs: body.outputs.map((o) => ({ name: o.name, parameters: o.parameters ?? {} })) } : {}),
  };
}

/** The answer as a JSON object, or as JSON followed by the binary outputs' bytes (with the header's value). */
export function encodeAnswer(
  a: InferAnswer,
): { json: Record<string, unknown> } | { binary: Buffer; headerLength: number } {
  const parts: Uint8Array[] = [];
  const outputs = a.outputs.map(({ tensor: t, binary }) => {
    const head = { name: t.name, datatype: t.datatype, shape: t.shape };
    if (!binary) return { ...head, data: jsonValues(t) };
    const bytes = rawBytes(t);
    parts.push(bytes);
    return { ...head, parameters: { binary_data_size: bytes.length } };
  });
  const json = {
    model_name: a.model_name,
    model_version: a.model_version,
    ...(a.id !== undefined ? { id: a.id } : {}),
    outputs,
  };
  if (parts.length === 0) return { json };
  const head = Buffer.from(JSON.stringify(json), "utf8");
  return { binary: Buffer.concat([head, ...parts]), headerLength: head.length };
}
