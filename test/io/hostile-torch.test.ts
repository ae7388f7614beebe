// torch.save files made to hurt the reader: reference cycles, deep nesting, inflation bombs,
// views that expand a few bytes into gigabytes, zip records that lie. Each file is read in a
// child process with a 256 MB heap cap and a timeout (hostile-load.ts), so a reader that loops,
// aborts or runs out of memory fails its test instead of taking the runner down. Each must be
// refused at once with one short message of a known error class, with the peak RSS growing by
// no more than a few tens of MB; the legitimate expanded views PyTorch writes still read.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { dispose, memory } from "../../src/engine/index.js";
import { parseStateDictFile, readStateDictFile } from "../../src/io/state-dict-file.js";
import { PickleError } from "../../src/io/pickle.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import type { HostileResult } from "./hostile-load.js";
import {
  OP,
  float32Bytes,
  p,
  pickle,
  stateDictPickle,
  tensorOps,
  torchZip,
  zerosDeflated,
  type ZipSpec,
} from "./torch-files.js";

const RUNNER = join(dirname(fileURLToPath(import.meta.url)), "hostile-load.js");
const KNOWN = new Set(["PickleError", "ZipError", "TorchFileError", "WeightsFileError", "FileReadError"]);
const MiB = 1024 * 1024;

interface Outcome {
  result?: HostileResult;
  /** Set when the child did not print a result: killed by the timeout, a signal, or an abort. */
  crash?: string;
}

