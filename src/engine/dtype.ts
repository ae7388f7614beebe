// Element types and their JS typed-array counterparts.

export const DTYPES = [
  "float32",
  "float64",
  "float16",
  "bfloat16",
  "int64",
  "int32",
  "int16",
  "int8",
  "uint8",
  "bool",
] as const;
export type DType = (typeof DTYPES)[number];

export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export function isDType(x: unknown): x is DType {
  return typeof x === "string" && (DTYPES as readonly string[]).includes(x);
}

export function assertDType(x: unknown, what: string): DType {
  if (!isDType(x)) throw new TypeError(`${what}: expected one of ${DTYPES.join(", ")}, got ${JSON.stringify(x)}`);
  return x;
}

export function isFloating(d: DType): boolean {
  return d === "float32" || d === "float64" || d === "float16" || d === "bfloat16";
}

export function bytesPerElement(d: DType): number {
  switch (d) {
    case "float64":
    case "int64":
      return 8;
    case "float32":
    case "int32":
      return 4;
    case "float16":
    case "bfloat16":
    case "int16":
      return 2;
    default:
      return 1;
  }
}

/** The dtype a typed array maps to when it becomes a tensor. */
export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Int32Array) return "int32";
  if (a instanceof Int16Array) return "int16";
  if (a instanceof Int8Array) return "int8";
  return "uint8";
}

/** Views raw little-endian bytes as the typed array for `d` (float16/bfloat16 are not representable: convert first). */
export function viewBytes(buf: ArrayBuffer, d: DType): TypedArray {
  switch (d) {
    case "float32":
      return new Float32Array(buf);
    case "float64":
      return new Float64Array(buf);
    case "int64":
      return new BigInt64Array(buf);
    case "int32":
      return new Int32Array(buf);
    case "int16":
      return new Int16Array(buf);
    case "int8":
      return new Int8Array(buf);
    case "uint8":
    case "bool":
      return new Uint8Array(buf);
    default:
      throw new TypeError(`no typed array holds ${d}; convert the tensor to float32 first`);
  }
}
