// Paths to the files written by real PyTorch (test/fixtures/pytorch/make.py) and their logits.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { gunzipSync } from "node:zlib";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import type { Tensor } from "../../src/engine/index.js";
import { loadTensors } from "../../src/io/weights.js";

/** The fixture folder, found from both test/ (sources) and dist/test/ (compiled). */
export function fixtureDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, "test", "fixtures", "pytorch");
    if (existsSync(join(candidate, "make.py"))) return candidate;
    dir = resolve(dir, "..");
  }
  throw new Error("test/fixtures/pytorch not found");
}

export function fixture(name: string): string {
  return join(fixtureDir(), name);
}

/** A gzipped fixture's bytes. */
export async function gunzipped(name: string): Promise<Uint8Array> {
  return new Uint8Array(gunzipSync(await readFile(fixture(name))));
}

/** Inputs and PyTorch's logits; the caller disposes them. */
export async function expected(): Promise<Map<string, Tensor>> {
  return (await loadTensors(fixture("expected.safetensors"))).tensors;
}

export function get(m: Map<string, Tensor>, key: string): Tensor {
  const t = m.get(key);
  if (!t) throw new Error(`expected.safetensors has no ${key}`);
  return t;
}

/** Asserts max |a - b| <= tol and returns it. */
export function assertClose(a: Tensor, b: Tensor, tol: number, what: string): number {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const x = a.data() as Float32Array;
  const y = b.data() as Float32Array;
  let max = 0;
  for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs((x[i] as number) - (y[i] as number)));
  assert.ok(max <= tol, `${what}: max abs difference ${max} > ${tol}`);
  return max;
}

/** Where the malicious fixture's payload would write if it ran. */
export const MALICIOUS_MARKER = "/tmp/badexpert-malicious-pickle-ran";
