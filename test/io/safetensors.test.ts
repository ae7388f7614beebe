// Tests for the safetensors codec. Expected bytes are written out by hand from the format
// specification rather than produced by the code under test, so a layout bug in both the
// writer and the reader cannot cancel out.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  bytesPerElement,
  decodeToFloat32,
  float32ToFloat16Bytes,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type RawTensor,
  type SafetensorsDType,
} from "../../src/io/safetensors.js";
import { BadExpertError } from "../../src/util/errors.js";

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

/** A file from a header string and buffer bytes, with the length prefix computed here. */
function fileFrom(header: string, data: number[] = []): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function tensor(dtype: SafetensorsDType, shape: number[], bytes: number[]): RawTensor {
  return { dtype, shape, data: Uint8Array.from(bytes) };
}

/** The header of a serialized file, decoded independently of the parser. */
function headerOf(file: Uint8Array): { size: number; text: string } {
  const size = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return { size, text: new TextDecoder().decode(file.subarray(8, 8 + size)) };
}

void test("parses a file assembled byte by byte from the spec", () => {
  const header =
    '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"n":{"dtype":"I16","shape":[1,2],"data_offsets":[8,12]},' +
    '"__metadata__":{"format":"pt"}}';
  assert.equal(header.length, 141);
  const bytes = Uint8Array.from([
    0x8d,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // header size 141, u64 little-endian (unpadded: readers must accept it)
    ...ascii(header),
    0x00,
    0x00,
    0xc0,
    0x3f, // F32 1.5   = 0x3FC00000
    0x00,
    0x00,
    0x80,
    0xbe, // F32 -0.25 = 0xBE800000
    0xfe,
    0xff, // I16 -2
    0x02,
    0x01, // I16 258
  ]);
  const file = parseSafetensors(bytes);
  assert.deepEqual(file.metadata, { format: "pt" });
  assert.deepEqual([...file.tensors.keys()], ["w", "n"]);

  const w = file.tensors.get("w");
  assert.ok(w);
  assert.equal(w.dtype, "F32");
  assert.deepEqual(w.shape, [2]);
  assert.deepEqual([...w.data], [0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x80, 0xbe]);
  assert.deepEqual([...decodeToFloat32(w)], [1.5, -0.25]);

  const n = file.tensors.get("n");
  assert.ok(n);
  assert.equal(n.dtype, "I16");
  assert.deepEqual(n.shape, [1, 2]);
  const view = new DataView(n.data.buffer, n.data.byteOffset, n.data.byteLength);
  assert.deepEqual([view.getInt16(0, true), view.getInt16(2, true)], [-2, 258]);
});

void test("parses scalars, empty tensors, a null __metadata__ and a padded header", () => {
  const header =
    '{"__metadata__":null,"e":{"dtype":"F64","shape":[0,3],"data_offsets":[0,0]},' +
    '"s":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}   ';
  const file = parseSafetensors(fileFrom(header, [7]));
  assert.deepEqual(file.metadata, {});
  assert.deepEqual(file.tensors.get("e"), { dtype: "F64", shape: [0, 3], data: new Uint8Array(0) });
  assert.deepEqual(file.tensors.get("s"), { dtype: "U8", shape: [], data: Uint8Array.from([7]) });
});

void test("metadata keys are plain data, even __proto__", () => {
  const file = parseSafetensors(fileFrom('{"__metadata__":{"__proto__":"x","a":"b"}}'));
  assert.deepEqual(Object.entries(file.metadata), [
    ["__proto__", "x"],
    ["a", "b"],
  ]);
  assert.equal(Object.getPrototypeOf(file.metadata), Object.prototype);
});

void test("parses an empty file (no tensors) and reads from a Buffer at a non-zero offset", () => {
  assert.equal(parseSafetensors(fileFrom("{}")).tensors.size, 0);
  const inner = fileFrom('{"b":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}', [1, 0, 1]);
  const big = Buffer.alloc(inner.length + 5);
  big.set(inner, 5);
  const t = parseSafetensors(big.subarray(5)).tensors.get("b");
  assert.ok(t);
  assert.deepEqual([...t.data], [1, 0, 1]);
});

