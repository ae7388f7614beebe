// Tensors of the Open Inference Protocol: the datatypes, the three ways a tensor's elements
// arrive (JSON values, raw little-endian bytes from the binary extension or gRPC's raw contents,
// gRPC's typed contents), and the raw layout of output tensors. Raw bytes are row-major without
// padding; a BYTES element is a 4-byte little-endian length followed by its bytes.
import { ServeError } from "../errors.js";

export const DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;
export type Datatype = (typeof DATATYPES)[number];

/** A request or tensor parameter: the protocol's parameters are strings, numbers or booleans. */
export type ParamValue = string | number | boolean;
export type Params = Record<string, ParamValue>;

/** A tensor's elements as they arrived. */
export type TensorData =
  /** The JSON `data` field: nested or flat arrays, as the client wrote them. */
  | { kind: "json"; values: unknown }
  /** The binary extension's bytes, or one entry of gRPC's raw_input_contents. */
  | { kind: "raw"; bytes: Uint8Array }
  /** gRPC's typed contents (uint_contents, fp32_contents, bytes_contents, ...). */
  | { kind: "list"; values: readonly number[] | readonly Uint8Array[] };

export interface InputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters: Params;
  data: TensorData;
}

/** An output tensor: all of badexpert's outputs are one value per input image. */
export type OutputTensor = { name: string; shape: number[] } & (
  | { datatype: "FP64"; values: number[] }
  | { datatype: "INT64"; values: number[] }
  | { datatype: "BOOL"; values: boolean[] }
  | { datatype: "BYTES"; values: string[] }
);

export const bad = (message: string): ServeError => new ServeError("E_USAGE", "bad_tensor", message);

/** Elements of a shape, checking that each dimension is a non-negative integer. */
export function elementCount(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw bad(`${what}: shape [${shape.join(", ")}] has a dimension that is not a non-negative integer`);
    n *= d;
  }
  return n;
}

/**
 * The JSON `data` of a tensor as a flat list: the protocol allows the natural nested form
 * (at most one level per dimension) or a flat array. Iterative, so a deeply nested body cannot
 * overflow the stack.
 */
export function flattenJson(values: unknown, rank: number, count: number, what: string): unknown[] {
  if (!Array.isArray(values))
    throw bad(`${what}: "data" must be an array, got ${values === null ? "null" : typeof values}`);
  const out: unknown[] = [];
  const stack: { a: unknown[]; i: number; depth: number }[] = [{ a: values, i: 0, depth: 1 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as { a: unknown[]; i: number; depth: number };
    if (top.i >= top.a.length) {
      stack.pop();
      continue;
    }
    const v = top.a[top.i++];
    if (Array.isArray(v)) {
      if (top.depth >= Math.max(rank, 1))
        throw bad(`${what}: "data" is nested deeper than the shape's ${rank} dimensions`);
      stack.push({ a: v, i: 0, depth: top.depth + 1 });
      continue;
    }
    if (out.length >= count) throw bad(`${what}: "data" holds more than the ${count} elements of its shape`);
    out.push(v);
  }
  if (out.length !== count) throw bad(`${what}: "data" holds ${out.length} elements, its shape ${count}`);
  return out;
}

/** Checks that raw bytes hold exactly `count` elements of `size` bytes. */
export function checkRawSize(bytes: Uint8Array, count: number, size: number, datatype: string, what: string): void {
  if (bytes.length !== count * size)
    throw bad(
      `${what}: ${bytes.length} bytes of ${datatype} data, its shape needs ${count} x ${size} = ${count * size}`,
    );
}

/** Splits raw BYTES data into its `count` elements (each a 4-byte little-endian length, then the bytes). */
export function splitBytesElements(bytes: Uint8Array, count: number, what: string): Uint8Array[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw bad(`${what}: BYTES element ${out.length} has a truncated 4-byte length`);
    const n = view.getUint32(at, true);
    at += 4;
    if (at + n > bytes.length)
      throw bad(`${what}: BYTES element ${out.length} declares ${n} bytes, ${bytes.length - at} are left`);
    if (out.length >= count) throw bad(`${what}: the BYTES data holds more than the ${count} elements of its shape`);
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  if (out.length !== count) throw bad(`${what}: the BYTES data holds ${out.length} elements, its shape ${count}`);
  return out;
}

const utf8 = new TextEncoder();

/** An output tensor's elements in the raw layout (little-endian, BYTES length-prefixed). */
export function rawBytes(t: OutputTensor): Uint8Array {
  switch (t.datatype) {
    case "FP64": {
      const out = new Uint8Array(8 * t.values.length);
      const v = new DataView(out.buffer);
      t.values.forEach((x, i) => v.setFloat64(8 * i, x, true));
      return out;
    }
    case "INT64": {
      const out = new Uint8Array(8 * t.values.length);
      const v = new DataView(out.buffer);
      t.values.forEach((x, i) => v.setBigInt64(8 * i, BigInt(x), true));
      return out;
    }
    case "BOOL":
      return Uint8Array.from(t.values, (b) => (b ? 1 : 0));
    case "BYTES": {
      const parts = t.values.map((s) => utf8.encode(s));
      const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
      const v = new DataView(out.buffer);
      let at = 0;
      for (const p of parts) {
        v.setUint32(at, p.length, true);
        out.set(p, at + 4);
        at += 4 + p.length;
      }
      return out;
    }
  }
}

/** An output tensor's elements as JSON values (a non-finite FP64 is null: JSON has no NaN). */
export function jsonValues(t: OutputTensor): (number | boolean | string | null)[] {
  if (t.datatype === "FP64") return t.values.map((x) => (Number.isFinite(x) ? x : null));
  return t.values;
}
