// Builders for torch.save files made byte by byte: pickle opcodes, a zip writer that can lie in
// any field (sizes, offsets, names, counts, ZIP64 records), and the hostile files of the reader
// tests and the fuzzing. The opcodes are the ones PyTorch 2.x writes (pickle protocol 2), so a
// file built here from honest values reads like one torch.save wrote.
import { crc32, deflateRawSync } from "node:zlib";

// ---- pickle ----

export const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  POP: 0x30,
  EMPTY_DICT: 0x7d,
  EMPTY_LIST: 0x5d,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  LIST: 0x6c,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  APPEND: 0x61,
  REDUCE: 0x52,
  BINPERSID: 0x51,
  NEWFALSE: 0x89,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  LONG4: 0x8b,
} as const;

const utf8 = (s: string): number[] => Array.from(new TextEncoder().encode(s));

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

/** A pickle from parts: opcode bytes and byte arrays, with PROTO 2 in front and STOP behind. */
export function pickle(...parts: (number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [0x80, 0x02];
  for (const p of parts) {
    if (typeof p === "number") out.push(p);
    else for (const b of p) out.push(b);
  }
  out.push(OP.STOP);
  return Uint8Array.from(out);
}

export const p = {
  str: (s: string): number[] => [0x58, ...u32(utf8(s).length), ...utf8(s)],
  int(n: number): number[] {
    if (n >= 0 && n < 256) return [0x4b, n];
    if (n >= 0 && n < 65536) return [0x4d, n & 0xff, n >> 8];
    if (n >= -(2 ** 31) && n < 2 ** 31) return [0x4a, ...u32(n >>> 0)];
    // LONG1 of 8 bytes, little-endian two's complement.
    const b = new DataView(new ArrayBuffer(8));
    b.setBigInt64(0, BigInt(n), true);
    return [0x8a, 8, ...new Uint8Array(b.buffer)];
  },
  global: (module: string, name: string): number[] => [0x63, ...utf8(`${module}\n${name}\n`)],
  put: (i: number): number[] => (i < 256 ? [OP.BINPUT, i] : [OP.LONG_BINPUT, ...u32(i)]),
  get: (i: number): number[] => (i < 256 ? [OP.BINGET, i] : [OP.LONG_BINGET, ...u32(i)]),
  tuple: (...items: number[][]): number[] => [OP.MARK, ...items.flat(), OP.TUPLE],
  /** A dict with SETITEMS, as Python's pickler writes one of two or more entries. */
  dict: (entries: [string, number[]][]): number[] => [
    OP.EMPTY_DICT,
    OP.MARK,
    ...entries.flatMap(([k, v]) => [...p.str(k), ...v]),
    OP.SETITEMS,
  ],
};

export interface TensorSpec {
  key: string;
  type?: string;
  numel: number;
  offset?: number;
  shape: number[];
  /** Row-major contiguous when absent. */
  stride?: number[];
}

export function contiguousStride(shape: number[]): number[] {
  return shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
}

/** _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()), as PyTorch pickles a tensor. */
export function tensorOps(t: TensorSpec): number[] {
  const persid = p.tuple(
    p.str("storage"),
    p.global("torch", t.type ?? "FloatStorage"),
    p.str(t.key),
    p.str("cpu"),
    p.int(t.numel),
  );
  return [
    ...p.global("torch._utils", "_rebuild_tensor_v2"),
    OP.MARK,
    ...persid,
    OP.BINPERSID,
    ...p.int(t.offset ?? 0),
    ...p.tuple(...t.shape.map((d) => p.int(d))),
    ...p.tuple(...(t.stride ?? contiguousStride(t.shape)).map((d) => p.int(d))),
    OP.NEWFALSE,
    ...p.global("collections", "OrderedDict"),
    OP.EMPTY_TUPLE,
    OP.REDUCE,
    OP.TUPLE,
    OP.REDUCE,
  ];
}

/** A state_dict pickle {name: tensor, ...}. */
export function stateDictPickle(tensors: [string, TensorSpec][]): Uint8Array {
  return pickle(p.dict(tensors.map(([k, t]) => [k, tensorOps(t)])));
}

// ---- zip ----

export interface ZipSpec {
  name: string;
  data: Uint8Array;
  /** Deflate the data (PyTorch stores; other zip tools deflate). */
  deflate?: boolean;
  /** The compressed bytes as written, instead of the honest ones (e.g. a stream longer than declared). */
  compressed?: Uint8Array;
  /** The uncompressed size the headers declare, instead of data.length. */
  declaredSize?: number;
  /** The name in the local header, instead of `name`. */
  localName?: string;
  flags?: number;
  method?: number;
  /** Declare the sizes through a ZIP64 extra field (sizes 0xffffffff in the header). */
  zip64?: boolean;
  /** Bytes of the ZIP64 extra field's data actually written (for a field shorter than it should be). */
  zip64ExtraBytes?: number;
}

export interface ZipOptions {
  /** The central directory offset the end record declares. */
  directoryOffset?: number;
  /** The entry count the end record declares. */
  count?: number;
  /** Write a ZIP64 end record and locator (with these overrides). */
  zip64End?: { count?: number; directoryOffset?: number; recordOffset?: number };
}

function le(n: number, bytes: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  for (let i = 0; i < bytes; i++) {
    out.push(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

/** A zip archive of the entries, honest unless told otherwise. */
export function zip(entries: ZipSpec[], o: ZipOptions = {}): Uint8Array {
  const chunks: (number[] | Uint8Array)[] = [];
  const central: number[][] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? (e.deflate || e.compressed ? 8 : 0);
    const body = e.compressed ?? (e.deflate ? new Uint8Array(deflateRawSync(e.data)) : e.data);
    const size = e.declaredSize ?? e.data.length;
    const crc = crc32(e.data);
    const name = utf8(e.name);
    const localName = utf8(e.localName ?? e.name);
    const z64 = e.zip64 ? [...le(size, 8), ...le(body.length, 8)].slice(0, e.zip64ExtraBytes ?? 16) : [];
    const extra = e.zip64 ? [...le(1, 2), ...le(z64.length, 2), ...z64] : [];
    const sizes = e.zip64 ? [...le(0xffffffff, 4), ...le(0xffffffff, 4)] : [...le(body.length, 4), ...le(size, 4)];
    const local = [
      ...le(0x04034b50, 4),
      20,
      0,
      ...le(e.flags ?? 0, 2),
      ...le(method, 2),
      0,
      0,
      0,
      0,
      ...le(crc, 4),
      ...sizes,
      ...le(localName.length, 2),
      ...le(extra.length, 2),
      ...localName,
      ...extra,
    ];
    chunks.push(local, body);
    central.push([
      ...le(0x02014b50, 4),
      20,
      0,
      20,
      0,
      ...le(e.flags ?? 0, 2),
      ...le(method, 2),
      0,
      0,
      0,
      0,
      ...le(crc, 4),
      ...sizes,
      ...le(name.length, 2),
      ...le(extra.length, 2),
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...le(offset, 4),
      ...name,
      ...extra,
    ]);
    offset += local.length + body.length;
  }
  const dirOffset = offset;
  const dir = central.flat();
  const tail: number[] = [];
  if (o.zip64End) {
    const recordAt = dirOffset + dir.length;
    tail.push(...le(0x06064b50, 4), ...le(44, 8), 45, 0, 45, 0, ...le(0, 4), ...le(0, 4));
    tail.push(
      ...le(o.zip64End.count ?? entries.length, 8),
      ...le(o.zip64End.count ?? entries.length, 8),
      ...le(dir.length, 8),
      ...le(o.zip64End.directoryOffset ?? dirOffset, 8),
    );
    tail.push(...le(0x07064b50, 4), ...le(0, 4), ...le(o.zip64End.recordOffset ?? recordAt, 8), ...le(1, 4));
  }
  const count = o.count ?? entries.length;
  tail.push(
    ...le(0x06054b50, 4),
    0,
    0,
    0,
    0,
    ...le(count, 2),
    ...le(count, 2),
    ...le(dir.length, 4),
    ...le(o.directoryOffset ?? dirOffset, 4),
    0,
    0,
  );
  const out = new Uint8Array(offset + dir.length + tail.length);
  let at = 0;
  for (const c of [...chunks, dir, tail]) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A torch.save zip: `<prefix>/data.pkl`, the storages as `<prefix>/data/<key>`, byteorder and version records. */
export function torchZip(
  pkl: Uint8Array,
  storages: Record<string, Uint8Array | ZipSpec>,
  o: { prefix?: string; deflate?: boolean; extra?: ZipSpec[]; zip?: ZipOptions } = {},
): Uint8Array {
  const prefix = o.prefix ?? "archive";
  const entries: ZipSpec[] = [
    { name: `${prefix}/data.pkl`, data: pkl, deflate: o.deflate },
    { name: `${prefix}/byteorder`, data: new TextEncoder().encode("little") },
    ...Object.entries(storages).map(([k, v]) =>
      v instanceof Uint8Array
        ? { name: `${prefix}/data/${k}`, data: v, deflate: o.deflate }
        : { ...v, name: `${prefix}/data/${k}` },
    ),
    { name: `${prefix}/version`, data: new TextEncoder().encode("3\n") },
    ...(o.extra ?? []),
  ];
  return zip(entries, o.zip);
}

export function float32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A raw deflate stream of `n` zero bytes, made in 64 MiB pieces (never holds `n` bytes at once). */
export function zerosDeflated(n: number): Uint8Array {
  const piece = 64 * 1024 * 1024;
  const zeros = new Uint8Array(Math.min(n, piece));
  const parts: Buffer[] = [];
  // Full flushes end each piece on a byte boundary, so the raw pieces concatenate into one stream.
  for (let left = n; left > 0; left -= piece) {
    const last = left <= piece;
    parts.push(
      deflateRawSync(zeros.subarray(0, Math.min(left, piece)), {
        finishFlush: last ? undefined : 3 /* Z_FULL_FLUSH */,
      }),
    );
  }
  return new Uint8Array(Buffer.concat(parts));
}
