// The `torch.save` file layout (the zip format PyTorch has written since 1.6, as 2.x writes it):
//   <archive>/data.pkl                 the pickled object; tensors refer to storages by key
//   <archive>/data/<key>               one storage's raw bytes
//   <archive>/byteorder                "little" or "big" (absent before PyTorch 2.0: little)
//   <archive>/version, .data/version, .data/serialization_id   format records (read, not needed)
// The pickle goes through the restricted unpickler with the allow-list below, so reading a
// file never runs code. Tensors come back as records; tensorsFromRecords() turns them into engine
// tensors.
//
// Sizes come from the file and are checked before anything is allocated: a tensor's view must lie
// inside its storage, a storage entry must hold exactly the bytes its record declares, and the
// bytes a file may make us hold (inflated entries plus the tensors built) and the elements that
// overlapping views (expand(), stride 0) may add beyond their storages have limits for the whole
// file, checked against the plan for every tensor before the first one is built.
import { fromBytes, tensor, type DType, type Tensor } from "../engine/index.js";
import { printable } from "../util/printable.js";
import { decodeToFloat32 } from "./safetensors.js";
import { ZipArchive } from "./zip.js";
import {
  PickleDict,
  PickleGlobal,
  PickleObject,
  PickleTuple,
  describe,
  unpickle,
  type GlobalHandler,
  type PickleLimits,
  type PickleValue,
} from "./pickle.js";
import { BadExpertError } from "../util/errors.js";

/** A torch.save file whose content is refused: sizes, storages, views or limits. */
export class TorchFileError extends BadExpertError {
  override name = "TorchFileError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_MODEL_FORMAT", message, options);
  }
}

export interface TorchReadLimits {
  /** Bytes that reading one file may hold: its inflated entries plus the tensors built from it. */
  maxBytes: number;
  /** Bytes of the pickle (data.pkl): the object graph, not the tensor data. */
  maxPickleBytes: number;
  /**
   * Elements that views with overlapping strides (a stride of 0, as `expand()` makes) may add
   * beyond the storages they view, over the whole file. PyTorch saves such a view as it is (a
   * small storage and stride 0), and a state_dict from training holds none or tiny ones; without
   * this limit a 12-byte storage could declare a 20000x20000 tensor.
   */
  maxExpandedElements: number;
  /** Limits of the unpickler (DEFAULT_PICKLE_LIMITS where absent). */
  pickle?: Partial<PickleLimits>;
}

export const DEFAULT_TORCH_READ_LIMITS: TorchReadLimits = {
  maxBytes: 4 * 1024 ** 3,
  maxPickleBytes: 256 * 1024 ** 2,
  maxExpandedElements: 1 << 24,
};

/** More dimensions than any tensor of a model has (PyTorch's kernels stop at 25 or 64). */
const MAX_DIMS = 64;

/** Storage element types by PyTorch's legacy storage class name; undefined: known but not supported here. */
const STORAGE_DTYPES: Record<string, DType | "float16" | "bfloat16" | undefined> = {
  DoubleStorage: "float64",
  FloatStorage: "float32",
  HalfStorage: "float16",
  BFloat16Storage: "bfloat16",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
  UntypedStorage: "uint8",
  ComplexFloatStorage: undefined,
  ComplexDoubleStorage: undefined,
  QInt8Storage: undefined,
  QUInt8Storage: undefined,
  QInt32Storage: undefined,
  QUInt4x2Storage: undefined,
  QUInt2x4Storage: undefined,
};

const BYTES: Record<DType, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** A storage the pickle refers to: `data/<key>` of the archive, `numel` elements of `dtype`. */
export class StorageRef extends PickleObject {
  readonly kind = "storage";
  constructor(
    readonly key: string,
    readonly storageType: string,
    readonly numel: number,
  ) {
    super();
  }
}

