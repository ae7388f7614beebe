// The `torch.save` file layout (the zip format PyTorch has written since 1.6, as 2.x writes it):
//   <archive>/data.pkl                 the pickled object; tensors refer to storages by key
//   <archive>/data/<key>               one storage's raw bytes
//   <archive>/byteorder                "little" or "big" (absent before PyTorch 2.0: little)
//   <archive>/version, .data/version, .data/serialization_id   format records (read, not needed)
// The pickle goes through the restricted unpickler with the allow-list below, so reading a
// file never runs code. Tensors come back as records; toTensor() turns one into an engine tensor.
import { fromBytes, tensor, type DType, type Tensor } from "../engine/index.js";
import { decodeToFloat32 } from "./safetensors.js";
import { ZipArchive } from "./zip.js";
import { PickleDict, PickleGlobal, PickleObject, PickleTuple, describe, unpickle, type GlobalHandler, type PickleValue } from "./pickle.js";

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

const BYTES: Record<DType, number> = { float64: 8, float32: 4, float16: 2, bfloat16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1 };

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
  ) {
    super();
  }
  // Parameters pickled by PyTorch 2.x carry their Python attributes as state; there are none we need.
  override build(_state: PickleValue): void {}
}

function intTuple(v: PickleValue, what: string): number[] {
  const items = v instanceof PickleTuple ? v.items : Array.isArray(v) ? v : null;
  if (!items || !items.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)) {
    throw new TypeError(`${what} must be a tuple of non-negative ints, got ${describe(v)}`);
  }
  return items as number[];
}

function rebuildTensor(args: PickleValue[]): TensorRecord {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new TypeError(`argument 0 must be a storage, got ${describe(storage ?? null)}`);
  if (typeof offset !== "number" || !Number.isInteger(offset) || offset < 0) throw new TypeError(`storage offset must be a non-negative int, got ${describe(offset ?? null)}`);
  const shape = intTuple(size ?? null, "size");
  const strides = intTuple(stride ?? null, "stride");
  if (shape.length !== strides.length) throw new RangeError(`size has ${shape.length} dims but stride has ${strides.length}`);
  // The last element must lie inside the storage, or a crafted file could read past it.
  const last = shape.some((d) => d === 0) ? offset : offset + shape.reduce((s, d, i) => s + (d - 1) * (strides[i] as number), 0);
  if (last >= storage.numel && !shape.some((d) => d === 0)) {
    throw new RangeError(`a tensor of shape [${shape.join(", ")}] at offset ${offset} reaches element ${last} of a storage of ${storage.numel}`);
  }
  return new TensorRecord(storage, offset, shape, strides);
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
        for (const kv of items) if (kv instanceof PickleTuple && kv.items.length === 2) d.entries.set(kv.items[0] as PickleValue, kv.items[1] as PickleValue);
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
      if (typeof text !== "string" || encoding !== "latin1") throw new TypeError("only _codecs.encode(str, 'latin1') is allowed");
      return Uint8Array.from(text, (c) => c.charCodeAt(0));
    },
  },
};

function resolveGlobal(module: string, name: string): GlobalHandler | undefined {
  const full = `${module}.${name}`;
  const h = ALLOWED[full];
  if (h) return h;
  // Storage classes may only be named (in persistent ids), never called.
  if (module === "torch" && name in STORAGE_DTYPES) return {};
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
  if (typeof key !== "string" || !/^[\w.-]+$/.test(key)) throw new TypeError(`storage key must be a plain name, got ${JSON.stringify(key)}`);
  if (typeof numel !== "number" || !Number.isInteger(numel) || numel < 0) throw new TypeError(`storage size must be a non-negative int, got ${describe(numel ?? null)}`);
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
  return prefix !== undefined && (zip.has(`${prefix}/constants.pkl`) || [...zip.entries.keys()].some((k) => k.startsWith(`${prefix}/code/`)));
}

/** Unpickles a torch.save zip file's object without executing anything. */
export function readTorchZip(bytes: Uint8Array, source: string): TorchFile {
  const archive = new ZipArchive(bytes, source);
  const prefix = archivePrefix(archive);
  if (prefix === undefined) throw new Error(`${source}: a zip file without data.pkl is not a torch.save file`);
  let littleEndian = true;
  if (archive.has(`${prefix}/byteorder`)) {
    const order = archive.readText(`${prefix}/byteorder`).trim();
    if (order !== "little" && order !== "big") throw new Error(`${source}: byteorder record must be "little" or "big", got ${JSON.stringify(order)}`);
    littleEndian = order === "little";
  }
  const value = unpickle(archive.read(`${prefix}/data.pkl`), {
    resolveGlobal,
    persistentLoad,
    source: `${source}: data.pkl`,
    refusalHint: "a weights file should hold a state_dict (torch.save(model.state_dict(), path)), or save the whole model with TorchScript (torch.jit.script(model).save(path)) and import it with --torchscript",
  });
  return { value, archive, prefix, littleEndian, source };
}

/** Copies a tensor record's elements out of its storage into a new engine tensor (f16/bf16 widened to float32). */
export function toTensor(file: TorchFile, r: TensorRecord, name: string): Tensor {
  const type = r.storage.storageType;
  const dtype = STORAGE_DTYPES[type];
  if (dtype === undefined) {
    throw new TypeError(`${file.source}: tensor "${name}" is stored as ${type}, which is not supported (supported: ${Object.entries(STORAGE_DTYPES).filter(([, d]) => d).map(([k]) => k).join(", ")})`);
  }
  const size = BYTES[dtype];
  const entry = `${file.prefix}/data/${r.storage.key}`;
  if (!file.archive.has(entry)) throw new Error(`${file.source}: tensor "${name}" refers to storage ${r.storage.key}, but ${entry} is missing`);
  const storage = file.archive.read(entry);
  if (storage.length < r.storage.numel * size) {
    throw new RangeError(`${file.source}: storage ${r.storage.key} holds ${storage.length} bytes, expected ${r.storage.numel} ${type} elements (${r.storage.numel * size} bytes)`);
  }
  const count = r.shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(count * size);
  const contiguous = r.shape.every((_, i) => r.shape[i] === 1 || r.stride[i] === r.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  if (contiguous) {
    out.set(storage.subarray(r.offset * size, (r.offset + count) * size));
  } else {
    // Walk the strided view in row-major order (views that share a storage, transposes, slices).
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
  if (!file.littleEndian && size > 1) for (let i = 0; i < out.length; i += size) out.subarray(i, i + size).reverse();
  if (dtype === "float16" || dtype === "bfloat16") {
    return tensor(decodeToFloat32({ dtype: dtype === "float16" ? "F16" : "BF16", shape: r.shape, data: out }), { shape: r.shape });
  }
  return fromBytes(out, dtype, r.shape);
}