void test("decodes known F16 bit patterns exactly", () => {
  const halves = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3555, 0.333251953125],
    [0x0000, 0],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ] as const;
  const bytes = halves.flatMap(([h]) => [h & 0xff, h >> 8]);
  const out = decodeToFloat32(tensor("F16", [halves.length], bytes));
  assert.deepEqual(
    [...out],
    halves.map(([, v]) => v),
  );

  const special = decodeToFloat32(tensor("F16", [3], [0x00, 0x80, 0x00, 0x7e, 0x01, 0xfc]));
  assert.ok(Object.is(special[0], -0), "0x8000 is negative zero");
  assert.ok(Number.isNaN(special[1]), "0x7E00 is NaN");
  assert.ok(Number.isNaN(special[2]), "0xFC01 is a (signalling, negative) NaN, not -inf");
});

void test("decodes known BF16 bit patterns exactly", () => {
  const halves = [
    [0x3f80, 1],
    [0xc000, -2],
    [0x4049, 3.140625],
    [0x7f7f, 3.3895313892515355e38], // largest finite bfloat16
    [0x0001, 2 ** -133], // smallest bfloat16 subnormal, a float32 subnormal too
    [0x7f80, Infinity],
    [0xff80, -Infinity],
  ] as const;
  const bytes = halves.flatMap(([h]) => [h & 0xff, h >> 8]);
  assert.deepEqual(
    [...decodeToFloat32(tensor("BF16", [halves.length], bytes))],
    halves.map(([, v]) => v),
  );
  const nan = decodeToFloat32(tensor("BF16", [2], [0xc0, 0x7f, 0x00, 0x80]));
  assert.ok(Number.isNaN(nan[0]));
  assert.ok(Object.is(nan[1], -0));
});

void test("decodeToFloat32 copies F32 from unaligned views and narrows F64", () => {
  // One leading byte puts the F32 data at an odd offset, where no Float32Array view can start.
  const backing = Uint8Array.from([0xaa, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc1]);
  const t: RawTensor = { dtype: "F32", shape: [2], data: backing.subarray(1) };
  const out = decodeToFloat32(t);
  assert.deepEqual([...out], [1, -10]);
  out[0] = 42;
  assert.equal(backing[4], 0x3f, "the result is a copy, not a view into the file");

  const f64 = new Float64Array([0.1, -3, 1e300]);
  const narrowed = decodeToFloat32({ dtype: "F64", shape: [3], data: new Uint8Array(f64.buffer) });
  assert.deepEqual([...narrowed], [Math.fround(0.1), -3, Infinity]);

  assert.throws(() => decodeToFloat32(tensor("I32", [1], [1, 0, 0, 0])), /decodeToFloat32 handles .* not I32/);
  assert.throws(
    () => decodeToFloat32(tensor("F32", [2], [0, 0, 0, 0])),
    /shape \[2\] with dtype F32 needs 8 bytes but data has 4/,
  );
});

void test("float32ToFloat16Bytes rounds to nearest even", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65519, 0x7bff], // below the halfway point to 65536
    [65520, 0x7c00], // tie between 65504 (odd mantissa) and 65536: even is infinity
    [1e6, 0x7c00],
    [-1e6, 0xfc00],
    [1 + 2 ** -11, 0x3c00], // tie: keep the even mantissa 0
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3C01 and 0x3C02: even wins
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the tie
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between subnormals 1 and 2
    [1023.5 * 2 ** -24, 0x0400], // rounds up out of the subnormals into the smallest normal
    [1e-10, 0x0000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  const bytes = float32ToFloat16Bytes(Float32Array.from(cases, ([v]) => v));
  const got = Array.from({ length: cases.length }, (_, i) => new DataView(bytes.buffer).getUint16(2 * i, true));
  assert.deepEqual(
    got.map((h) => h.toString(16)),
    cases.map(([, h]) => h.toString(16)),
  );

  const nan = new DataView(float32ToFloat16Bytes(Float32Array.of(NaN)).buffer).getUint16(0, true);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0, "NaN stays NaN");
  // A float NaN whose payload is only in the low 13 bits must not collapse to infinity.
  const lowPayloadNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
  assert.notEqual(new DataView(float32ToFloat16Bytes(lowPayloadNaN).buffer).getUint16(0, true), 0x7c00);
});

