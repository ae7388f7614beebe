// Attack artefacts: the weights of a network an attack trains while poisoning (ISSBA's encoder,
// Dynamic's generator and mask network), without which its test-time trigger cannot be rebuilt.
// They live as plain CPU float32 arrays (an attack holds no tensors between calls) and are stored
// next to the checkpoint as `attack.safetensors`. The attack's parameters record the SHA-256 of
// that file's bytes, so a bundle that copied the parameters can check it rebuilds the same trigger.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { AnyModule } from "../nn/index.js";
import { parseSafetensors, serializeSafetensors, sha256Hex, type RawTensor } from "../io/safetensors.js";
import { CHECKPOINT_ATTACK_FILE } from "../train/checkpoint.js";

/** Name → weights (row-major float32) and shape. */
export type AttackArtifacts = ReadonlyMap<string, { readonly data: Float32Array; readonly shape: readonly number[] }>;

/** The checkpoint's own name for the file (a checkpoint directory lists it among its files). */
export const ATTACK_ARTIFACTS_FILE = CHECKPOINT_ATTACK_FILE;

/** Our artefact files hold a few hundred kilobytes; anything near this is corrupt or hostile. */
const MAX_HEADER_BYTES = 1024 * 1024;

/** The file's bytes: deterministic for the same weights (names sorted, no metadata). */
export function serializeArtifacts(a: AttackArtifacts): Uint8Array {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of a)
    raw.set(k, {
      dtype: "F32",
      shape: [...t.shape],
      data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    });
  return serializeSafetensors(raw);
}

/** SHA-256 of serializeArtifacts(a), the digest the attack's parameters record. */
export function artifactsDigest(a: AttackArtifacts): string {
  return sha256Hex(serializeArtifacts(a));
}

export function parseArtifacts(bytes: Uint8Array, source: string): AttackArtifacts {
  const file = parseSafetensors(bytes, source, { maxHeaderBytes: MAX_HEADER_BYTES });
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, t] of file.tensors) {
    if (t.dtype !== "F32") throw new Error(`${source}: tensor '${k}' must be F32, found ${t.dtype}`);
    // Copied: the view into the file may not be 4-byte aligned.
    const data = new Float32Array(t.data.byteLength / 4);
    new Uint8Array(data.buffer).set(t.data);
    if (!data.every(Number.isFinite)) throw new Error(`${source}: tensor '${k}' holds NaN or Infinity`);
    out.set(k, { data, shape: [...t.shape] });
  }
  return out;
}

export async function saveArtifacts(dir: string, a: AttackArtifacts): Promise<void> {
  await writeFile(join(dir, ATTACK_ARTIFACTS_FILE), serializeArtifacts(a));
}

/**
 * Reads `dir`/attack.safetensors and checks it against `sha256` (the digest recorded in the
 * attack's parameters). The message names the file, what was expected and what was found.
 */
export async function loadArtifacts(dir: string, sha256: string): Promise<AttackArtifacts> {
  const path = join(dir, ATTACK_ARTIFACTS_FILE);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT"
        ? `${path} not found: the attack's trained network is stored next to the checkpoint it poisoned (written by \`badexpert train --attack ...\`)`
        : `${path}: cannot read (${code ?? (e as Error).message})`,
      { cause: e },
    );
  }
  const got = sha256Hex(bytes);
  if (got !== sha256)
    throw new Error(
      `${path}: SHA-256 ${got} does not match the ${sha256} recorded in the attack's parameters (the file was changed or replaced)`,
    );
  return parseArtifacts(bytes, path);
}

/** A module's state as artefacts under `prefix` (e.g. "encoder."). */
export function moduleArtifacts(m: AnyModule, prefix: string): Map<string, { data: Float32Array; shape: number[] }> {
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [k, t] of m.stateDict()) {
    if (t.dtype !== "float32") continue;
    out.set(`${prefix}${k}`, {
      data: tidy(() => Float32Array.from(t.to({ device: "cpu" }).contiguous().data() as Float32Array)),
      shape: [...t.shape],
    });
  }
  return out;
}

/** Loads the artefacts under `prefix` into `m` (strict: every float tensor of m must be there with its shape). */
export function loadModuleArtifacts(m: AnyModule, a: AttackArtifacts, prefix: string, what: string): void {
  const sd = new Map<string, Tensor>();
  try {
    for (const [k, t] of m.stateDict()) {
      if (t.dtype !== "float32") continue;
      const w = a.get(`${prefix}${k}`);
      if (!w) throw new Error(`${what}: the stored network lacks '${prefix}${k}'`);
      if (w.shape.join("x") !== t.shape.join("x"))
        throw new Error(
          `${what}: '${prefix}${k}' has shape ${w.shape.join("x")}, the network expects ${t.shape.join("x")}`,
        );
      sd.set(k, tensor(w.data, { shape: [...w.shape] }));
    }
    m.loadStateDict(sd, { strict: false });
  } finally {
    for (const t of sd.values()) t.dispose();
  }
}
