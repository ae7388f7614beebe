// Reading a state_dict from a file trained elsewhere: a safetensors file or a torch.save zip
// (`.pt`, `.pth`, `.bin`), recognised by content rather than extension. The usual wrappers are
// unwrapped ({"state_dict": ...}, {"model": ...}, {"net": ...}) and the usual key prefixes
// stripped (`module.` from DataParallel, `model.` from Lightning-style wrappers).
//
// Every failure is one short error (a WeightsFileError, or the ZipError, PickleError,
// TorchFileError or FileReadError of the layer that found it), whatever the file holds.
import { constants as bufferConstants } from "node:buffer";
import type { Tensor } from "../engine/index.js";
import { readRegularFile } from "../util/read-regular-file.js";
import { escapeControls, printable } from "../util/printable.js";
import { tensorsFromBytes } from "./weights.js";
import { isZip, ZipArchive } from "./zip.js";
import {
  DEFAULT_TORCH_READ_LIMITS,
  isTorchScriptArchive,
  readTorchZip,
  tensorsFromRecords,
  TensorRecord,
  type TorchReadLimits,
} from "./torch-zip.js";
import { PickleDict, describe, unpickle, type PickleValue } from "./pickle.js";
import { BadExpertError } from "../util/errors.js";

export const WRAPPER_KEYS = ["state_dict", "model", "net"] as const;
export const STRIPPED_PREFIXES = ["module.", "model."] as const;
/** Wrappers descended into at most: real checkpoints use one or two ({"model": {"state_dict": ...}}). */
export const MAX_WRAPPERS = 8;

/** A file that is not a state_dict we can read: its kind, or its structure. */
export class WeightsFileError extends BadExpertError {
  override name = "WeightsFileError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_MODEL_FORMAT", message, options);
  }
}

export interface StateDictFile {
  tensors: Map<string, Tensor>;
  format: "safetensors" | "torch-zip";
  /** The wrapper keys descended into, outermost first (e.g. ["state_dict"]). */
  unwrapped: string[];
  /** The key prefixes removed, in order. */
  strippedPrefixes: string[];
}

// The magic number the legacy (pre-1.6) torch.save format pickles first.
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

const RESAVE =
  "load it in PyTorch and re-save it with torch.save(torch.load(path), new_path) (PyTorch 1.6 or later writes the zip format), or save it as safetensors";

function looksLikeSafetensors(b: Uint8Array): boolean {
  if (b.length < 10) return false;
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true);
  return n > 1n && n <= BigInt(b.length - 8) && b[8] === 0x7b; // '{'
}

/** Explains a file that is neither safetensors nor a torch.save zip. */
function notAWeightsFile(b: Uint8Array, source: string, limits: TorchReadLimits): Error {
  if (b.length > 262 && new TextDecoder("latin1").decode(b.subarray(257, 262)) === "ustar") {
    return new WeightsFileError(
      `${source}: this is the legacy tar format of torch.save (PyTorch 0.3 and older), which is not read; ${RESAVE}`,
    );
  }
  if (b[0] === 0x80) {
    // A pickle: the legacy format starts with its magic number; anything else is a bare pickle.
    // Both go through the restricted unpickler, so a malicious one is refused, not run.
    const first = unpickle(b, { resolveGlobal: () => undefined, source, limits: limits.pickle });
    if (first === LEGACY_MAGIC)
      return new WeightsFileError(
        `${source}: this is the legacy (pre-1.6, non-zip) torch.save format, which is not read; ${RESAVE}`,
      );
    return new WeightsFileError(
      `${source}: a bare pickle is not a weights file (got a ${describe(first)}); save a state_dict with torch.save or as safetensors`,
    );
  }
  return new WeightsFileError(
    `${source}: not a safetensors file or a torch.save zip file (the first bytes are ${Array.from(b.subarray(0, 4), (x) => x.toString(16).padStart(2, "0")).join(" ")})`,
  );
}

function isTensorDict(v: PickleValue): v is PickleDict {
  return (
    v instanceof PickleDict && v.entries.size > 0 && [...v.entries.values()].every((x) => x instanceof TensorRecord)
  );
}

/** A dict key as messages show it: a quoted, escaped, shortened string, or its Python type. */
function shownKey(k: unknown): string {
  return typeof k === "string" ? printable(k, 60) : describe(k as PickleValue);
}

/**
 * Descends through wrapper dicts until a dict of tensors, at most MAX_WRAPPERS deep (the
 * unpickler refuses cycles, and this bound keeps a chain of a thousand wrappers from becoming
 * a thousand-level path in a message).
 */