/** A tensor as _rebuild_tensor_v2 describes it: a strided view of a storage. */
export class TensorRecord extends PickleObject {
  readonly kind = "tensor";
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    /** Elements of the view (the product of `shape`). */
    readonly numel: number,
  ) {
    super();
  }
  // Parameters pickled by PyTorch 2.x carry their Python attributes as state; there are none we need.
  override build(_state: PickleValue): void {}
}

function intTuple(v: PickleValue, what: string): number[] {
  const items = v instanceof PickleTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items) throw new TypeError(`${what} must be a tuple of ints, got ${describe(v)}`);
  if (items.length > MAX_DIMS) throw new RangeError(`${what} has ${items.length} dims (more than ${MAX_DIMS})`);
  if (!items.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0)) {
    throw new TypeError(
      `${what} must be a tuple of non-negative ints, got (${items.map((x) => (typeof x === "number" || typeof x === "bigint" ? String(x) : describe(x))).join(", ")})`,
    );
  }
  return items as number[];
}

function rebuildTensor(args: PickleValue[]): TensorRecord {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef))
    throw new TypeError(`argument 0 must be a storage, got ${describe(storage ?? null)}`);
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0)
    throw new TypeError(`storage offset must be a non-negative int, got ${describe(offset ?? null)}`);
  const shape = intTuple(size ?? null, "size");
  const strides = intTuple(stride ?? null, "stride");
  if (shape.length !== strides.length)
    throw new RangeError(`size has ${shape.length} dims but stride has ${strides.length}`);
  if (offset > storage.numel)
    throw new RangeError(`storage offset ${offset} lies past the end of a storage of ${storage.numel} elements`);
  // Exact integers: a product or extent past 2^53 must not round to something that fits.
  const numel = shape.reduce((a, d) => a * BigInt(d), 1n);
  if (numel > BigInt(Number.MAX_SAFE_INTEGER))
    throw new RangeError(`a tensor of shape [${shape.join(", ")}] has ${numel} elements`);
  // The last element must lie inside the storage, or a crafted file could read past it.
  if (numel > 0n) {
    const last = shape.reduce((s, d, i) => s + BigInt(d - 1) * BigInt(strides[i] as number), BigInt(offset));
    if (last >= BigInt(storage.numel))
      throw new RangeError(
        `a tensor of shape [${shape.join(", ")}] and stride [${strides.join(", ")}] at offset ${offset} reaches element ${last} of a storage of ${storage.numel}`,
      );
  }
  return new TensorRecord(storage, offset, shape, strides, Number(numel));
}

function passThrough(args: PickleValue[]): PickleValue {
  return args[0] ?? null;
}

/** The allow-list: what each permitted global builds when called. */
const ALLOWED: Record<string, GlobalHandler> = {
  "collections.OrderedDict": {
    call: (args) => {
      const d = new PickleDict();
      const items = args[0];
      if (Array.isArray(items)) {
        for (const kv of items)
          if (kv instanceof PickleTuple && kv.items.length === 2)
            d.entries.set(kv.items[0] as PickleValue, kv.items[1] as PickleValue);
      }
      return d;
    },
  },
  "torch._utils._rebuild_tensor_v2": { call: rebuildTensor },
  "torch._utils._rebuild_tensor": { call: rebuildTensor },
  // (data, requires_grad, backward_hooks[, state]): the parameter's tensor is what we keep.
  "torch._utils._rebuild_parameter": { call: passThrough },
  "torch._utils._rebuild_parameter_with_state": { call: passThrough },
  "torch.Size": { call: passThrough },
  "builtins.set": { call: (args) => (Array.isArray(args[0]) ? args[0] : []) },
  "builtins.frozenset": { call: (args) => (Array.isArray(args[0]) ? args[0] : []) },
  // How protocol 2 pickles Python 3 bytes: _codecs.encode(text, "latin1").
  "_codecs.encode": {
    call: ([text, encoding]) => {
      if (typeof text !== "string" || encoding !== "latin1")
        throw new TypeError("only _codecs.encode(str, 'latin1') is allowed");
      return Uint8Array.from(text, (c) => c.charCodeAt(0));
    },
  },
};

