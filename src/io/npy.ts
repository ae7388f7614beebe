// NumPy's .npy format (versions 1-3): magic, a Python-literal header dict (descr, fortran_order,
// shape), then the raw array. Parsed with a strict pattern, never evaluated.
import { BadExpertError } from "../util/errors.js";

export type NpyDType = "uint8" | "int8" | "int16" | "int32" | "int64" | "float32" | "float64" | "bool";

export interface NpyArray {
  dtype: NpyDType;
  shape: number[];
  /** Little-endian, C order, exactly prod(shape) elements (a view into the file). */
  data: Uint8Array;
}

const DESCR: Record<string, NpyDType> = {
  "|u1": "uint8",
  "<u1": "uint8",
  "|i1": "int8",
  "<i1": "int8",
  "<i2": "int16",
  "<i4": "int32",
  "<i8": "int64",
  "<f4": "float32",
  "<f8": "float64",
  "|b1": "bool",
};
const SIZE: Record<NpyDType, number> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float32: 4,
  float64: 8,
};

export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b))
    throw new BadExpertError("E_DATA", `${source}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6] as number;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (major < 1 || major > 3 || start + headerLen > bytes.length)
    throw new BadExpertError("E_DATA", `${source}: unsupported or truncated .npy header (version ${major})`);
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new BadExpertError("E_DATA", `${source}: malformed .npy header ${JSON.stringify(header.trim())}`);
  const dtype = DESCR[descr];
  if (!dtype)
    throw new BadExpertError(
      "E_DATA",
      `${source}: array dtype '${descr}' is not supported (expected one of ${Object.keys(DESCR).join(", ")})`,
    );
  if (fortran === "True")
    throw new BadExpertError(
      "E_DATA",
      `${source}: Fortran-order arrays are not supported (save with np.ascontiguousarray)`,
    );
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0))
    throw new BadExpertError("E_DATA", `${source}: bad shape (${shapeText})`);
  const n = shape.reduce((a, b) => a * b, 1) * SIZE[dtype];
  const dataStart = start + headerLen;
  if (dataStart + n > bytes.length)
    throw new BadExpertError(
      "E_DATA",
      `${source}: truncated: shape (${shape.join(", ")}) of ${dtype} needs ${n} bytes, the file has ${bytes.length - dataStart}`,
    );
  return { dtype, shape, data: bytes.subarray(dataStart, dataStart + n) };
}

/** The elements as numbers (int64 narrowed). */
export function npyValues(a: NpyArray): ArrayLike<number> {
  // A fresh copy: a.data may be a Node Buffer, whose slice() shares the pooled ArrayBuffer.
  const buf = new Uint8Array(a.data).buffer;
  switch (a.dtype) {
    case "uint8":
    case "bool":
      return new Uint8Array(buf);
    case "int8":
      return new Int8Array(buf);
    case "int16":
      return new Int16Array(buf);
    case "int32":
      return new Int32Array(buf);
    case "int64":
      return Array.from(new BigInt64Array(buf), (v) => Number(v));
    case "float32":
      return new Float32Array(buf);
    case "float64":
      return new Float64Array(buf);
  }
}
