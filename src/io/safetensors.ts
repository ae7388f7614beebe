// The safetensors container format, written from the published specification:
//
//   [8 bytes]  N, little-endian u64: size of the JSON header
//   [N bytes]  UTF-8 JSON: { name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str} }
//   [rest]     the byte buffer; offsets are relative to its start, data is little-endian, C order
//
// This module is deliberately independent of the tensor engine: it moves bytes and
// validates structure, so checkpoints can be inspected, checked and produced without
// the native addon being built.

import { createHash } from "node:crypto";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { FileReadError, openRegularFile } from "../util/read-regular-file.js";
import { escapeControls, printable, printableValue } from "../util/printable.js";
import { BadExpertError } from "../util/errors.js";

export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** One tensor as stored: `data` holds little-endian bytes and may be a view into the file buffer. */
export interface RawTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

const ITEM_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

// Write order of the reference writer: dtypes by descending rank, then name. The ranks group
// dtypes by alignment (8, 4, 2, 1 bytes), so every tensor starts aligned to its element size
// once the header is padded; the order within a group is the reference's own (I64 before F64,
// F32 before I32, ...), kept so that our files are byte-identical to the ones it writes.
const WRITE_RANK: Readonly<Record<SafetensorsDType, number>> = {
  I64: 9,
  F64: 8,
  F32: 7,
  I32: 6,
  BF16: 5,
  F16: 4,
  I16: 3,
  I8: 2,
  U8: 1,
  BOOL: 0,
};

const METADATA_KEY = "__metadata__";

// The reference implementation refuses larger headers; a header this size would only
// come from a corrupt or hostile file, and we would otherwise try to allocate it.
export const MAX_HEADER_BYTES = 100_000_000;

export interface ReadOptions {
  /** Refuse headers larger than this (default: the reference's 100 MB). */
  maxHeaderBytes?: number;
  /** Refuse files larger than this before reading them (default: no limit). */
  maxFileBytes?: number;
}

// Typed-array views use host byte order; the format is little-endian. Every bulk copy
// below is only valid on little-endian hosts, so big-endian hosts take a byte-swap path.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === "string" && Object.prototype.hasOwnProperty.call(ITEM_SIZE, value);
}

export function bytesPerElement(dtype: SafetensorsDType): number {
  if (!isDType(dtype)) {
    // Callers outside strict TypeScript (JSON configs, JS scripts) can still pass junk.
    throw new Error(`safetensors: unknown dtype ${printableValue(dtype)}`);
  }
  return ITEM_SIZE[dtype];
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}