function resolveGlobal(module: string, name: string): GlobalHandler | undefined {
  const full = `${module}.${name}`;
  if (Object.hasOwn(ALLOWED, full)) return ALLOWED[full];
  // Storage classes may only be named (in persistent ids), never called.
  if (module === "torch" && Object.hasOwn(STORAGE_DTYPES, name)) return {};
  return undefined;
}

function storageTypeName(t: PickleValue): string {
  if (t instanceof PickleGlobal) return t.name;
  if (typeof t === "string") return t; // PyTorch writes the dtype name for some storages ("float")
  throw new TypeError(`storage type must be a torch storage class, got ${describe(t)}`);
}

function persistentLoad(pid: PickleValue): StorageRef {
  // ('storage', storage_type, key, location, numel)
  if (!(pid instanceof PickleTuple) || pid.items[0] !== "storage" || pid.items.length < 5) {
    throw new TypeError(`expected ('storage', type, key, location, numel), got ${describe(pid)}`);
  }
  const [, type, key, , numel] = pid.items;
  if (typeof key !== "string" || !/^[\w.-]{1,200}$/.test(key))
    throw new TypeError(
      `storage key must be a plain name, got ${typeof key === "string" ? printable(key, 60) : describe(key ?? null)}`,
    );
  if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0)
    throw new TypeError(
      `storage size must be a non-negative int, got ${typeof numel === "bigint" ? String(numel) : describe(numel ?? null)}`,
    );
  return new StorageRef(key, storageTypeName(type ?? null), numel);
}

export interface TorchFile {
  /** The unpickled object: dicts, lists, tuples, numbers, strings and TensorRecords. */
  value: PickleValue;
  archive: ZipArchive;
  /** The archive's folder name inside the zip ("archive" for PyTorch 2.x buffers, the file's stem for paths). */
  prefix: string;
  littleEndian: boolean;
  source: string;
  limits: TorchReadLimits;
}

/** Finds the archive folder (the one holding data.pkl) of a torch.save or TorchScript zip. */
export function archivePrefix(zip: ZipArchive): string | undefined {
  for (const name of zip.entries.keys()) {
    const m = /^([^/]+)\/data\.pkl$/.exec(name);
    if (m) return m[1];
  }
  return undefined;
}

/** The file format version of a torch.save or TorchScript zip: `.data/version` (1.13 on) or `version` (undefined when absent). */
export function formatVersion(zip: ZipArchive): number | undefined {
  const prefix = archivePrefix(zip);
  if (prefix === undefined) return undefined;
  const record = [`${prefix}/.data/version`, `${prefix}/version`].find((r) => zip.has(r));
  if (record === undefined) return undefined;
  const v = Number(zip.readText(record).trim());
  return Number.isInteger(v) ? v : undefined;
}

/** True for a TorchScript archive (torch.jit.save), which holds code next to the data. */
export function isTorchScriptArchive(zip: ZipArchive): boolean {
  const prefix = archivePrefix(zip);
  return (
    prefix !== undefined &&
    (zip.has(`${prefix}/constants.pkl`) || [...zip.entries.keys()].some((k) => k.startsWith(`${prefix}/code/`)))
  );
}