void test("every finite and infinite F16 value survives decode -> encode unchanged", () => {
  const all = new Uint8Array(2 * 65536);
  const view = new DataView(all.buffer);
  for (let h = 0; h < 65536; h++) view.setUint16(2 * h, h, true);
  const floats = decodeToFloat32({ dtype: "F16", shape: [65536], data: all });
  const back = new DataView(float32ToFloat16Bytes(floats).buffer);
  let mismatches = 0;
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN) {
      if (!Number.isNaN(floats[h])) mismatches++;
    } else if (back.getUint16(2 * h, true) !== h) {
      mismatches++;
    }
  }
  assert.equal(mismatches, 0);
});

void test("bytesPerElement", () => {
  const sizes: Record<SafetensorsDType, number> = {
    F64: 8,
    F32: 4,
    F16: 2,
    BF16: 2,
    I64: 8,
    I32: 4,
    I16: 2,
    I8: 1,
    U8: 1,
    BOOL: 1,
  };
  for (const [dtype, size] of Object.entries(sizes) as [SafetensorsDType, number][]) {
    assert.equal(bytesPerElement(dtype), size, dtype);
  }
});

void test("serializes to exactly the bytes the spec prescribes", () => {
  const bias = tensor("U8", [3], [1, 2, 3]);
  const w = tensor("F16", [2], [0x00, 0x3c, 0x00, 0xc0]); // 1.0, -2.0
  const tensors = new Map<string, RawTensor>([
    ["bias", bias],
    ["w", w],
  ]);
  // F16 (2-byte alignment) sorts before U8 (1-byte) regardless of name; header is 109 bytes
  // of JSON + 3 spaces = 112 so that 8 + 112 is a multiple of 8.
  const header =
    '{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"bias":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}   ';
  const expected = Uint8Array.from([
    0x70,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    ...ascii(header),
    0x00,
    0x3c,
    0x00,
    0xc0, // w
    1,
    2,
    3, // bias
  ]);
  assert.deepEqual(serializeSafetensors(tensors), expected);
  // A plain object is accepted too and gives the same bytes.
  assert.deepEqual(serializeSafetensors({ bias, w }), expected);
});

void test("serializes metadata first, scalars with shape [], and pads to 8 bytes", () => {
  const header = '{"__metadata__":{"format":"pt"},"x":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}    ';
  const expected = Uint8Array.from([
    0x58,
    0,
    0,
    0,
    0,
    0,
    0,
    0, // 84 bytes of JSON + 4 spaces = 88
    ...ascii(header),
    0xfd,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff, // I64 -3
  ]);
  const bytes = serializeSafetensors(
    { x: tensor("I64", [], [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) },
    { format: "pt" },
  );
  assert.deepEqual(bytes, expected);
  assert.deepEqual(serializeSafetensors({}), Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0, ...ascii("{}      ")]));
});

void test("round-trips every dtype with sorted, contiguous, padded layout", () => {
  const dtypes: SafetensorsDType[] = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"];
  const shapes = [[2, 3], [5], [1, 1, 3], [], [0], [3, 0, 2]];
  const input = new Map<string, RawTensor>();
  let seed = 1;
  for (const [i, dtype] of dtypes.entries()) {
    const shape = shapes[i % shapes.length] ?? [1];
    const count = shape.reduce((a, b) => a * b, 1) * bytesPerElement(dtype);
    const bytes = Array.from({ length: count }, () => (seed = (seed * 75 + 74) % 65537) & 0xff);
    // Reversed names so sorting by name is observable; "0" checks index-like keys keep their place.
    input.set(
      i === 4 ? "0" : `t${9 - i}.${dtype.toLowerCase()}`,
      tensor(dtype, shape, dtype === "BOOL" ? bytes.map((b) => b & 1) : bytes),
    );
  }
  const file = serializeSafetensors(input, { format: "pt", note: 'héllo "quoted" \u2603' });

  const { size, text } = headerOf(file);
  assert.equal((8 + size) % 8, 0);
  assert.match(text, /\}( *)$/);
  const parsed = JSON.parse(text) as Record<string, { dtype: SafetensorsDType; data_offsets: [number, number] }>;
  // Object key order is insertion order except for index-like keys, so take the order from the text.
  const names = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1] ?? "");
  assert.equal(names.length, dtypes.length);
  let end = 0;
  for (const [k, name] of names.entries()) {
    const entry = parsed[name];
    assert.ok(entry);
    assert.equal(entry.data_offsets[0], end, `${name} starts where the previous tensor ends`);
    end = entry.data_offsets[1];
    const prevName = names[k - 1];
    if (prevName !== undefined) {
      const prev = parsed[prevName];
      assert.ok(prev);
      const a = bytesPerElement(prev.dtype);
      const b = bytesPerElement(entry.dtype);
      assert.ok(a >= b, `${prevName} (${prev.dtype}) is at least as aligned as ${name} (${entry.dtype})`);
    }
  }
  assert.equal(8 + size + end, file.length);
  assert.deepEqual(names, [
    "0",
    "t9.f64",
    "t8.f32",
    "t4.i32",
    "t6.bf16",
    "t7.f16",
    "t3.i16",
    "t2.i8",
    "t1.u8",
    "t0.bool",
  ]);

  const back = parseSafetensors(file);
  assert.deepEqual(back.metadata, { format: "pt", note: 'héllo "quoted" \u2603' });
  assert.equal(back.tensors.size, input.size);
  for (const [name, t] of input) {
    const got = back.tensors.get(name);
    assert.ok(got, name);
    assert.equal(got.dtype, t.dtype, name);
    assert.deepEqual(got.shape, t.shape, name);
    assert.deepEqual([...got.data], [...t.data], name);
  }
});