// BigInt so that a hostile shape like [2^40, 2^40] cannot overflow into a plausible size.
function byteSize(shape: readonly number[], dtype: SafetensorsDType): bigint {
  let n = BigInt(ITEM_SIZE[dtype]);
  for (const d of shape) n *= BigInt(d);
  return n;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isSize(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

// Rust strings (the reference reader) cannot hold lone surrogates; JSON.stringify would
// emit them as \udXXX escapes that the reference parser rejects.
const LONE_SURROGATE = /\p{Surrogate}/u;

// ---------------------------------------------------------------------------------------
// Reading

/**
 * Parse a complete safetensors file held in memory. Tensor data are views into `bytes`
 * (no copy), so keep `bytes` alive and unmodified while the tensors are in use.
 * `source` (a file name) is only used to make error messages point at the file.
 */
export function parseSafetensors(bytes: Uint8Array, source?: string, o: ReadOptions = {}): SafetensorsFile {
  const where = source === undefined ? "safetensors: " : `safetensors: ${source}: `;
  const maxHeader = o.maxHeaderBytes ?? MAX_HEADER_BYTES;
  // Explicitly typed so that TypeScript treats `fail(...)` as ending control flow.
  const fail: (message: string) => never = (message) => {
    throw new BadExpertError("E_MODEL_FORMAT", where + message);
  };
  // A Node Buffer is a Uint8Array whose slice() shares memory; handing out plain
  // Uint8Array views keeps the copy/view semantics of `data` unsurprising.
  const file = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  if (file.byteLength < 8) {
    fail(`file is ${file.byteLength} bytes, shorter than the 8-byte header-size prefix`);
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerSize = view.getBigUint64(0, true);
  if (headerSize > BigInt(maxHeader)) {
    fail(`header size ${headerSize} exceeds the ${maxHeader}-byte limit`);
  }
  if (8n + headerSize > BigInt(file.byteLength)) {
    fail(`header size ${headerSize} does not fit in the file: 8 + ${headerSize} > ${file.byteLength} bytes`);
  }
  const headerEnd = 8 + Number(headerSize);

  let headerText = "";
  try {
    // fatal: malformed UTF-8 must be an error, not silently become U+FFFD in a tensor name.
    // ignoreBOM: a BOM is not valid at the start of the header, so keep it and let JSON reject it.
    headerText = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(file.subarray(8, headerEnd));
  } catch {
    fail("header is not valid UTF-8");
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (err) {
    fail(`header is not valid JSON (${escapeControls(err instanceof Error ? err.message : String(err))})`);
  }
  if (!isPlainObject(header)) {
    fail(`header must be a JSON object, found ${Array.isArray(header) ? "an array" : printableValue(header)}`);
  }

  const buffer = file.subarray(headerEnd);
  const bufferSize = buffer.byteLength;
  const metadata: Record<string, string> = {};
  const found: { name: string; dtype: SafetensorsDType; shape: number[]; begin: number; end: number }[] = [];

  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      // The reference writes null when there is no metadata.
      if (info === null) continue;
      if (!isPlainObject(info)) fail(`"${METADATA_KEY}" must be an object of strings, found ${printableValue(info)}`);
      for (const [key, value] of Object.entries(info)) {
        if (typeof value !== "string") {
          fail(`"${METADATA_KEY}" entry ${printable(key)} must be a string, found ${printableValue(value)}`);
        }
        // defineProperty, not assignment: a key "__proto__" from a file must stay plain data.
        Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }

    const tensor = `tensor ${printable(name)}: `;
    if (!isPlainObject(info)) {
      fail(`${tensor}expected an object {dtype, shape, data_offsets}, found ${printableValue(info)}`);
    }
    const { dtype, shape, data_offsets: offsets } = info;
    if (!isDType(dtype)) {
      fail(`${tensor}unknown dtype ${printableValue(dtype)} (expected one of ${Object.keys(ITEM_SIZE).join(", ")})`);
    }
    if (!Array.isArray(shape)) {
      fail(`${tensor}shape must be an array of non-negative integers, found ${printableValue(shape)}`);
    }
    const dims: number[] = [];
    for (const [axis, d] of (shape as unknown[]).entries()) {
      if (!isSize(d)) {
        fail(
          `${tensor}shape ${printableValue(shape)} has invalid dimension ${printableValue(d)} at axis ${axis} (expected a non-negative integer)`,
        );
      }
      dims.push(d);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !isSize(offsets[0]) || !isSize(offsets[1])) {
      fail(`${tensor}data_offsets must be [begin, end] with non-negative integers, found ${printableValue(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) {
      fail(`${tensor}data_offsets [${begin},${end}] end before they begin`);
    }
    if (end > bufferSize) {
      fail(`${tensor}data_offsets [${begin},${end}] extend past the end of the ${bufferSize}-byte data buffer`);
    }
    const needed = byteSize(dims, dtype);
    if (needed !== BigInt(end - begin)) {
      fail(
        `${tensor}shape ${formatShape(dims)} with dtype ${dtype} needs ${needed} bytes but data_offsets span ${end - begin}`,
      );
    }
    found.push({ name, dtype, shape: dims, begin, end });
  }

  // The reference rejects any buffer its tensors do not tile exactly: no overlaps (which
  // would let one write alias another tensor) and no gaps or trailing bytes (hidden data).
  // Sorting by (begin, end) lets empty tensors sit at any boundary.
  found.sort((a, b) => a.begin - b.begin || a.end - b.end || compareNames(a.name, b.name));
  let covered = 0;
  let previous: string | undefined;
  for (const t of found) {
    const tensor = `tensor ${printable(t.name)}: `;
    if (t.begin < covered) {
      fail(
        `${tensor}data_offsets [${t.begin},${t.end}] overlap tensor ${printable(previous ?? "")}, which ends at ${covered}`,
      );
    }
    if (t.begin > covered) {
      const after =
        previous === undefined ? "the buffer starts at 0" : `tensor ${printable(previous ?? "")} ends at ${covered}`;
      fail(
        `${tensor}data_offsets [${t.begin},${t.end}] leave a ${t.begin - covered}-byte gap: expected begin ${covered} (${after}); tensors must cover the data buffer contiguously`,
      );
    }
    covered = t.end;
    previous = t.name;
  }
  if (covered !== bufferSize) {
    const last =
      previous === undefined ? "there are no tensors" : `the last, ${printable(previous ?? "")}, ends at ${covered}`;
    fail(
      `data buffer is ${bufferSize} bytes but tensors cover only ${covered} (${last}); trailing bytes are not allowed`,
    );
  }

  const tensors = new Map<string, RawTensor>();
  for (const t of found) {
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: buffer.subarray(t.begin, t.end) });
  }
  return { tensors, metadata };
}

/**
 * The bytes of a safetensors file, read only after cheap checks: that it is a regular file, that
 * it is within `maxFileBytes`, and that its 8-byte prefix declares a header within
 * `maxHeaderBytes` that fits in the file. A hostile size never causes a large allocation.
 */
export async function readSafetensorsBytes(path: string, o: ReadOptions = {}): Promise<Uint8Array> {
  const where = `safetensors: ${path}: `;
  // Type and size are checked on the open handle (a FIFO or a link to /dev/zero is refused before a byte is read).
  let opened: { handle: FileHandle; size: number };
  try {
    opened = await openRegularFile(path, { maxBytes: Number.MAX_SAFE_INTEGER, what: "safetensors file" });
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    const why =
      err.reason === "EISDIR"
        ? "is a directory, not a safetensors file"
        : err.reason === "ETYPE"
          ? "is not a regular file (a device, socket or pipe)"
          : `cannot read (${err.reason}${err.reason === "ENOENT" ? ": no such file" : ""})`;
    throw new BadExpertError("E_IO", `${where}${why}`, { cause: err });
  }
  const { handle, size } = opened;
  try {
    if (o.maxFileBytes !== undefined && size > o.maxFileBytes)
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `${where}file is ${size} bytes, more than the ${o.maxFileBytes} expected`,
      );
    if (size < 8)
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `${where}file is ${size} bytes, shorter than the 8-byte header-size prefix`,
      );
    const prefix = new Uint8Array(8);
    await handle.read(prefix, 0, 8, 0);
    const headerSize = new DataView(prefix.buffer).getBigUint64(0, true);
    const maxHeader = o.maxHeaderBytes ?? MAX_HEADER_BYTES;
    if (headerSize > BigInt(maxHeader))
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `${where}header size ${headerSize} exceeds the ${maxHeader}-byte limit`,
      );
    if (8n + headerSize > BigInt(size))
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `${where}header size ${headerSize} does not fit in the file: 8 + ${headerSize} > ${size} bytes`,
      );
    const bytes = new Uint8Array(size);
    let at = 0;
    // A file that shrinks while we read it ends the loop early; the parser then sees the short buffer.
    while (at < size) {
      const { bytesRead } = await handle.read(bytes, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return at === size ? bytes : bytes.subarray(0, at);
  } finally {
    await handle.close();
  }
}

export async function readSafetensors(path: string, o: ReadOptions = {}): Promise<SafetensorsFile> {
  return parseSafetensors(await readSafetensorsBytes(path, o), path, o);
}

// ---------------------------------------------------------------------------------------
// Writing

// The reference orders names by Rust string comparison, i.e. by UTF-8 bytes. JS `<` compares
// UTF-16 code units, which disagrees for characters above U+FFFF; code point order does not.
function compareNames(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done === true) return cb.done === true ? 0 : -1;
    if (cb.done === true) return 1;
    const diff = (ca.value.codePointAt(0) ?? 0) - (cb.value.codePointAt(0) ?? 0);
    if (diff !== 0) return diff;
  }
}

function checkTensorForWriting(name: string, t: RawTensor): void {
  const tensor = `safetensors: tensor ${printable(name)}: `;
  if (name === METADATA_KEY) throw new Error(`${tensor}this name is reserved for file metadata`);
  if (LONE_SURROGATE.test(name)) throw new Error(`${tensor}name contains an unpaired UTF-16 surrogate`);
  if (!isDType(t.dtype)) throw new Error(`${tensor}unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every(isSize)) {
    throw new Error(`${tensor}shape ${JSON.stringify(t.shape)} must be an array of non-negative integers`);
  }
  const needed = byteSize(t.shape, t.dtype);
  if (needed !== BigInt(t.data.byteLength)) {
    throw new Error(
      `${tensor}shape ${formatShape(t.shape)} with dtype ${t.dtype} needs ${needed} bytes but data has ${t.data.byteLength}`,
    );
  }
}

/**
 * Encode tensors in the layout the reference library produces: tensors sorted by dtype
 * (alignment descending, see WRITE_RANK) then name, packed with no gaps, header padded with spaces so the
 * data buffer starts on an 8-byte boundary (which lets readers map it without copying).
 */
export function serializeSafetensors(
  tensors: Map<string, RawTensor> | Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of list) checkTensorForWriting(name, t);
  list.sort(([na, a], [nb, b]) => WRITE_RANK[b.dtype] - WRITE_RANK[a.dtype] || compareNames(na, nb));

  // Built by hand rather than with JSON.stringify(object): object keys that look like array
  // indices ("0", "12") are enumerated first by JS, which would break the sorted order.
  const parts: string[] = [];
  const metaKeys = metadata === undefined ? [] : Object.keys(metadata).sort(compareNames);
  if (metadata !== undefined && metaKeys.length > 0) {
    const fields: string[] = [];
    for (const key of metaKeys) {
      const value = metadata[key];
      if (typeof value !== "string") {
        throw new Error(
          `safetensors: metadata entry ${JSON.stringify(key)} must be a string, found ${JSON.stringify(value)}`,
        );
      }
      if (LONE_SURROGATE.test(key) || LONE_SURROGATE.test(value)) {
        throw new Error(`safetensors: metadata entry ${JSON.stringify(key)} contains an unpaired UTF-16 surrogate`);
      }
      fields.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${fields.join(",")}}`);
  }
  let offset = 0;
  for (const [name, t] of list) {
    const end = offset + t.data.byteLength;
    parts.push(
      `${JSON.stringify(name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padding = (8 - (json.byteLength % 8)) % 8;
  const headerSize = json.byteLength + padding;

  const out = new Uint8Array(8 + headerSize + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerSize), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerSize);
  let at = 8 + headerSize;
  for (const [, t] of list) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Write atomically (returning the file's size and SHA-256): the bytes go to `<path>.tmp-<pid>`, are flushed, and only then renamed
 * over `path`, so a crash or error never leaves a truncated checkpoint under the real name.
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, RawTensor> | Record<string, RawTensor>,
  metadata?: Record<string, string>,
): Promise<WrittenFile> {
  // Serialize first so invalid tensors fail before anything touches the disk.
  const bytes = serializeSafetensors(tensors, metadata);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return { bytes: bytes.byteLength, sha256: sha256Hex(bytes) };
}

/** Size and SHA-256 of a written file, for manifests that pin their weight files. */
export interface WrittenFile {
  bytes: number;
  sha256: string;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// ---------------------------------------------------------------------------------------
// Element conversions

function checkData(t: RawTensor): number {
  const size = bytesPerElement(t.dtype);
  const needed = byteSize(t.shape, t.dtype);
  if (needed !== BigInt(t.data.byteLength)) {
    throw new Error(
      `safetensors: shape ${formatShape(t.shape)} with dtype ${t.dtype} needs ${needed} bytes but data has ${t.data.byteLength}`,
    );
  }
  return t.data.byteLength / size;
}

/**
 * Copy little-endian elements into a fresh, aligned ArrayBuffer in host byte order. The copy
 * is what makes unaligned views usable: a Float32Array cannot start at an odd byte offset.
 */
function hostOrderCopy(data: Uint8Array, itemSize: 2 | 4 | 8): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  if (!HOST_IS_LITTLE_ENDIAN) {
    const view = new DataView(copy.buffer);
    for (let at = 0; at < copy.byteLength; at += itemSize) {
      // Reading little-endian and writing with DataView's default (big-endian) byte order
      // stores the element in host order on a big-endian host.
      if (itemSize === 2) view.setUint16(at, view.getUint16(at, true));
      else if (itemSize === 4) view.setUint32(at, view.getUint32(at, true));
      else view.setBigUint64(at, view.getBigUint64(at, true));
    }
  }
  return copy.buffer;
}

// IEEE binary16 bits -> binary32 bits. Every half value is exactly representable as a float,
// and working on bits (not numbers) keeps the sign of zero and NaN payloads intact.
function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 127 - 15) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half (mantissa * 2^-24) is a normal float: shift until the leading bit
  // reaches the implicit-one position, lowering the exponent from that of 2^-14 each step.
  let floatExponent = 127 - 14;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    floatExponent -= 1;
  }
  return (sign | (floatExponent << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

/** Decode a floating-point tensor to a fresh Float32Array (never a view into the file). */
export function decodeToFloat32(t: RawTensor): Float32Array {
  const count = checkData(t);
  switch (t.dtype) {
    case "F32":
      return new Float32Array(hostOrderCopy(t.data, 4));
    case "F64": {
      const out = new Float32Array(count);
      // TypedArray.set converts element types natively (round-to-nearest into float32).
      out.set(new Float64Array(hostOrderCopy(t.data, 8)));
      return out;
    }
    case "F16": {
      const halves = new Uint16Array(hostOrderCopy(t.data, 2));
      return new Float32Array(Uint32Array.from(halves, halfBitsToFloatBits).buffer);
    }
    case "BF16": {
      // bfloat16 is the top half of a float32, so widening is a shift.
      const halves = new Uint16Array(hostOrderCopy(t.data, 2));
      return new Float32Array(Uint32Array.from(halves, (h) => (h << 16) >>> 0).buffer);
    }
    default:
      // Integer and bool tensors are not silently turned into floats: I64 would lose
      // precision above 2^24, and a label tensor becoming float is usually a bug.
      throw new Error(`safetensors: decodeToFloat32 handles F64, F32, F16 and BF16, not ${t.dtype}`);
  }
}

// binary32 bits -> binary16 bits, rounding to nearest with ties to even (the IEEE default,
// and what torch's .half() does), overflowing to infinity.
function floatBitsToHalfBits(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  const mantissa = f & 0x7fffff;
  if (exponent === 0xff) {
    // Keep NaN a NaN: force the quiet bit so a payload living only in the dropped low bits
    // cannot turn it into infinity.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Below half's normal range: result is mantissa * 2^-24. Values under 2^-25 (half the
    // smallest subnormal) round to zero; float subnormals are far below that too.
    if (halfExponent < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    let bits = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (bits & 1) === 1)) bits += 1;
    // Rounding up from the largest subnormal yields 0x400, which is the smallest normal.
    return sign | bits;
  }
  let bits = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (bits & 1) === 1)) bits += 1;
  // A carry out of the mantissa correctly bumps the exponent, up to 0x7c00 (infinity).
  return sign | bits;
}

/** Encode floats as little-endian IEEE binary16 bytes, for writing F16 tensors. */
export function float32ToFloat16Bytes(x: Float32Array): Uint8Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const halves = Uint16Array.from(bits, floatBitsToHalfBits);
  const out = new Uint8Array(halves.buffer);
  if (!HOST_IS_LITTLE_ENDIAN) {
    const view = new DataView(out.buffer);
    for (let at = 0; at < out.byteLength; at += 2) view.setUint16(at, view.getUint16(at), true);
  }
  return out;
}
