// Seeded fuzzing of the torch.save reader (zip, restricted unpickler, tensor views), beside the
// safetensors fuzzing of test/defense/fuzz.test.ts. Seeds: small files real PyTorch 2.x wrote
// (test/fixtures/pytorch: small-dtypes.pt, and views.pt and checkpoint.pt of make-seeds.py) as
// stored and as re-zipped with deflate. Mutations: bytes of the file (bit flips, overwrites, truncation,
// inserted and deleted ranges), zip header fields set to edge values, the pickle's bytes and
// opcodes (re-zipped honestly so that the unpickler sees them), storage entries resized, and
// generated files: random shapes, strides, offsets, storage types and sizes, wrappers, cycles,
// deep nesting, lying zip records. Every case must end in a result or a refusal of a known error
// class with a short, printable message, within a time bound, with the process's RSS bounded
// and every tensor disposed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { memory } from "../../src/engine/index.js";
import { parseStateDictFile, WeightsFileError } from "../../src/io/state-dict-file.js";
import { TorchFileError } from "../../src/io/torch-zip.js";
import { PickleError } from "../../src/io/pickle.js";
import { ZipArchive, ZipError } from "../../src/io/zip.js";
import { Rng } from "../../src/util/rng.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import {
  OP,
  p,
  pickle,
  tensorOps,
  torchZip,
  zip,
  type TensorSpec,
  type ZipOptions,
  type ZipSpec,
} from "./torch-files.js";

const KNOWN = [PickleError, ZipError, TorchFileError, WeightsFileError];
// Messages that mean an unchecked path was hit, not a validation.
const RAW =
  /Cannot read propert|undefined is not|is not a function|is not iterable|Maximum call stack|Invalid array length|Invalid typed array|out of memory|Map maximum size|Invalid string length/i;
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const MiB = 1024 * 1024;
/** Limits for generated files, so that what they may legitimately build stays small. */
const SMALL = { maxBytes: 64 * MiB, maxExpandedElements: 1 << 16 };

type Mutator = (rng: Rng) => { bytes: Uint8Array; limits?: object };

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.nextUint32() % xs.length] as T;

function entriesOf(bytes: Uint8Array): ZipSpec[] {
  const a = new ZipArchive(bytes, "seed");
  return [...a.entries.keys()].map((name) => ({ name, data: Uint8Array.from(a.read(name)) }));
}

function flipBits(src: Uint8Array, rng: Rng): Uint8Array {
  const b = Uint8Array.from(src);
  const n = 1 + (rng.nextUint32() % 8);
  for (let i = 0; i < n; i++) {
    const j = rng.nextUint32() % b.length;
    b[j] = (b[j] as number) ^ (1 << (rng.nextUint32() % 8));
  }
  return b;
}

function mutateBytes(src: Uint8Array, rng: Rng): Uint8Array {
  const at = rng.nextUint32() % src.length;
  switch (rng.nextUint32() % 5) {
    case 0:
      return flipBits(src, rng);
    case 1:
      return src.subarray(0, at);
    case 2: {
      const b = Uint8Array.from(src);
      const n = 1 + (rng.nextUint32() % 16);
      for (let i = 0; i < n && at + i < b.length; i++) b[at + i] = rng.nextUint32() & 0xff;
      return b;
    }
    case 3: {
      // Delete a range: everything after it shifts.
      const n = 1 + (rng.nextUint32() % 64);
      const b = new Uint8Array(src.length - Math.min(n, src.length - at));
      b.set(src.subarray(0, at));
      b.set(src.subarray(at + n), at);
      return b;
    }
    default: {
      const n = 1 + (rng.nextUint32() % 64);
      const b = new Uint8Array(src.length + n);
      b.set(src.subarray(0, at));
      for (let i = 0; i < n; i++) b[at + i] = rng.nextUint32() & 0xff;
      b.set(src.subarray(at), at + n);
      return b;
    }
  }
}