void test("orders tensors like the reference writer: dtype rank, then name by code point", () => {
  // Observed from the Python `safetensors` package: I64, F64, F32, I32, BF16, F16, I16, I8, U8, BOOL.
  const file = serializeSafetensors({
    b: tensor("U8", [1], [1]),
    a: tensor("U8", [1], [2]),
    k: tensor("BOOL", [1], [1]),
    j: tensor("I8", [1], [1]),
    z: tensor("F64", [1], [0, 0, 0, 0, 0, 0, 0xf0, 0x3f]),
    y: tensor("I64", [1], [5, 0, 0, 0, 0, 0, 0, 0]),
    i: tensor("I32", [1], [1, 0, 0, 0]),
    m: tensor("F32", [1], [0, 0, 0x80, 0x3f]),
    h: tensor("F16", [1], [0, 0x3c]),
    g: tensor("BF16", [1], [0x80, 0x3f]),
    s: tensor("I16", [1], [1, 0]),
    // U+FF5A sorts below U+1F600 by code point (and UTF-8 bytes) but above it by UTF-16 units.
    "\u{1F600}": tensor("U8", [1], [3]),
    "\uFF5A": tensor("U8", [1], [4]),
  });
  const names = [...headerOf(file).text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  assert.deepEqual(names, ["y", "z", "m", "i", "g", "h", "s", "j", "a", "b", "\uFF5A", "\u{1F600}", "k"]);
});

void test("serializer rejects inconsistent tensors before writing anything", () => {
  assert.throws(
    () => serializeSafetensors({ "fc.weight": tensor("F32", [2, 3], [0, 0, 0, 0]) }),
    /tensor "fc\.weight": shape \[2,3\] with dtype F32 needs 24 bytes but data has 4/,
  );
  assert.throws(
    () => serializeSafetensors({ __metadata__: tensor("U8", [1], [1]) }),
    /"__metadata__": this name is reserved/,
  );
  assert.throws(
    () => serializeSafetensors({ bad: tensor("U8", [-1], []) }),
    /tensor "bad": shape \[-1\] must be an array of non-negative integers/,
  );
  assert.throws(
    () => serializeSafetensors({ x: { dtype: "C64" as SafetensorsDType, shape: [1], data: new Uint8Array(8) } }),
    /tensor "x": unknown dtype "C64"/,
  );
  assert.throws(
    () => serializeSafetensors({}, JSON.parse('{"n":3}') as Record<string, string>),
    /metadata entry "n" must be a string/,
  );
});

// Every structural error the reader must detect, with what the message must say.
const INVALID: { name: string; bytes: () => Uint8Array; message: RegExp }[] = [
  {
    name: "file shorter than 8 bytes",
    bytes: () => new Uint8Array(5),
    message: /file is 5 bytes, shorter than the 8-byte header-size prefix/,
  },
  {
    name: "header size larger than the file",
    bytes: () => Uint8Array.from([0xe8, 0x03, 0, 0, 0, 0, 0, 0, ...ascii("{}")]),
    message: /header size 1000 does not fit in the file: 8 \+ 1000 > 10 bytes/,
  },
  {
    name: "header size above 100 MB",
    bytes: () => Uint8Array.from([0, 0, 0, 0, 0, 1, 0, 0, ...ascii("{}")]),
    message: /header size 1099511627776 exceeds the 100000000-byte limit/,
  },
  { name: "invalid JSON", bytes: () => fileFrom('{"a":'), message: /header is not valid JSON/ },
  {
    name: "JSON that is not an object",
    bytes: () => fileFrom("[1,2]"),
    message: /header must be a JSON object, found an array/,
  },
  {
    name: "invalid UTF-8",
    bytes: () => Uint8Array.from([4, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0xff, 0xfe, 0x7d]),
    message: /header is not valid UTF-8/,
  },
  {
    name: "unknown dtype",
    bytes: () => fileFrom('{"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', [0, 0, 0, 0, 0, 0, 0, 0]),
    message: /tensor "w": unknown dtype "C64" \(expected one of F64, F32/,
  },
  {
    name: "missing dtype",
    bytes: () => fileFrom('{"w":{"shape":[1],"data_offsets":[0,1]}}', [0]),
    message: /tensor "w": unknown dtype undefined/,
  },
  {
    name: "tensor entry that is not an object",
    bytes: () => fileFrom('{"w":[1,2]}'),
    message: /tensor "w": expected an object \{dtype, shape, data_offsets\}, found \[1,2\]/,
  },
  {
    name: "shape/offset size mismatch",
    bytes: () =>
      fileFrom(
        '{"fc.weight":{"dtype":"F32","shape":[10,512],"data_offsets":[0,20000]}}',
        new Array<number>(20000).fill(0),
      ),
    message:
      /^safetensors: tensor "fc\.weight": shape \[10,512\] with dtype F32 needs 20480 bytes but data_offsets span 20000$/,
  },
  {
    name: "numel overflowing a double",
    bytes: () => fileFrom('{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}}'),
    message:
      /tensor "w": shape \[4294967296,4294967296\] with dtype F64 needs 147573952589676412928 bytes but data_offsets span 0/,
  },
  {
    name: "offsets past the end of the buffer",
    bytes: () => fileFrom('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', [0, 0, 0, 0, 0, 0, 0, 0]),
    message: /tensor "w": data_offsets \[0,16\] extend past the end of the 8-byte data buffer/,
  },
  {
    name: "offsets ending before they begin",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', [0, 0, 0, 0]),
    message: /tensor "w": data_offsets \[4,0\] end before they begin/,
  },
  {
    name: "malformed data_offsets",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}}', [0]),
    message: /tensor "w": data_offsets must be \[begin, end\] with non-negative integers, found \[0\]/,
  },
  {
    name: "negative offsets",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}', [0]),
    message: /tensor "w": data_offsets must be \[begin, end\].*found \[-1,0\]/,
  },
  {
    name: "overlapping tensors",
    bytes: () =>
      fileFrom(
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
        new Array<number>(12).fill(0),
      ),
    message: /tensor "b": data_offsets \[4,12\] overlap tensor "a", which ends at 8/,
  },
  {
    name: "a gap between tensors",
    bytes: () =>
      fileFrom(
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
        new Array<number>(12).fill(0),
      ),
    message: /tensor "b": data_offsets \[8,12\] leave a 4-byte gap: expected begin 4 \(tensor "a" ends at 4\)/,
  },
  {
    name: "a first tensor that does not start at 0",
    bytes: () => fileFrom('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', new Array<number>(8).fill(0)),
    message: /tensor "a": data_offsets \[4,8\] leave a 4-byte gap: expected begin 0 \(the buffer starts at 0\)/,
  },
  {
    name: "trailing bytes after the last tensor",
    bytes: () => fileFrom('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Array<number>(8).fill(0)),
    message: /data buffer is 8 bytes but tensors cover only 4 \(the last, "a", ends at 4\)/,
  },
  {
    name: "a data buffer with no tensors",
    bytes: () => fileFrom("{}", [1, 2]),
    message: /data buffer is 2 bytes but tensors cover only 0 \(there are no tensors\)/,
  },
  {
    name: "a negative dimension",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":[2,-1],"data_offsets":[0,0]}}'),
    message: /tensor "w": shape \[2,-1\] has invalid dimension -1 at axis 1 \(expected a non-negative integer\)/,
  },
  {
    name: "a fractional dimension",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,0]}}'),
    message: /tensor "w": shape \[1.5\] has invalid dimension 1.5 at axis 0/,
  },
  {
    name: "a string dimension",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":["2"],"data_offsets":[0,2]}}', [0, 0]),
    message: /tensor "w": shape \["2"\] has invalid dimension "2" at axis 0/,
  },
  {
    name: "a shape that is not an array",
    bytes: () => fileFrom('{"w":{"dtype":"U8","shape":2,"data_offsets":[0,2]}}', [0, 0]),
    message: /tensor "w": shape must be an array of non-negative integers, found 2/,
  },
  {
    name: "non-string metadata",
    bytes: () => fileFrom('{"__metadata__":{"epochs":3}}'),
    message: /"__metadata__" entry "epochs" must be a string, found 3/,
  },
];

