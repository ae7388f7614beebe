// Reading a state_dict from a file trained elsewhere: a safetensors file or a torch.save zip
// (`.pt`, `.pth`, `.bin`), recognised by content rather than extension. The usual wrappers are
// unwrapped ({"state_dict": ...}, {"model": ...}, {"net": ...}) and the usual key prefixes
// stripped (`module.` from DataParallel, `model.` from Lightning-style wrappers).
import { readFile } from "node:fs/promises";
import type { Tensor } from "../engine/index.js";
import { tensorsFromBytes } from "./weights.js";
import { isZip, ZipArchive } from "./zip.js";
import { isTorchScriptArchive, readTorchZip, TensorRecord, toTensor } from "./torch-zip.js";
import { PickleDict, describe, unpickle, type PickleValue } from "./pickle.js";

export const WRAPPER_KEYS = ["state_dict", "model", "net"] as const;
export const STRIPPED_PREFIXES = ["module.", "model."] as const;

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

const RESAVE = "load it in PyTorch and re-save it with torch.save(torch.load(path), new_path) (PyTorch 1.6 or later writes the zip format), or save it as safetensors";

function looksLikeSafetensors(b: Uint8Array): boolean {
  if (b.length < 10) return false;
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(0, true);
  return n > 1n && n <= BigInt(b.length - 8) && b[8] === 0x7b; // '{'
}

/** Explains a file that is neither safetensors nor a torch.save zip. */
function notAWeightsFile(b: Uint8Array, source: string): Error {
  if (b.length > 262 && new TextDecoder("latin1").decode(b.subarray(257, 262)) === "ustar") {
    return new Error(`${source}: this is the legacy tar format of torch.save (PyTorch 0.3 and older), which is not read; ${RESAVE}`);
  }
  if (b[0] === 0x80) {
    // A pickle: the legacy format starts with its magic number; anything else is a bare pickle.
    // Both go through the restricted unpickler, so a malicious one is refused, not run.
    const first = unpickle(b, { resolveGlobal: () => undefined, source });
    if (first === LEGACY_MAGIC) return new Error(`${source}: this is the legacy (pre-1.6, non-zip) torch.save format, which is not read; ${RESAVE}`);
    return new Error(`${source}: a bare pickle is not a weights file (got a ${describe(first)}); save a state_dict with torch.save or as safetensors`);
  }
  return new Error(`${source}: not a safetensors file or a torch.save zip file (the first bytes are ${Array.from(b.subarray(0, 4), (x) => x.toString(16).padStart(2, "0")).join(" ")})`);
}

function isTensorDict(v: PickleValue): v is PickleDict {
  return v instanceof PickleDict && v.entries.size > 0 && [...v.entries.values()].every((x) => x instanceof TensorRecord);
}

/** Descends through wrapper dicts until a dict of tensors. */
function unwrap(v: PickleValue, source: string): { dict: PickleDict; path: string[] } {
  const path: string[] = [];
  let cur = v;
  for (;;) {
    if (isTensorDict(cur)) return { dict: cur, path };
    if (!(cur instanceof PickleDict)) break;
    const d: PickleDict = cur;
    const key = WRAPPER_KEYS.find((k) => d.entries.get(k) instanceof PickleDict);
    if (key === undefined) break;
    path.push(key);
    cur = d.entries.get(key) as PickleDict;
  }
  const where = path.length ? `under ${path.map((k) => `["${k}"]`).join("")}` : "at the top level";
  const keys = cur instanceof PickleDict ? [...cur.entries.keys()].map((k) => JSON.stringify(typeof k === "string" ? k : describe(k))) : [];
  const nonTensor = cur instanceof PickleDict ? [...cur.entries].filter(([, x]) => !(x instanceof TensorRecord)).map(([k, x]) => `${String(k)} (${describe(x)})`) : [];
  throw new Error(
    `${source}: expected a state_dict (a dict of tensor names to tensors), possibly wrapped as {"state_dict"|"model"|"net": ...}; ` +
      `found a ${describe(cur)} ${where}` +
      (keys.length ? ` with keys ${keys.slice(0, 12).join(", ")}${keys.length > 12 ? ", ..." : ""}` : "") +
      (nonTensor.length && nonTensor.length < keys.length ? `; not tensors: ${nonTensor.slice(0, 6).join(", ")}` : ""),
  );
}

/** Strips `module.` / `model.` while every key carries it (possibly both, nested). */
export function stripPrefixes<T>(m: Map<string, T>): { map: Map<string, T>; stripped: string[] } {
  const stripped: string[] = [];
  let cur = m;
  for (;;) {
    const p = STRIPPED_PREFIXES.find((x) => cur.size > 0 && [...cur.keys()].every((k) => k.startsWith(x)));
    if (p === undefined) return { map: cur, stripped };
    stripped.push(p);
    cur = new Map([...cur].map(([k, v]) => [k.slice(p.length), v]));
  }
}

/** Parses the bytes of a weights file; the caller owns (disposes) the returned tensors. */
export function parseStateDictFile(bytes: Uint8Array, source: string): StateDictFile {
  if (looksLikeSafetensors(bytes)) {
    const { map, stripped } = stripPrefixes(tensorsFromBytes(bytes, source));
    return { tensors: map, format: "safetensors", unwrapped: [], strippedPrefixes: stripped };
  }
  if (!isZip(bytes)) throw notAWeightsFile(bytes, source);
  if (isTorchScriptArchive(new ZipArchive(bytes, source))) {
    throw new Error(`${source}: this is a TorchScript file (torch.jit.save), not a state_dict; import it with --torchscript`);
  }
  const file = readTorchZip(bytes, source);
  const { dict, path } = unwrap(file.value, source);
  const records = new Map<string, TensorRecord>();
  for (const [k, v] of dict.entries) {
    if (typeof k !== "string") throw new Error(`${source}: state_dict key ${describe(k)} is not a string`);
    records.set(k, v as TensorRecord);
  }
  const { map, stripped } = stripPrefixes(records);
  const tensors = new Map<string, Tensor>();
  try {
    for (const [k, r] of map) tensors.set(k, toTensor(file, r, k));
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, format: "torch-zip", unwrapped: path, strippedPrefixes: stripped };
}

export async function readStateDictFile(path: string): Promise<StateDictFile> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new Error(`weights: cannot read ${path}: ${(e as Error).message}`);
  }
  return parseStateDictFile(bytes, path);
}
