// Tensors ↔ safetensors files. Writes float32/float64/int64/int32/uint8/bool as themselves;
// reads every safetensors dtype, widening F16/BF16 to float32 (libtorch CPU kernels want it).
import { fromBytes, tensor, type DType, type Tensor } from "../engine/index.js";
import {
  readSafetensors,
  writeSafetensors,
  parseSafetensors,
  decodeToFloat32,
  type RawTensor,
  type ReadOptions,
  type SafetensorsDType,
  type SafetensorsFile,
  type WrittenFile,
} from "./safetensors.js";
import { assertFiniteTensors } from "./finite.js";
import { printable } from "../util/printable.js";
import { BadExpertError } from "../util/errors.js";

export interface LoadOptions extends ReadOptions {
  /** Refuse a file whose float tensors hold NaN or ±Infinity (naming the file and tensor). */
  requireFinite?: boolean;
}

const TO_ST: Partial<Record<DType, SafetensorsDType>> = {
  float32: "F32",
  float64: "F64",
  int64: "I64",
  int32: "I32",
  int16: "I16",
  int8: "I8",
  uint8: "U8",
  bool: "BOOL",
};
const FROM_ST: Partial<Record<SafetensorsDType, DType>> = {
  F32: "float32",
  F64: "float64",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};

export function toRaw(t: Tensor, name: string): RawTensor {
  const dtype = TO_ST[t.dtype];
  if (dtype === undefined)
    throw new TypeError(
      `saveTensors: tensor ${printable(name)} has dtype ${t.dtype}, which is not written (convert it to float32)`,
    );
  const data = t.data();
  return { dtype, shape: t.shape, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function fromRaw(r: RawTensor): Tensor {
  if (r.dtype === "F16" || r.dtype === "BF16") return tensor(decodeToFloat32(r), { shape: r.shape });
  const dtype = FROM_ST[r.dtype];
  if (dtype === undefined) throw new BadExpertError("E_MODEL_FORMAT", `loadTensors: unsupported dtype ${r.dtype}`);
  return fromBytes(r.data, dtype, r.shape);
}

/** Writes named tensors (e.g. a module's stateDict()) to a .safetensors file, atomically; returns its size and SHA-256. */
export async function saveTensors(
  path: string,
  tensors: Map<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<WrittenFile> {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of tensors) raw.set(k, toRaw(t, k));
  return writeSafetensors(path, raw, metadata);
}

/** Reads a .safetensors file into new tensors the caller owns (dispose them, e.g. with `dispose(map)`). */
export async function loadTensors(
  path: string,
  o: LoadOptions = {},
): Promise<{ tensors: Map<string, Tensor>; metadata: Record<string, string> }> {
  const file = await readSafetensors(path, o);
  return { tensors: tensorsFromFile(file, path, o), metadata: file.metadata };
}

/** New tensors (the caller owns them) from a parsed file; `source` names the file in errors. */
export function tensorsFromFile(
  file: SafetensorsFile,
  source: string,
  o: { requireFinite?: boolean } = {},
): Map<string, Tensor> {
  if (o.requireFinite === true) assertFiniteTensors(file.tensors, source);
  return rawToTensors(file.tensors, source);
}

export function tensorsFromBytes(bytes: Uint8Array, source?: string): Map<string, Tensor> {
  return rawToTensors(parseSafetensors(bytes, source).tensors, source ?? "buffer");
}

function rawToTensors(raw: Map<string, RawTensor>, source: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  try {
    for (const [k, r] of raw) out.set(k, fromRaw(r));
  } catch (e) {
    for (const t of out.values()) t.dispose();
    throw new BadExpertError("E_MODEL_FORMAT", `${source}: ${(e as Error).message}`, { cause: e });
  }
  return out;
}