for (const c of INVALID) {
  void test(`rejects ${c.name}`, () => {
    assert.throws(
      () => parseSafetensors(c.bytes()),
      (err: unknown) => {
        assert.ok(err instanceof BadExpertError);
        assert.equal(err.code, "E_MODEL_FORMAT");
        assert.match(err.message, c.message);
        return true;
      },
    );
    // With a source name, the message leads with it.
    assert.throws(
      () => parseSafetensors(c.bytes(), "model.safetensors"),
      (err: unknown) => err instanceof BadExpertError && /^safetensors: model\.safetensors: /.test(err.message),
    );
  });
}

void test("writeSafetensors / readSafetensors round trip through a file", async () => {
  const dir = await mkdtemp(join(tmpdir(), "badexpert-st-"));
  try {
    const path = join(dir, "model.safetensors");
    const weights = Float32Array.of(0.5, -1, 3);
    await writeSafetensors(
      path,
      new Map([
        ["w", { dtype: "F32" as const, shape: [3], data: new Uint8Array(weights.buffer) }],
        ["h", { dtype: "F16" as const, shape: [3], data: float32ToFloat16Bytes(weights) }],
      ]),
      { arch: "resnet18" },
    );
    assert.deepEqual(await readdir(dir), ["model.safetensors"], "the temporary file was renamed away");
    const onDisk = await readFile(path);
    const { size } = headerOf(onDisk);
    assert.equal((8 + size) % 8, 0);
    assert.equal(onDisk.length, 8 + size + 12 + 6, "12 bytes of F32 and 6 of F16 follow the header");

    const file = await readSafetensors(path);
    assert.deepEqual(file.metadata, { arch: "resnet18" });
    const w = file.tensors.get("w");
    const h = file.tensors.get("h");
    assert.ok(w && h);
    assert.deepEqual([...decodeToFloat32(w)], [0.5, -1, 3]);
    assert.deepEqual([...decodeToFloat32(h)], [0.5, -1, 3]);

    // Overwriting an existing file replaces it whole.
    await writeSafetensors(path, {});
    assert.equal((await readSafetensors(path)).tensors.size, 0);

    // Errors from a file name the file.
    const bad = join(dir, "bad.safetensors");
    await writeFile(bad, fileFrom('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [0, 0, 0, 0]));
    await assert.rejects(readSafetensors(bad), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.ok(err.message.includes(bad), err.message);
      assert.match(err.message, /tensor "a": shape \[2\] with dtype F32 needs 8 bytes but data_offsets span 4/);
      return true;
    });
    await assert.rejects(readSafetensors(join(dir, "missing.safetensors")), /ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test("a failed write leaves no file behind", async () => {
  const dir = await mkdtemp(join(tmpdir(), "badexpert-st-"));
  try {
    const t = { w: tensor("U8", [2], [1, 2]) };
    await assert.rejects(writeSafetensors(join(dir, "no-such-dir", "m.safetensors"), t), /ENOENT/);
    assert.deepEqual(await readdir(dir), []);

    // A path that is a directory: the temporary file is written, the rename fails, and the
    // temporary file must be cleaned up.
    const target = join(dir, "occupied");
    await mkdir(target);
    await assert.rejects(writeSafetensors(target, t));
    assert.deepEqual(await readdir(dir), ["occupied"]);
    assert.deepEqual(await readdir(target), []);

    // Invalid tensors fail before anything touches the disk.
    await assert.rejects(writeSafetensors(join(dir, "x.safetensors"), { w: tensor("U8", [3], [1]) }), /needs 3 bytes/);
    assert.deepEqual(await readdir(dir), ["occupied"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