/** Reads the files in one child process (starting one loads libtorch, about a second), in order. */
async function loadAll(files: { bytes: Uint8Array; limits?: object }[], timeoutMs = 60_000): Promise<Outcome[]> {
  const dir = await mkdtemp(join(tmpdir(), "bx-hostile-"));
  try {
    const jobs = await Promise.all(
      files.map(async ({ bytes, limits }, i) => {
        const file = join(dir, `hostile-${i}.pt`);
        await writeFile(file, bytes);
        return { file, limits };
      }),
    );
    await writeFile(join(dir, "jobs.json"), JSON.stringify(jobs));
    const r = spawnSync(process.execPath, ["--max-old-space-size=256", RUNNER, join(dir, "jobs.json")], {
      encoding: "utf8",
      timeout: timeoutMs,
      maxBuffer: 64 * MiB,
      env: { ...process.env, BADEXPERT_THREADS: "1" },
    });
    const lines = r.stdout.split("\n").filter((l) => l.startsWith("{"));
    const crash = `${r.error ? `${r.error.message}; ` : ""}status ${r.status}, signal ${r.signal}; stderr: ${r.stderr.slice(-300)}`;
    return files.map((_, i) =>
      lines[i] !== undefined ? { result: JSON.parse(lines[i]) as HostileResult } : { crash },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function load(bytes: Uint8Array, limits?: object): Promise<Outcome> {
  return (await loadAll([{ bytes, limits }]))[0] as Outcome;
}

interface RefusalCheck {
  limits?: object;
  maxMs?: number;
  maxGrowthMiB?: number;
}

/** Asserts a clean refusal: known class, message matching `pattern`, short, at once, small RSS growth. */
function assertRefused(outcome: Outcome, pattern: RegExp, o: RefusalCheck = {}): HostileResult {
  const { result, crash } = outcome;
  assert.ok(result, `the reader crashed or hung: ${crash}`);
  assert.equal(result.ok, false, `accepted: ${JSON.stringify(result.tensors?.map((t) => [t.name, t.shape]))}`);
  const message = result.message ?? "";
  assert.ok(KNOWN.has(result.errorName ?? ""), `error class ${result.errorName}: ${message.slice(0, 300)}`);
  assert.match(message, pattern);
  assert.ok(message.length < 1000, `message of ${message.length} characters: ${message.slice(0, 300)}...`);
  assert.ok(result.ms < (o.maxMs ?? 5000), `took ${result.ms.toFixed(0)} ms`);
  assert.ok(result.peakGrowthMiB < (o.maxGrowthMiB ?? 64), `peak RSS grew by ${result.peakGrowthMiB.toFixed(0)} MiB`);
  console.log(
    `hostile: refused in ${result.ms.toFixed(0)} ms, peak RSS +${result.peakGrowthMiB.toFixed(0)} MiB: ${message.replace(/^[^:]*: /, "").slice(0, 90)}`,
  );
  return result;
}

async function refused(bytes: Uint8Array, pattern: RegExp, o: RefusalCheck = {}): Promise<HostileResult> {
  return assertRefused(await load(bytes, o.limits), pattern, o);
}

/** Several small refusals read by one child process. */
async function allRefused(cases: [Uint8Array, RegExp][]): Promise<void> {
  const outcomes = await loadAll(cases.map(([bytes]) => ({ bytes })));
  cases.forEach(([, pattern], i) => assertRefused(outcomes[i] as Outcome, pattern));
}

// ---- cycles and depth ----

test("a dict whose state_dict entry is the dict itself is refused at once", async () => {
  const pkl = pickle(OP.EMPTY_DICT, p.put(0), p.str("state_dict"), p.get(0), OP.SETITEM);
  assert.ok(pkl.length < 40);
  await refused(torchZip(pkl, {}), /data\.pkl: the pickle holds a reference cycle \(a dict that contains itself/);
});

test("a list that contains itself, reached through a state_dict, is refused", async () => {
  // {"state_dict": {"w": L}} with L = [L]
  const pkl = pickle(
    OP.EMPTY_DICT,
    p.str("state_dict"),
    OP.EMPTY_DICT,
    p.str("w"),
    OP.EMPTY_LIST,
    p.put(7),
    p.get(7),
    OP.APPEND,
    OP.SETITEM,
    OP.SETITEM,
  );
  await refused(torchZip(pkl, {}), /reference cycle \(a list that contains itself/);
});

test("200,000 nested wrappers are refused with one short message", async () => {
  const n = 200_000;
  const ops: number[] = [];
  for (let i = 0; i < n; i++) ops.push(OP.EMPTY_DICT, ...p.str("state_dict"));
  ops.push(OP.EMPTY_DICT);
  for (let i = 0; i < n; i++) ops.push(OP.SETITEM);
  // 200,000 dicts are built before the finished graph is checked.
  await refused(torchZip(pickle(ops), {}, { deflate: true }), /nests containers more than 1000 levels deep/, {
    maxGrowthMiB: 160,
  });
});

test("a state_dict under more wrappers than a checkpoint uses is refused, naming the limit", async () => {
  const ops: number[] = [];
  for (let i = 0; i < 20; i++) ops.push(OP.EMPTY_DICT, ...p.str("model"));
  ops.push(...p.dict([["w", tensorOps({ key: "0", numel: 1, shape: [1] })]]));
  for (let i = 0; i < 20; i++) ops.push(OP.SETITEM);
  await refused(
    torchZip(pickle(ops), { "0": float32Bytes([1]) }),
    /wrapped more than 8 levels deep \(\["model"\]\["model"\]\["model"\]\.\.\.\)/,
  );
});

test("a chain of 200,000 lists linked after they were built is refused by the graph check", async () => {
  // Each list is made empty and memoised, then linked to the next one: the nesting exists only
  // through the memo, so it must be found on the finished graph.
  const n = 200_000;
  const ops: number[] = [];
  for (let i = 0; i < n; i++) ops.push(OP.EMPTY_LIST, ...p.put(i), OP.POP);
  for (let i = 0; i + 1 < n; i++) ops.push(...p.get(i), ...p.get(i + 1), OP.APPEND, OP.POP);
  ops.push(OP.EMPTY_DICT, ...p.get(0), ...p.int(1), OP.SETITEM);
  await refused(torchZip(pickle(ops), {}, { deflate: true }), /nests containers more than 1000 levels deep/, {
    maxGrowthMiB: 160,
  });
});

test("a shared sub-graph with 2^60 paths costs its size, not its paths", async () => {
  // L0 = [], L(i+1) = [Li, Li]; {L60: 1} as the top-level dict. Stringifying L60 for a message
  // would never end; walking it once per container takes microseconds.
  const ops: number[] = [OP.EMPTY_LIST, ...p.put(0)];
  for (let i = 0; i < 60; i++) ops.push(OP.POP, OP.MARK, ...p.get(i), ...p.get(i), OP.LIST, ...p.put(i + 1));
  ops.push(OP.POP, OP.EMPTY_DICT, ...p.get(60), ...p.int(1), OP.SETITEM);
  await refused(torchZip(pickle(ops), {}), /expected a state_dict .* found a dict at the top level with keys list$/);
});

test("100,000 nested MARKs are refused at the 1001st", async () => {
  const ops = new Array<number>(100_000).fill(OP.MARK);
  await refused(torchZip(pickle(ops), {}), /more than 1000 nested MARKs/);
});

test("a LONG4 integer of a megabyte is refused at once (building it byte by byte takes time quadratic in its length)", async () => {
  const n = 1 << 20;
  const long = new Uint8Array(5 + n).fill(0x11);
  long.set([OP.LONG4, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, 0]);
  await refused(torchZip(pickle(long), {}, { deflate: true }), /an integer of 1048576 bytes/);
});

test("a million-character global name gives a message of a few hundred characters", async () => {
  const pkl = pickle(p.global(`os${"x".repeat(1_000_000)}`, "system"));
  await refused(torchZip(pkl, {}, { deflate: true }), /refused to load global 'osxxxx.*…'.*nothing was executed/);
});

test("a million and a half empty dicts, or as many copies of one value on the stack, are refused at the object limit", async () => {
  const dicts = new Uint8Array(3_000_000);
  for (let i = 0; i < dicts.length; i += 2) dicts.set([OP.EMPTY_DICT, OP.POP], i);
  await refused(torchZip(pickle(dicts), {}, { deflate: true }), /builds more than 1000000 objects/, {
    maxGrowthMiB: 160,
  });
  const dups = new Uint8Array(1_500_000).fill(0x32); // DUP
  await refused(torchZip(pickle(OP.EMPTY_TUPLE, dups), {}, { deflate: true }), /stack holds more than 1000000 values/);
});

// ---- inflation ----

test("a storage that inflates past the size its header declares is stopped there, never inflated in full", async () => {
  const pkl = stateDictPickle([["w", { key: "0", numel: 1024, shape: [1024] }]]);
  const bomb: ZipSpec = { name: "", data: new Uint8Array(0), declaredSize: 4096, compressed: zerosDeflated(128 * MiB) };
  await refused(torchZip(pkl, { "0": bomb }), /entry "archive\/data\/0" inflates past the 4096 bytes it declares/);
});

test("a storage whose declared size differs from its record is refused before it is inflated", async () => {
  const pkl = stateDictPickle([["w", { key: "0", numel: 1024, shape: [1024] }]]);
  const big: ZipSpec = {
    name: "",
    data: new Uint8Array(0),
    declaredSize: 128 * MiB,
    compressed: zerosDeflated(128 * MiB),
  };
  await refused(
    torchZip(pkl, { "0": big }),
    /storage "0" holds 134217728 bytes, but its record declares 1024 "FloatStorage" elements \(4096 bytes\)/,
  );
  // Stored, one element too many: the extra bytes are no part of any tensor PyTorch would load.
  await refused(
    torchZip(pkl, { "0": float32Bytes(new Array<number>(1025).fill(0)) }),
    /holds 4100 bytes, but its record declares 1024/,
  );
});

test("a file over the byte limit is refused before anything is inflated or built", async () => {
  const n = 32 * MiB; // 128 MiB of float32
  const pkl = stateDictPickle([["w", { key: "0", numel: n, shape: [n] }]]);
  const honest: ZipSpec = { name: "", data: new Uint8Array(0), declaredSize: 4 * n, compressed: zerosDeflated(4 * n) };
  await refused(
    torchZip(pkl, { "0": honest }),
    /would take 268435456 bytes \(134217728 to inflate, 134217728 for 1 tensors\), more than the limit of 67108864/,
    { limits: { maxBytes: 64 * MiB } },
  );
  // The default limit (4 GiB) against a ZIP64 entry declaring 5 GiB of a few bytes.
  const huge = 5 * 1024 ** 3;
  const pkl5 = stateDictPickle([["w", { key: "0", numel: huge / 4, shape: [huge / 4] }]]);
  const fake: ZipSpec = {
    name: "",
    data: new Uint8Array(0),
    declaredSize: huge,
    compressed: Uint8Array.from([3, 0]),
    zip64: true,
  };
  await refused(torchZip(pkl5, { "0": fake }), /more than the limit of 4294967296/);
});

// ---- views and strides ----

test("a zero-stride 20000x20000 view of one float is refused before anything is allocated", async () => {
  const pkl = stateDictPickle([["w", { key: "0", numel: 1, shape: [20000, 20000], stride: [0, 0] }]]);
  await refused(
    torchZip(pkl, { "0": float32Bytes([1]) }),
    /tensor "w" of shape \[20000, 20000\] and stride \[0, 0\] repeats its 1-element storage; .*limit of 16777216/,
  );
});

test("a shape whose element count passes 2^53 is refused by exact arithmetic", async () => {
  const pkl = stateDictPickle([["w", { key: "0", numel: 1, shape: [2 ** 40, 2 ** 40], stride: [0, 0] }]]);
  await refused(torchZip(pkl, { "0": float32Bytes([1]) }), /has 1208925819614629174706176 elements/);
});

test("views past their storage, negative sizes, unsupported and unknown storage types are refused", async () => {
  const cases: [Parameters<typeof tensorOps>[0], Uint8Array, RegExp][] = [
    [{ key: "0", numel: 5, shape: [10] }, float32Bytes([1, 2, 3, 4, 5]), /reaches element 9 of a storage of 5/],
    [
      { key: "0", numel: 4, shape: [2, 2], stride: [3, 1] },
      float32Bytes([1, 2, 3, 4]),
      /reaches element 4 of a storage of 4/,
    ],
    [{ key: "0", numel: 4, offset: 9, shape: [0] }, float32Bytes([1, 2, 3, 4]), /storage offset 9 lies past the end/],
    [
      { key: "0", numel: 4, shape: [-1] },
      float32Bytes([1, 2, 3, 4]),
      /size must be a tuple of non-negative ints, got \(-1\)/,
    ],
    [
      { key: "0", numel: 2, type: "ComplexFloatStorage", shape: [1] },
      new Uint8Array(16),
      /stored as "ComplexFloatStorage", which is not supported/,
    ],
    [
      { key: "0", numel: 2, type: "constructor", shape: [1] },
      new Uint8Array(8),
      /refused to load global 'torch\.constructor'/,
    ],
    [
      { key: "0", numel: 2 ** 52, shape: [1] },
      new Uint8Array(8),
      /holds 8 bytes, but its record declares 4503599627370496/,
    ],
  ];
  await allRefused(
    cases.map(([spec, data, pattern]) => [torchZip(stateDictPickle([["w", spec]]), { "0": data }), pattern]),
  );
});

test("the expanded and sliced views PyTorch writes read as torch.load gives them", async () => {
  // views.pt, written by PyTorch (make-seeds.py), read here; the values are torch.load's.
  const before = memory().numTensors;
  const f = await readStateDictFile(fixture("views.pt"));
  const got = Object.fromEntries([...f.tensors].map(([k, t]) => [k, { shape: t.shape, values: t.toArray() }]));
  dispose(f.tensors);
  assert.deepEqual(got, {
    expand: { shape: [4, 3], values: [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2] },
    scalar: { shape: [2, 2], values: [5, 5, 5, 5] },
    column: { shape: [2], values: [1, 4] },
    transposed: { shape: [3, 2], values: [0, 3, 1, 4, 2, 5] },
    half: { shape: [3, 2], values: [1.5, -2, 1.5, -2, 1.5, -2] },
    index: { shape: [4], values: [0, 1, 2, 3] },
  });
  assert.equal(memory().numTensors, before);
  // The same layout built here (torch.load reads it the same): through the child process.
  const pkl = stateDictPickle([
    ["e", { key: "0", numel: 3, shape: [4, 3], stride: [0, 1] }],
    ["b", { key: "1", numel: 6, offset: 1, shape: [2], stride: [3] }],
    ["s", { key: "2", numel: 1, shape: [2, 2], stride: [0, 0] }],
  ]);
  const { result, crash } = await load(
    torchZip(pkl, { "0": float32Bytes([0, 1, 2]), "1": float32Bytes([0, 1, 2, 3, 4, 5]), "2": float32Bytes([5]) }),
  );
  assert.ok(result?.ok, `refused: ${result?.message ?? crash}`);
  assert.deepEqual(result.tensors, [
    { name: "e", shape: [4, 3], values: [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2] },
    { name: "b", shape: [2], values: [1, 4] },
    { name: "s", shape: [2, 2], values: [5, 5, 5, 5] },
  ]);
});

// ---- zip records ----

test("two entries of the same name are refused (which one a reader takes is not defined)", async () => {
  const good = stateDictPickle([["w", { key: "0", numel: 1, shape: [1] }]]);
  const other = stateDictPickle([["w", { key: "0", numel: 1, shape: [1], stride: [0] }]]);
  await allRefused([
    [
      torchZip(good, { "0": float32Bytes([1]) }, { extra: [{ name: "archive/data.pkl", data: other }] }),
      /two entries named "archive\/data\.pkl"/,
    ],
    [
      torchZip(good, { "0": float32Bytes([1]) }, { extra: [{ name: "other/data.pkl", data: other }] }),
      /holds 2 data\.pkl records/,
    ],
  ]);
});

test("zip records that point outside the file, lie about names or sizes, or hide their data are refused", async () => {
  const pkl = stateDictPickle([["w", { key: "0", numel: 1, shape: [1] }]]);
  const one = { "0": float32Bytes([1]) };
  const file = torchZip(pkl, one);
  await allRefused([
    [
      torchZip(pkl, one, { zip: { directoryOffset: 0x7fffffff } }),
      /central directory \(4 entries at byte 2147483647\) lies outside the \d+-byte file/,
    ],
    [torchZip(pkl, one, { zip: { count: 65535 } }), /central directory \(65535 entries at byte \d+\) lies outside/],
    [
      torchZip(pkl, one, { zip: { zip64End: { recordOffset: 2 ** 40 } } }),
      /truncated zip \(read at byte 1099511627776/,
    ],
    [torchZip(pkl, one, { zip: { zip64End: { count: 2 ** 40 } } }), /declares 1099511627776 entries/],
    [
      torchZip(pkl, { "0": { name: "", data: float32Bytes([1]), zip64: true, zip64ExtraBytes: 8 } }),
      /the ZIP64 extra field is too short/,
    ],
    [
      torchZip(pkl, { "0": { name: "", data: float32Bytes([1]), localName: "archive/data/9" } }),
      /the local header of "archive\/data\/0" names another file/,
    ],
    [torchZip(pkl, { "0": { name: "", data: float32Bytes([1]), flags: 1 } }), /entry "archive\/data\/0" is encrypted/],
    [
      torchZip(pkl, {
        "0": { name: "", data: float32Bytes([1]), method: 12, compressed: Uint8Array.from([1, 2, 3, 4]) },
      }),
      /compression method 12/,
    ],
    [
      torchZip(pkl, { "0": { name: "", data: float32Bytes([1]), compressed: Uint8Array.from([0x4b, 0x4c]) } }),
      /entry "archive\/data\/0" does not inflate/,
    ],
    [file.subarray(0, file.length - 30), /not a zip archive|truncated zip|lies outside/],
  ]);
});

test("every refusal inside the unpickler is a PickleError naming the file (BUILD on a storage included)", () => {
  // BINPERSID of a storage record, then BUILD with an empty dict as its state.
  const persid = p.tuple(p.str("storage"), p.global("torch", "FloatStorage"), p.str("0"), p.str("cpu"), p.int(1));
  const pkl = pickle(persid, OP.BINPERSID, OP.EMPTY_DICT, 0x62 /* BUILD */);
  assert.throws(
    () => parseStateDictFile(torchZip(pkl, { "0": float32Bytes([1]) }), "build.pt"),
    (e: Error) =>
      e instanceof PickleError &&
      /^build\.pt: data\.pkl: BUILD \(setting state\) on a storage is not allowed$/.test(e.message),
  );
});
