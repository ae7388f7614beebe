// The safetensors reader against hostile files: limits checked before anything large is read,
// directories and missing files named, non-finite values found in every float dtype, and names
// with control characters or terminal escapes never printed raw.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory, tensor } from "../../src/engine/index.js";
import { parseSafetensors, readSafetensors, serializeSafetensors, type RawTensor } from "../../src/io/safetensors.js";
import { countNonFinite, assertFiniteTensors } from "../../src/io/finite.js";
import { loadTensors, saveTensors } from "../../src/io/weights.js";
import { StateDictError } from "../../src/nn/state-dict-error.js";
import { printable } from "../../src/util/printable.js";

function raw(dtype: RawTensor["dtype"], bytes: number[]): RawTensor {
  return {
    dtype,
    shape: [bytes.length / (({ F64: 8, F32: 4, F16: 2, BF16: 2 } as Record<string, number>)[dtype] ?? 1)],
    data: Uint8Array.from(bytes),
  };
}

test("non-finite values are found in F64, F32, F16 and BF16 data, whatever the alignment", () => {
  const f32 = new Uint8Array(new Float32Array([1, Number.NaN, -2, Number.NEGATIVE_INFINITY, 3.4e38]).buffer);
  assert.deepEqual(countNonFinite({ dtype: "F32", shape: [5], data: f32 }), { count: 2, first: 1 });
  const unaligned = new Uint8Array(f32.length + 1);
  unaligned.set(f32, 1);
  assert.deepEqual(countNonFinite({ dtype: "F32", shape: [5], data: unaligned.subarray(1) }), { count: 2, first: 1 });
  const f64 = new Uint8Array(new Float64Array([Number.POSITIVE_INFINITY, 1e308, -0]).buffer);
  assert.deepEqual(countNonFinite({ dtype: "F64", shape: [3], data: f64 }), { count: 1, first: 0 });
  // F16: 0x7c00 = +Inf, 0x7e00 = NaN, 0x7bff = 65504 (largest finite); little-endian bytes.
  assert.deepEqual(countNonFinite(raw("F16", [0xff, 0x7b, 0x00, 0x7c, 0x00, 0x7e])), { count: 2, first: 1 });
  // BF16: 0x7f80 = +Inf, 0x7f7f = largest finite.
  assert.deepEqual(countNonFinite(raw("BF16", [0x7f, 0x7f, 0x80, 0x7f])), { count: 1, first: 1 });
  assert.deepEqual(countNonFinite({ dtype: "I32", shape: [1], data: Uint8Array.from([0xff, 0xff, 0xff, 0x7f]) }), {
    count: 0,
    first: -1,
  });
  assert.throws(
    () => assertFiniteTensors(new Map([["w\u001b[31m", { dtype: "F32", shape: [5], data: f32 }]]), "m.safetensors"),
    /^BadExpertError: m\.safetensors: tensor "w\\u001b\[31m" holds 2 non-finite value\(s\) \(NaN or ±Infinity; first at element 1\)/,
  );
});

test("readSafetensors checks the header size and file size before reading; names directories and missing files", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-io-"));
  try {
    const t = tensor([1, 2, 3]);
    await saveTensors(join(dir, "ok.safetensors"), new Map([["w", t]]));
    t.dispose();
    await assert.rejects(
      readSafetensors(join(dir, "ok.safetensors"), { maxHeaderBytes: 16 }),
      /ok\.safetensors: header size \d+ exceeds the 16-byte limit/,
    );
    await assert.rejects(
      readSafetensors(join(dir, "ok.safetensors"), { maxFileBytes: 20 }),
      /ok\.safetensors: file is \d+ bytes, more than the 20 expected/,
    );
    // A 90 MB header declared in a small file: refused from the 8-byte prefix, nothing allocated.
    const prefix = new Uint8Array(16);
    new DataView(prefix.buffer).setBigUint64(0, 90_000_000n, true);
    await writeFile(join(dir, "big.safetensors"), prefix);
    await assert.rejects(
      readSafetensors(join(dir, "big.safetensors")),
      /header size 90000000 does not fit in the file: 8 \+ 90000000 > 16 bytes/,
    );
    await mkdir(join(dir, "model.safetensors"));
    await assert.rejects(
      readSafetensors(join(dir, "model.safetensors")),
      /model\.safetensors: is a directory, not a safetensors file/,
    );
    const nan = tensor([1, Number.NaN]);
    await saveTensors(join(dir, "nan.safetensors"), new Map([["layer.weight", nan]]));
    nan.dispose();
    await assert.rejects(
      loadTensors(join(dir, "nan.safetensors"), { requireFinite: true }),
      /nan\.safetensors: tensor "layer\.weight" holds 1 non-finite value/,
    );
    const { tensors } = await loadTensors(join(dir, "nan.safetensors"));
    assert.equal(tensors.size, 1, "without requireFinite the values load as they are");
    for (const x of tensors.values()) x.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});

test("names with newlines, ANSI escapes and direction overrides are escaped in errors", () => {
  const evil = "x\n[scan] all clean\u001b[2J\u202e\u009b";
  assert.equal(printable(evil), '"x\\n[scan] all clean\\u001b[2J\\u202e\\u009b"');
  assert.match(printable("a".repeat(1000)), /^"a{200}"… \(1000 characters\)$/);
  assert.throws(
    () => serializeSafetensors({ [evil]: { dtype: "F32", shape: [2], data: new Uint8Array(4) } }),
    (e: Error) => {
      assert.match(
        e.message,
        /^safetensors: tensor "x\\n\[scan\] all clean\\u001b\[2J\\u202e\\u009b": shape \[2\] with dtype F32 needs 8 bytes but data has 4$/,
      );
      return true;
    },
  );
});

test("parse errors and state-dict errors print file-provided names escaped", () => {
  const evil = "w\n\u001b[31mforged";
  const header = JSON.stringify({ [evil]: { dtype: "F32", shape: [2], data_offsets: [0, 4] } });
  const bytes = new Uint8Array(8 + header.length + 4);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(new TextEncoder().encode(header), 8);
  assert.throws(
    () => parseSafetensors(bytes, "f.safetensors"),
    (e: Error) => {
      assert.match(
        e.message,
        /tensor "w\\n\\u001b\[31mforged": shape \[2\] with dtype F32 needs 8 bytes but data_offsets span 4/,
      );
      // eslint-disable-next-line no-control-regex -- asserting that no raw control character is left
      assert.doesNotMatch(e.message, /[\n\u001b]/);
      return true;
    },
  );
  const err = new StateDictError("CompactCnn", [], [evil, ...Array.from({ length: 510 }, (_, i) => `k${i}`)], []);
  // eslint-disable-next-line no-control-regex -- asserting that no raw control character is left
  assert.doesNotMatch(err.message.split("\n").slice(1).join(" "), /\u001b/);
  assert.match(err.message, /Unexpected key\(s\) in state_dict: "w\\n\\u001b\[31mforged", "k0",.*"k498" and 11 more\./);
});