/** A zip header field (sizes, offsets, counts, lengths, method, flags) set to an edge value. */
function mutateZipField(src: Uint8Array, rng: Rng): Uint8Array {
  const b = Uint8Array.from(src);
  const v = new DataView(b.buffer);
  const headers: [number, number[]][] = [];
  for (let i = 0; i + 4 <= b.length; i++) {
    const sig = v.getUint32(i, true);
    if (sig === 0x04034b50) headers.push([i, [6, 8, 18, 22, 26, 28]]);
    else if (sig === 0x02014b50) headers.push([i, [8, 10, 20, 24, 28, 30, 32, 42]]);
    else if (sig === 0x06054b50) headers.push([i, [8, 10, 12, 16, 20]]);
  }
  if (headers.length === 0) return flipBits(src, rng);
  const [at, fields] = pick(rng, headers);
  const off = at + pick(rng, fields);
  const wide = [20, 24, 42, 12, 16, 18, 22].includes(off - at) ? 4 : 2;
  if (off + wide > b.length) return b;
  const old = wide === 4 ? v.getUint32(off, true) : v.getUint16(off, true);
  const max = wide === 4 ? 0xffffffff : 0xffff;
  const value = pick(rng, [
    0,
    1,
    max,
    max >>> 1,
    old + 1,
    Math.max(0, old - 1),
    rng.nextUint32() & max,
    b.length & max,
    (old * 2) & max,
  ]);
  if (wide === 4) v.setUint32(off, value >>> 0, true);
  else v.setUint16(off, value & 0xffff, true);
  return b;
}