/** Unpickles a torch.save zip file's object without executing anything. */
export function readTorchZip(bytes: Uint8Array, source: string, limits: Partial<TorchReadLimits> = {}): TorchFile {
  const all = { ...DEFAULT_TORCH_READ_LIMITS, ...limits };
  const archive = new ZipArchive(bytes, source, { maxInflatedBytes: all.maxBytes });
  const prefixes = [...archive.entries.keys()].filter((k) => /^[^/]+\/data\.pkl$/.test(k));
  if (prefixes.length === 0)
    throw new TorchFileError(`${source}: a zip file without data.pkl is not a torch.save file`);
  // Two pickles: which one PyTorch would read depends on the entry order; refuse to guess.
  if (prefixes.length > 1)
    throw new TorchFileError(
      `${source}: the zip holds ${prefixes.length} data.pkl records (${prefixes
        .slice(0, 3)
        .map((p) => printable(p, 60))
        .join(", ")}), a torch.save file has one`,
    );
  const prefix = archivePrefix(archive) as string;
  let littleEndian = true;
  if (archive.has(`${prefix}/byteorder`)) {
    const order = archive.readText(`${prefix}/byteorder`).trim();
    if (order !== "little" && order !== "big")
      throw new TorchFileError(`${source}: byteorder record must be "little" or "big", got ${printable(order, 40)}`);
    littleEndian = order === "little";
  }
  const pkl = `${prefix}/data.pkl`;
  const pklSize = archive.entries.get(pkl)?.size ?? 0;
  if (pklSize > all.maxPickleBytes)
    throw new TorchFileError(
      `${source}: data.pkl is ${pklSize} bytes, more than the ${all.maxPickleBytes}-byte limit for a pickle (the tensor data lives outside it)`,
    );
  const value = unpickle(archive.read(pkl), {
    resolveGlobal,
    persistentLoad,
    source: `${source}: data.pkl`,
    refusalHint:
      "a weights file should hold a state_dict (torch.save(model.state_dict(), path)), or save the whole model with TorchScript (torch.jit.script(model).save(path)) and import it with --torchscript",
    limits: all.pickle,
  });
  return { value, archive, prefix, littleEndian, source, limits: all };
}

/** Bytes per element as stored, and as built (half precision is widened to float32). */
function elementBytes(dtype: DType | "float16" | "bfloat16"): { stored: number; built: number } {
  return dtype === "float16" || dtype === "bfloat16"
    ? { stored: 2, built: 4 }
    : { stored: BYTES[dtype], built: BYTES[dtype] };
}

function storageDtype(file: TorchFile, r: TensorRecord, name: string): DType | "float16" | "bfloat16" {
  const type = r.storage.storageType;
  const dtype = Object.hasOwn(STORAGE_DTYPES, type) ? STORAGE_DTYPES[type] : undefined;
  if (dtype === undefined) {
    throw new TorchFileError(
      `${file.source}: tensor ${printable(name)} is stored as ${printable(type, 60)}, which is not supported (supported: ${Object.entries(
        STORAGE_DTYPES,
      )
        .filter(([, d]) => d)
        .map(([k]) => k)
        .join(", ")})`,
    );
  }
  return dtype;
}

/**
 * Checks every record against its storage entry and the file's limits before anything is
 * allocated: the entry exists and declares exactly numel x element size bytes, records that
 * share a storage agree on it, and the bytes to inflate and build and the elements added by
 * overlapping views fit the limits.
 */
