// Seeded fuzzing of the two loaders that read untrusted files: the safetensors parser (a real
// compact-CNN state dict) and the bundle loader (a real bundle's detector.json and weights).
// Mutations: bit flips, byte overwrites, truncation, header-size edits, JSON field deletions,
// type changes and value edits. Every outcome must be a clean load or an Error with a clear
// message; a loaded detector must have exactly the original decision fields.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/engine/index.js";
import { parseSafetensors, serializeSafetensors } from "../../src/io/safetensors.js";
import { toRaw } from "../../src/io/weights.js";
import { saveBundle, loadBundle, parseManifest } from "../../src/defense/bundle.js";
import type { BadExpertDetector } from "../../src/defense/detector.js";
import { Rng } from "../../src/util/rng.js";
import { quickDetector } from "./quick-detector.js";

// Messages that mean an unchecked path was hit, not a validation.
const RAW =
  /Cannot read propert|undefined is not|is not a function|is not iterable|Maximum call stack|Invalid array length|out of memory/i;

function checkError(e: unknown, what: string, counts: Map<string, number>): void {
  assert.ok(e instanceof Error, `${what}: threw a non-Error ${String(e)}`);
  assert.ok(e.message.length > 10 && e.message.length < 2000, `${what}: message length ${e.message.length}`);
  assert.doesNotMatch(e.message, RAW, `${what}: raw message`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(e.message, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, `${what}: control character in message`);
  const kind = e.message
    .replace(/\/tmp\/[^ :]+/g, "")
    .replace(/\d+/g, "N")
    .slice(0, 60);
  counts.set(kind, (counts.get(kind) ?? 0) + 1);
}

function mutateBytes(src: Uint8Array, rng: Rng): Uint8Array {
  const b = Uint8Array.from(src);
  const op = rng.nextUint32() % 5;
  const at = rng.nextUint32() % b.length;
  if (op === 0) {
    const flips = 1 + (rng.nextUint32() % 8);
    for (let i = 0; i < flips; i++) {
      const j = rng.nextUint32() % b.length;
      b[j] = (b[j] as number) ^ (1 << (rng.nextUint32() % 8));
    }
    return b;
  }
  if (op === 1) return b.subarray(0, at);
  if (op === 2) {
    // The header-size prefix: small changes, huge values, or the high bytes.
    const v = new DataView(b.buffer);
    const choices = [
      v.getBigUint64(0, true) + BigInt((rng.nextUint32() % 17) - 8),
      2n ** 63n,
      BigInt(rng.nextUint32()),
      100_000_001n,
    ];
    v.setBigUint64(0, choices[rng.nextUint32() % choices.length] ?? 0n, true);
    return b;
  }
  if (op === 3) {
    // A byte inside the JSON header replaced by a structural or control character.
    const hs = Number(new DataView(b.buffer).getBigUint64(0, true));
    const j = 8 + (rng.nextUint32() % Math.max(1, Math.min(hs, b.length - 8)));
    const chars = '{}[]":,-0123456789e.\u001b\n\\ ';
    b[j] = chars.charCodeAt(rng.nextUint32() % chars.length);
    return b;
  }
  b[at] = rng.nextUint32() & 0xff;
  return b;
}

/** One random edit of a parsed JSON value: delete, retype or change a field somewhere. */
function mutateJson(v: unknown, rng: Rng): unknown {
  const replacements: unknown[] = [
    null,
    "",
    "0",
    "NaN",
    "Infinity",
    -1,
    0,
    1e308,
    15000,
    true,
    [],
    {},
    [0],
    "\u001b[2J\n",
    -0.5,
    0.5,
    "resnet18",
    2 ** 53,
  ];
  const pick = <T>(xs: readonly T[]): T => xs[rng.nextUint32() % xs.length] as T;
  const walk = (x: unknown, depth: number): unknown => {
    if (Array.isArray(x)) {
      if (x.length === 0 || rng.nextUint32() % 4 === 0)
        return rng.nextUint32() % 2 ? pick(replacements) : [...x, pick(replacements)];
      const i = rng.nextUint32() % x.length;
      const out = [...x];
      out[i] = walk(out[i], depth + 1);
      return out;
    }
    if (typeof x === "object" && x !== null) {
      const keys = Object.keys(x);
      const o: Record<string, unknown> = { ...(x as Record<string, unknown>) };
      if (keys.length === 0 || rng.nextUint32() % 5 === 0) return pick(replacements);
      const k = pick(keys);
      const r = rng.nextUint32() % 6;
      if (r === 0) delete o[k];
      else if (r === 1 || depth > 6) o[k] = pick(replacements);
      else o[k] = walk(o[k], depth + 1);
      return o;
    }
    if (typeof x === "number") return pick([x * 2, -x, x + 1e-9, 0, pick(replacements)]);
    return pick(replacements);
  };
  return walk(v, 0);
}

function decision(d: Pick<BadExpertDetector, "info">): string {
  const { rule, threshold, targetFpr, calibration, preprocessing, classNames, spec } = d.info;
  return JSON.stringify({ rule, threshold, targetFpr, calibration, preprocessing, classNames, spec });
}

test("fuzz: mutated safetensors files parse or fail with a clear error", () => {
  const before = memory().numTensors;
  const det = quickDetector();
  const raw = new Map([...det.expert.stateDict()].map(([k, t]) => [k, toRaw(t, k)]));
  det.dispose();
  const file = serializeSafetensors(raw, { format: "badexpert-detector" });
  const rng = new Rng(20261129);
  const counts = new Map<string, number>();
  let parsed = 0;
  const cases = 3000;
  const t0 = Date.now();
  for (let i = 0; i < cases; i++) {
    const m = mutateBytes(file, rng);
    try {
      parseSafetensors(m, "fuzz.safetensors");
      parsed++;
    } catch (e) {
      checkError(e, `safetensors case ${i}`, counts);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const refused = cases - parsed;
  console.log(
    `fuzz safetensors: ${cases} cases in ${seconds.toFixed(2)} s: ${parsed} parsed (mutations inside tensor data), ${refused} refused with ${counts.size} kinds of message`,
  );
  assert.ok(refused > cases / 3, "most mutations are refused");
  assert.ok(parsed > 0, "data-only mutations still parse");
  assert.equal(memory().numTensors, before);
});

test("fuzz: mutated manifests validate to the original decision or fail with a clear error; mutated weights are refused", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  const root = await mkdtemp(join(tmpdir(), "bx-fuzz-"));
  const dir = join(root, "bundle");
  try {
    await saveBundle(dir, det);
    const original = decision(det);
    const manifestPath = join(dir, "detector.json");
    const manifestBytes = await readFile(manifestPath);
    const manifest: unknown = JSON.parse(manifestBytes.toString("utf8"));
    const rng = new Rng(7);
    const counts = new Map<string, number>();
    const outcome = { accepted: 0, refused: 0 };
    // detector.json: what loadBundle does before reading any weights, in memory.
    const t0 = Date.now();
    const cases = 4000;
    for (let i = 0; i < cases; i++) {
      const kind = rng.nextUint32() % 3;
      const bytes =
        kind < 2
          ? Buffer.from(JSON.stringify(mutateJson(manifest, rng), null, kind === 1 ? 2 : 0))
          : mutateBytes(manifestBytes, rng);
      try {
        const m = parseManifest(bytes, manifestPath);
        outcome.accepted++;
        assert.equal(
          decision({ info: m }),
          original,
          `case ${i}: a mutated manifest validated with different decision fields`,
        );
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        outcome.refused++;
        checkError(e, `manifest case ${i}`, counts);
      }
    }
    const manifestSeconds = (Date.now() - t0) / 1000;
    // Whole bundles from disk: a mutated weight file (or manifest) with loadBundle.
    const files = ["expert.safetensors", "model.safetensors", "detector.json"];
    const originals = await Promise.all(files.map((f) => readFile(join(dir, f))));
    const t1 = Date.now();
    const loads = 150;
    const loaded = { ok: 0, refused: 0 };
    for (let i = 0; i < loads; i++) {
      const k = rng.nextUint32() % files.length;
      await writeFile(join(dir, files[k] as string), mutateBytes(originals[k] as Buffer, rng));
      try {
        const d = await loadBundle(dir);
        loaded.ok++;
        const same = decision(d) === original;
        d.dispose();
        assert.ok(same, `load ${i}: a mutated bundle loaded with different decision fields`);
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        loaded.refused++;
        checkError(e, `bundle load ${i}`, counts);
      }
      await writeFile(join(dir, files[k] as string), originals[k] as Buffer);
    }
    const loadSeconds = (Date.now() - t1) / 1000;
    console.log(
      `fuzz manifest: ${cases} cases in ${manifestSeconds.toFixed(2)} s: ${outcome.accepted} accepted with the original decision, ${outcome.refused} refused; ` +
        `bundle loads: ${loads} in ${loadSeconds.toFixed(2)} s: ${loaded.ok} loaded with the original decision, ${loaded.refused} refused; ${counts.size} kinds of message`,
    );
    assert.ok(outcome.refused > cases * 0.9, `refused ${outcome.refused}`);
    assert.ok(loaded.refused > loads * 0.9, `refused ${loaded.refused}`);
  } finally {
    det.dispose();
    await rm(root, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