const OPCODES = [
  0x28, 0x2e, 0x30, 0x31, 0x32, 0x7d, 0x5d, 0x29, 0x74, 0x85, 0x86, 0x87, 0x6c, 0x64, 0x73, 0x75, 0x61, 0x65, 0x62,
  0x52, 0x81, 0x51, 0x88, 0x89, 0x4e, 0x94, 0x8f, 0x90, 0x91, 0x93, 0x92, 0x6f, 0x69,
];
const WITH_ARG: number[][] = [
  [0x68, 0],
  [0x68, 1],
  [0x68, 200],
  [0x71, 0],
  [0x71, 3],
  [0x4b, 0],
  [0x4b, 255],
  [0x4d, 0xff, 0xff],
  [0x4a, 0xff, 0xff, 0xff, 0x7f],
  [0x4a, 0xff, 0xff, 0xff, 0xff],
  [0x8a, 8, 0, 0, 0, 0, 0, 0, 0, 0x40],
  [0x8c, 5, ...new TextEncoder().encode("model")],
  [0x8c, 10, ...new TextEncoder().encode("state_dict")],
  [0x6a, 0xff, 0xff, 0xff, 0xff],
  [0x95, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];

function mutatePickle(src: Uint8Array, rng: Rng): Uint8Array {
  const at = rng.nextUint32() % src.length;
  const splice = (del: number, ins: number[]): Uint8Array => {
    const out = new Uint8Array(src.length - Math.min(del, src.length - at) + ins.length);
    out.set(src.subarray(0, at));
    out.set(ins, at);
    out.set(src.subarray(at + del), at + ins.length);
    return out;
  };
  switch (rng.nextUint32() % 6) {
    case 0:
      return flipBits(src, rng);
    case 1: {
      const b = Uint8Array.from(src);
      b[at] = pick(rng, OPCODES);
      return b;
    }
    case 2:
      return splice(
        0,
        Array.from({ length: 1 + (rng.nextUint32() % 4) }, () =>
          rng.nextUint32() % 3 === 0 ? pick(rng, WITH_ARG) : [pick(rng, OPCODES)],
        ).flat(),
      );
    case 3:
      return splice(1 + (rng.nextUint32() % 32), []);
    case 4: {
      // Repeat a range many times: deep or wide structures from a real pickle's own pieces.
      const len = 1 + (rng.nextUint32() % 24);
      const piece = Array.from(src.subarray(at, at + len));
      const times = pick(rng, [2, 10, 1000, 20000]);
      const ins: number[] = [];
      for (let i = 0; i < times; i++) for (const x of piece) ins.push(x);
      return splice(0, ins);
    }
    default: {
      // An integer operand (shape, stride, offset, numel, memo index) set to an edge value.
      const b = Uint8Array.from(src);
      const ints: number[] = [];
      for (let i = 0; i + 1 < b.length; i++) if (b[i] === 0x4b || b[i] === 0x68) ints.push(i);
      if (ints.length === 0) return flipBits(src, rng);
      b[pick(rng, ints) + 1] = pick(rng, [0, 1, 2, 3, 7, 64, 127, 200, 255]);
      return b;
    }
  }
}

function pklIndex(entries: ZipSpec[]): number {
  return entries.findIndex((e) => e.name.endsWith("/data.pkl"));
}

function randomSpec(rng: Rng, key: string): TensorSpec & { bytes: number } {
  const types: [string, number][] = [
    ["FloatStorage", 4],
    ["HalfStorage", 2],
    ["BFloat16Storage", 2],
    ["LongStorage", 8],
    ["BoolStorage", 1],
    ["DoubleStorage", 8],
    ["ByteStorage", 1],
    ["IntStorage", 4],
    ["ComplexFloatStorage", 8],
    ["QInt8Storage", 1],
    ["float", 4],
    ["__proto__", 4],
  ];
  const ndim = rng.nextUint32() % 5;
  if (rng.next() < 0.4) {
    // An honest record: contiguous, its storage exactly the size it declares.
    const shape = Array.from({ length: ndim }, () => 1 + (rng.nextUint32() % 5));
    const numel = shape.reduce((x, y) => x * y, 1);
    const [type, size] = pick(rng, types.slice(0, 8));
    return { key, type, numel, shape, bytes: numel * size };
  }
  const [type, size] = pick(rng, types);
  const dims = [0, 1, 2, 3, 5, 7, 16, 300, 4096, 2 ** 31, 2 ** 40];
  const shape = Array.from({ length: ndim }, () => (rng.next() < 0.8 ? 1 + (rng.nextUint32() % 6) : pick(rng, dims)));
  let stride: number[] | undefined;
  if (rng.next() < 0.5) stride = shape.map(() => pick(rng, [0, 0, 1, 2, 3, 6, 1000, 2 ** 31, 2 ** 45]));
  const need = shape.reduce((a, b) => a * b, 1);
  const numel = rng.next() < 0.6 ? Math.min(need, 4096) : pick(rng, [0, 1, 2, 5, 100, 4096, 2 ** 31, 2 ** 52]);
  const offset = rng.next() < 0.8 ? 0 : pick(rng, [1, 3, numel, numel + 1, 2 ** 40]);
  const honest = Math.min(numel * size, 1 << 20);
  const bytes = rng.next() < 0.7 ? honest : pick(rng, [0, honest + 1, Math.max(0, honest - 1), 4, honest * 2]);
  return { key, type, numel, offset, shape, stride, bytes };
}

/** A generated torch.save file: random tensors, wrappers, cycles, nesting and zip records. */
function generated(rng: Rng): { bytes: Uint8Array; limits?: object } {
  const n = 1 + (rng.nextUint32() % 3);
  const specs = Array.from({ length: n }, (_, i) => randomSpec(rng, rng.next() < 0.2 ? "0" : String(i)));
  let body: number[] = p.dict(specs.map((s, i) => [rng.next() < 0.05 ? "" : `t${i}`, tensorOps(s)]));
  const wrappers = pick(rng, [0, 0, 1, 2, 9, 3000]);
  const open: number[] = [];
  for (let i = 0; i < wrappers; i++)
    open.push(OP.EMPTY_DICT, ...p.str(pick(rng, ["state_dict", "model", "net", "other"])));
  body = [...open, ...body, ...new Array<number>(wrappers).fill(OP.SETITEM)];
  if (rng.next() < 0.15) {
    // A cycle through the memo: the top dict memoised and stored under one of the wrapper keys.
    body = [
      OP.EMPTY_DICT,
      ...p.put(250),
      ...p.str(pick(rng, ["state_dict", "model", "x"])),
      ...p.get(250),
      OP.SETITEM,
      ...p.str("more"),
      ...body,
      OP.SETITEM,
    ];
  }
  const storages: Record<string, Uint8Array | ZipSpec> = {};
  for (const s of specs) {
    const data = new Uint8Array(s.bytes);
    storages[s.key] =
      rng.next() < 0.2
        ? {
            name: "",
            data,
            deflate: true,
            declaredSize: rng.next() < 0.5 ? undefined : pick(rng, [0, 1, s.bytes + 1, 2 ** 32 - 1]),
          }
        : data;
  }
  const zo: ZipOptions = {};
  const extra: ZipSpec[] = [];
  const r = rng.next();
  if (r < 0.05) zo.directoryOffset = pick(rng, [0, 1, 0xffffffff, 0x7fffffff]);
  else if (r < 0.1) zo.count = pick(rng, [0, 1, 65535]);
  else if (r < 0.15)
    zo.zip64End = {
      count: pick(rng, [0, 1, 2 ** 40, 2 ** 53]),
      directoryOffset: pick(rng, [undefined, 0, 2 ** 40]),
      recordOffset: pick(rng, [undefined, 0, 2 ** 33]),
    };
  else if (r < 0.2)
    extra.push({ name: pick(rng, ["archive/data.pkl", "archive/data/0", "other/data.pkl"]), data: new Uint8Array(3) });
  return { bytes: torchZip(pickle(body), storages, { extra, zip: zo, deflate: rng.next() < 0.2 }), limits: SMALL };
}

test("fuzz: mutated and generated torch.save files read or are refused cleanly, in bounded time and memory", async () => {
  const before = memory().numTensors;
  const stored = await Promise.all(
    ["small-dtypes.pt", "views.pt", "checkpoint.pt"].map(async (f) => new Uint8Array(await readFile(fixture(f)))),
  );
  const seeds = stored.flatMap((b) => [b, zip(entriesOf(b).map((e) => ({ ...e, deflate: true })))]);
  // Every seed reads as it is (a mutation that changes nothing must not be refused).
  for (const s of seeds) for (const t of parseStateDictFile(s, "seed.pt").tensors.values()) t.dispose();

  const mutators: Record<string, Mutator> = {
    "file bytes": (rng) => ({ bytes: mutateBytes(pick(rng, seeds), rng) }),
    "zip header fields": (rng) => ({ bytes: mutateZipField(pick(rng, seeds), rng) }),
    "pickle bytes and opcodes": (rng) => {
      const entries = entriesOf(pick(rng, seeds));
      const i = pklIndex(entries);
      const e = entries[i] as ZipSpec;
      entries[i] = { ...e, data: mutatePickle(e.data, rng), deflate: rng.next() < 0.5 };
      return { bytes: zip(entries) };
    },
    "storage sizes": (rng) => {
      const entries = entriesOf(pick(rng, seeds));
      const storages = entries.filter((e) => /\/data\/\d+$/.test(e.name));
      const e = pick(rng, storages);
      const len = pick(rng, [0, 1, e.data.length - 1, e.data.length + 1, e.data.length * 2, e.data.length + 4096]);
      const data = new Uint8Array(Math.max(0, len));
      data.set(e.data.subarray(0, data.length));
      e.data = data;
      if (rng.next() < 0.5) e.deflate = true;
      return { bytes: zip(entries) };
    },
    "generated files": generated,
  };
  const rng = new Rng(20260311);
  // BADEXPERT_FUZZ_CASES=N runs N cases per mutator (longer campaigns; the seed stays fixed).
  const perMutator = Number(process.env.BADEXPERT_FUZZ_CASES ?? 1000);
  const stats = new Map<
    string,
    { cases: number; accepted: number; refused: number; seconds: number; slowestMs: number }
  >();
  const kinds = new Map<string, number>();
  const rss0 = process.memoryUsage().rss;
  let peakRss = rss0;
  let slowest = { ms: 0, what: "" };
  const t0 = performance.now();
  for (const [name, mutate] of Object.entries(mutators)) {
    const s = { cases: 0, accepted: 0, refused: 0, seconds: 0, slowestMs: 0 };
    stats.set(name, s);
    const m0 = performance.now();
    for (let i = 0; i < perMutator; i++) {
      const what = `${name} case ${i}`;
      const { bytes, limits } = mutate(rng);
      const c0 = performance.now();
      try {
        const f = parseStateDictFile(bytes, "fuzz.pt", limits);
        s.accepted++;
        for (const [k, t] of f.tensors) {
          const numel = t.shape.reduce((a, b) => a * b, 1);
          t.dispose();
          assert.ok(Number.isSafeInteger(numel), `${what}: tensor ${k} of shape ${JSON.stringify(t.shape)}`);
        }
      } catch (e) {
        if (e instanceof assert.AssertionError) throw e;
        s.refused++;
        assert.ok(
          KNOWN.some((K) => e instanceof K),
          `${what}: ${e instanceof Error ? `${e.constructor.name}: ${e.message.slice(0, 300)}` : String(e)}`,
        );
        const message = (e as Error).message;
        assert.ok(
          message.startsWith("fuzz.pt") && message.length < 1000,
          `${what}: message of ${message.length} characters: ${message.slice(0, 200)}`,
        );
        assert.doesNotMatch(message, RAW, `${what}: raw message`);
        assert.doesNotMatch(message, CONTROL, `${what}: control character in message`);
        const kind = message.replace(/\d+/g, "N").slice(9, 70);
        kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      }
      s.cases++;
      const ms = performance.now() - c0;
      if (ms > slowest.ms) slowest = { ms, what };
      s.slowestMs = Math.max(s.slowestMs, ms);
      if (i % 25 === 0) peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }
    s.seconds = (performance.now() - m0) / 1000;
  }
  const seconds = (performance.now() - t0) / 1000;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const total = [...stats.values()].reduce((a, s) => a + s.cases, 0);
  for (const [name, s] of stats)
    console.log(
      `fuzz torch.save: ${name}: ${s.cases} cases in ${s.seconds.toFixed(1)} s (slowest ${s.slowestMs.toFixed(0)} ms), ${s.accepted} read, ${s.refused} refused`,
    );
  console.log(
    `fuzz torch.save: ${total} cases in ${seconds.toFixed(1)} s, crashes 0, hangs 0 (slowest case ${slowest.ms.toFixed(0)} ms: ${slowest.what}), ` +
      `${kinds.size} kinds of message, RSS ${(rss0 / MiB).toFixed(0)} MiB at the start, peak ${(peakRss / MiB).toFixed(0)} MiB (+${((peakRss - rss0) / MiB).toFixed(0)} MiB)`,
  );
  assert.ok(slowest.ms < 5000, `slowest case took ${slowest.ms.toFixed(0)} ms: ${slowest.what}`);
  assert.ok(peakRss - rss0 < 1024 * MiB, `RSS grew by ${((peakRss - rss0) / MiB).toFixed(0)} MiB`);
  for (const [name, s] of stats) {
    assert.ok(s.refused > 0 && s.accepted + s.refused === s.cases, `${name}: ${JSON.stringify(s)}`);
  }
  assert.equal(memory().numTensors, before);
});