function unwrap(v: PickleValue, source: string): { dict: PickleDict; path: string[] } {
  const path: string[] = [];
  let cur = v;
  for (;;) {
    if (isTensorDict(cur)) return { dict: cur, path };
    if (!(cur instanceof PickleDict)) break;
    const d: PickleDict = cur;
    const key = WRAPPER_KEYS.find((k) => d.entries.get(k) instanceof PickleDict);
    if (key === undefined) break;
    if (path.length === MAX_WRAPPERS) {
      throw new WeightsFileError(
        `${source}: the state_dict is wrapped more than ${MAX_WRAPPERS} levels deep (${path
          .slice(0, 3)
          .map((k) => `["${k}"]`)
          .join("")}...); a checkpoint wraps it once or twice`,
      );
    }
    path.push(key);
    cur = d.entries.get(key) as PickleDict;
  }
  const where = path.length ? `under ${path.map((k) => `["${k}"]`).join("")}` : "at the top level";
  const keys = cur instanceof PickleDict ? [...cur.entries.keys()].slice(0, 13).map(shownKey) : [];
  const nonTensor = cur instanceof PickleDict ? [...cur.entries].filter(([, x]) => !(x instanceof TensorRecord)) : [];
  const total = cur instanceof PickleDict ? cur.entries.size : 0;
  throw new WeightsFileError(
    `${source}: expected a state_dict (a dict of tensor names to tensors), possibly wrapped as {"state_dict"|"model"|"net": ...}; ` +
      `found a ${describe(cur)} ${where}` +
      (keys.length ? ` with keys ${keys.slice(0, 12).join(", ")}${total > 12 ? ", ..." : ""}` : "") +
      (nonTensor.length && nonTensor.length < total
        ? `; not tensors: ${nonTensor
            .slice(0, 6)
            .map(([k, x]) => `${shownKey(k)} (${describe(x)})`)
            .join(", ")}`
        : ""),
  );
}

/** Strips `module.` / `model.` while every key carries it (possibly both, nested; at most MAX_WRAPPERS times). */
export function stripPrefixes<T>(m: Map<string, T>): { map: Map<string, T>; stripped: string[] } {
  const stripped: string[] = [];
  let cur = m;
  for (;;) {
    if (stripped.length === MAX_WRAPPERS) return { map: cur, stripped };
    const p = STRIPPED_PREFIXES.find((x) => cur.size > 0 && [...cur.keys()].every((k) => k.startsWith(x)));
    if (p === undefined) return { map: cur, stripped };
    stripped.push(p);
    cur = new Map([...cur].map(([k, v]) => [k.slice(p.length), v]));
  }
}

/**
 * Parses the bytes of a weights file; the caller owns (disposes) the returned tensors.
 * `limits` bound what a torch.save file may cost (DEFAULT_TORCH_READ_LIMITS where absent).
 */
export function parseStateDictFile(
  bytes: Uint8Array,
  source: string,
  limits: Partial<TorchReadLimits> = {},
): StateDictFile {
  const all = { ...DEFAULT_TORCH_READ_LIMITS, ...limits };
  const where = escapeControls(source, 200);
  if (looksLikeSafetensors(bytes)) {
    const { map, stripped } = stripPrefixes(tensorsFromBytes(bytes, where));
    return { tensors: map, format: "safetensors", unwrapped: [], strippedPrefixes: stripped };
  }
  if (!isZip(bytes)) throw notAWeightsFile(bytes, where, all);
  if (isTorchScriptArchive(new ZipArchive(bytes, where, { maxInflatedBytes: all.maxBytes }))) {
    throw new WeightsFileError(
      `${where}: this is a TorchScript file (torch.jit.save), not a state_dict; import it with --torchscript`,
    );
  }
  const file = readTorchZip(bytes, where, all);
  const { dict, path } = unwrap(file.value, where);
  const records = new Map<string, TensorRecord>();
  for (const [k, v] of dict.entries) {
    if (typeof k !== "string")
      throw new WeightsFileError(`${where}: state_dict key ${describe(k as PickleValue)} is not a string`);
    records.set(k, v as TensorRecord);
  }
  const { map, stripped } = stripPrefixes(records);
  return { tensors: tensorsFromRecords(file, map), format: "torch-zip", unwrapped: path, strippedPrefixes: stripped };
}

/**
 * Reads and parses a weights file. The file must be a regular file no larger than the byte
 * limit (checked on the open handle before it is read).
 */
export async function readStateDictFile(path: string, limits: Partial<TorchReadLimits> = {}): Promise<StateDictFile> {
  const maxBytes = Math.min(limits.maxBytes ?? DEFAULT_TORCH_READ_LIMITS.maxBytes, bufferConstants.MAX_LENGTH - 1);
  const bytes = await readRegularFile(path, { maxBytes, what: "weights file" });
  return parseStateDictFile(bytes, path, limits);
}