function checkRecords(file: TorchFile, records: Map<string, TensorRecord>): void {
  const storages = new Map<string, StorageRef>();
  let toInflate = 0;
  let built = 0;
  let expanded = 0;
  for (const [name, r] of records) {
    const dtype = storageDtype(file, r, name);
    const { stored, built: perElement } = elementBytes(dtype);
    const key = r.storage.key;
    const seen = storages.get(key);
    if (seen && (seen.numel !== r.storage.numel || seen.storageType !== r.storage.storageType)) {
      throw new TorchFileError(
        `${file.source}: storage ${printable(key, 60)} is declared twice, as ${seen.numel} ${printable(seen.storageType, 40)} and as ${r.storage.numel} ${printable(r.storage.storageType, 40)}`,
      );
    }
    const entryName = `${file.prefix}/data/${key}`;
    const entry = file.archive.entries.get(entryName);
    if (!entry)
      throw new TorchFileError(
        `${file.source}: tensor ${printable(name)} refers to storage ${printable(key, 60)}, but ${printable(entryName)} is missing`,
      );
    const want = r.storage.numel * stored;
    if (entry.size !== want) {
      throw new TorchFileError(
        `${file.source}: storage ${printable(key, 60)} holds ${entry.size} bytes, but its record declares ${r.storage.numel} ${printable(r.storage.storageType, 40)} elements (${want} bytes)`,
      );
    }
    if (!seen) {
      storages.set(key, r.storage);
      if (entry.method !== 0) toInflate += entry.size;
    }
    built += r.numel * perElement;
    if (r.numel > r.storage.numel) expanded += r.numel - r.storage.numel;
    if (expanded > file.limits.maxExpandedElements) {
      throw new TorchFileError(
        `${file.source}: tensor ${printable(name)} of shape [${r.shape.join(", ")}] and stride [${r.stride.join(", ")}] repeats its ${r.storage.numel}-element storage; ` +
          `views like this add ${expanded} elements beyond their storages in this file, more than the limit of ${file.limits.maxExpandedElements} (a state_dict from training holds no expanded tensors)`,
      );
    }
  }
  const total = file.archive.inflatedBytes + toInflate + built;
  if (total > file.limits.maxBytes) {
    throw new TorchFileError(
      `${file.source}: reading this file would take ${total} bytes (${toInflate} to inflate, ${built} for ${records.size} tensors), more than the limit of ${file.limits.maxBytes}`,
    );
  }
}

/** Copies a tensor record's elements out of its storage into a new engine tensor (f16/bf16 widened to float32). */
function toTensor(file: TorchFile, r: TensorRecord, name: string): Tensor {
  const dtype = storageDtype(file, r, name);
  const size = elementBytes(dtype).stored;
  const storage = file.archive.read(`${file.prefix}/data/${r.storage.key}`, r.storage.numel * size);
  const count = r.numel;
  const contiguous = r.shape.every(
    (_, i) => r.shape[i] === 1 || r.stride[i] === r.shape.slice(i + 1).reduce((a, b) => a * b, 1),
  );
  let out: Uint8Array;
  if (contiguous) {
    out = storage.subarray(r.offset * size, (r.offset + count) * size);
  } else {
    // Walk the strided view in row-major order (views that share a storage, transposes, slices, expands).
    out = new Uint8Array(count * size);
    const index = new Array<number>(r.shape.length).fill(0);
    for (let i = 0; i < count; i++) {
      let src = r.offset;
      for (let d = 0; d < index.length; d++) src += (index[d] as number) * (r.stride[d] as number);
      out.set(storage.subarray(src * size, (src + 1) * size), i * size);
      for (let d = index.length - 1; d >= 0; d--) {
        index[d] = (index[d] as number) + 1;
        if ((index[d] as number) < (r.shape[d] as number)) break;
        index[d] = 0;
      }
    }
  }
  if (!file.littleEndian && size > 1) {
    if (out.buffer === storage.buffer) out = out.slice(); // never reverse the file's own bytes
    for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  }
  if (dtype === "float16" || dtype === "bfloat16") {
    return tensor(decodeToFloat32({ dtype: dtype === "float16" ? "F16" : "BF16", shape: r.shape, data: out }), {
      shape: r.shape,
    });
  }
  // fromBytes copies, so a contiguous view of the file's bytes is passed as it is.
  return fromBytes(out, dtype, r.shape);
}

/**
 * Engine tensors for the records, after checking all of them against their storages and the
 * file's limits; the caller owns (disposes) the result. Nothing is allocated for a file that is
 * refused.
 */
export function tensorsFromRecords(file: TorchFile, records: Map<string, TensorRecord>): Map<string, Tensor> {
  checkRecords(file, records);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [k, r] of records) tensors.set(k, toTensor(file, r, k));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return tensors;
}
