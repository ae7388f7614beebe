// Reading state_dicts written by real PyTorch (safetensors and torch.save zip), without running
// anything: logits match PyTorch's, every storage dtype decodes, malicious pickles are refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { dispose, memory, noGrad, tidy } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { parseStateDictFile, readStateDictFile } from "../../src/io/state-dict-file.js";
import { unpickle } from "../../src/io/pickle.js";
import { MALICIOUS_MARKER, assertClose, expected, fixture, get, gunzipped } from "../helpers/pytorch-fixtures.js";

async function logitsMatch(
  model: string,
  file: { tensors: Map<string, import("../../src/engine/index.js").Tensor> },
  input: string,
  logits: string,
  opts: { imageSize: number; inChannels: number },
): Promise<number> {
  const exp = await expected();
  const m = createModel(model, { numClasses: 10, ...opts });
  try {
    m.loadStateDict(file.tensors, { strict: true });
    m.eval();
    return noGrad(() => tidy(() => assertClose(m.forward(get(exp, input)), get(exp, logits), 1e-4, model)));
  } finally {
    m.dispose();
    dispose(exp);
    dispose(file.tensors);
  }
}

test("compact-cnn from safetensors and from a wrapped torch.save zip gives PyTorch's logits", async () => {
  const before = memory().numTensors;
  const st = await readStateDictFile(fixture("compact-cnn.safetensors"));
  assert.equal(st.format, "safetensors");
  await logitsMatch("compact-cnn", st, "input.28x28x1", "logits.compact-cnn", { imageSize: 28, inChannels: 1 });
  const pt = await readStateDictFile(fixture("compact-cnn-wrapped.pt"));
  assert.equal(pt.format, "torch-zip");
  assert.deepEqual(pt.unwrapped, ["state_dict"]);
  assert.deepEqual(pt.strippedPrefixes, ["module."]);
  assert.ok(pt.tensors.has("features.1.num_batches_tracked"));
  assert.equal(pt.tensors.get("features.1.num_batches_tracked")?.dtype, "int64");
  await logitsMatch("compact-cnn", pt, "input.28x28x1", "logits.compact-cnn", { imageSize: 28, inChannels: 1 });
  assert.equal(memory().numTensors, before);
});

test("ResNet-18 (CIFAR variant) from {net: {module.*}} torch.save and from safetensors gives PyTorch's logits", async () => {
  const before = memory().numTensors;
  const pt = parseStateDictFile(await gunzipped("resnet18-wrapped.pt.gz"), "resnet18-wrapped.pt");
  assert.deepEqual(pt.unwrapped, ["net"]);
  assert.equal(pt.tensors.size, 122);
  await logitsMatch("resnet18", pt, "input.32x32x3", "logits.resnet18", { imageSize: 32, inChannels: 3 });
  const st = parseStateDictFile(await gunzipped("resnet18.safetensors.gz"), "resnet18.safetensors");
  await logitsMatch("resnet18", st, "input.32x32x3", "logits.resnet18", { imageSize: 32, inChannels: 3 });
  assert.equal(memory().numTensors, before);
});

test("every storage dtype, shared-storage views, parameters and {model: {model.*}} (pickle protocol 4)", async () => {
  const before = memory().numTensors;
  const f = await readStateDictFile(fixture("small-dtypes.pt"));
  const exp = await expected();
  try {
    assert.deepEqual(f.unwrapped, ["model"]);
    assert.deepEqual(f.strippedPrefixes, ["model."]);
    const t = (k: string) => {
      const x = f.tensors.get(k);
      assert.ok(x, `missing ${k}`);
      return x;
    };
    for (const k of ["f32", "f64", "i64", "i32", "u8", "base", "view_t", "view_slice", "param", "scalar"]) {
      const want = get(exp, `small.${k}`);
      assert.equal(t(k).dtype, want.dtype, k);
      assert.deepEqual(t(k).shape, want.shape, k);
      assert.deepEqual(t(k).toArray(), want.toArray(), k);
    }
    assert.deepEqual(
      t("view_t").toArray(),
      [0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 21, 4, 10, 16, 22, 5, 11, 17, 23],
    );
    assert.deepEqual(t("view_slice").toArray(), [8, 9, 10, 14, 15, 16]);
    // Half precision is widened to float32, as the safetensors reader does.
    assert.equal(t("f16").dtype, "float32");
    assert.deepEqual(t("f16").toArray(), [0.5, -2, 65504]);
    assert.equal(t("bf16").dtype, "float32");
    const bf = t("bf16").toArray() as number[];
    assert.deepEqual(bf.slice(0, 2), [1.5, -3]);
    assert.ok(Math.abs((bf[2] as number) / 1e30 - 1) < 0.01, `bf16 1e30 read as ${bf[2]}`);
    assert.equal(t("i16").dtype, "int16");
    assert.deepEqual(t("i16").toArray(), [-300, 300]);
    assert.deepEqual(t("i8").toArray(), [-128, 127]);
    assert.equal(t("bool").dtype, "bool");
    assert.deepEqual(t("bool").toArray(), [1, 0, 1]);
    assert.deepEqual(t("scalar").shape, []);
  } finally {
    dispose(f.tensors);
    dispose(exp);
  }
  assert.equal(memory().numTensors, before);
});

test("a malicious pickle is refused by name and its payload never runs", async () => {
  await rm(MALICIOUS_MARKER, { force: true });
  await assert.rejects(readStateDictFile(fixture("malicious.pt")), (e: Error) => {
    assert.match(e.message, /refused to load global '(posix|os|nt)\.system'/);
    assert.match(e.message, /malicious\.pt/);
    assert.match(e.message, /nothing was executed/);
    return true;
  });
  await assert.rejects(readStateDictFile(fixture("malicious.pkl")), /refused to load global '(posix|os|nt)\.system'/);
  assert.equal(existsSync(MALICIOUS_MARKER), false);
});

test("legacy, TorchScript, bare-pickle and garbage files get one clear error each", async () => {
  // The legacy format starts by pickling its magic number (protocol 2, LONG1 of 10 bytes).
  const magic = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
  const legacy = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, ...magic, 0x2e, 0x80, 0x02]);
  assert.throws(
    () => parseStateDictFile(legacy, "old.pt"),
    /old\.pt: this is the legacy \(pre-1\.6, non-zip\) torch\.save format.*re-save it with torch\.save/,
  );
  const script = await readFile(fixture("tiny-mixer-scripted.pt"));
  assert.throws(() => parseStateDictFile(script, "m.pt"), /m\.pt: this is a TorchScript file .*--torchscript/);
  const bare = Uint8Array.from([0x80, 0x02, 0x4b, 0x07, 0x2e]);
  assert.throws(() => parseStateDictFile(bare, "x.pkl"), /a bare pickle is not a weights file \(got a int\)/);
  assert.throws(
    () => parseStateDictFile(Uint8Array.from([1, 2, 3, 4, 5]), "junk.bin"),
    /junk\.bin: not a safetensors file or a torch\.save zip file \(the first bytes are 01 02 03 04\)/,
  );
});

test("the unpickler refuses unknown globals, calls of named-only globals and unknown opcodes", () => {
  const enc = (s: string) => Array.from(new TextEncoder().encode(s));
  const allowNone = { resolveGlobal: () => undefined };
  // GLOBAL 'builtins\neval\n'
  assert.throws(
    () => unpickle(Uint8Array.from([0x80, 0x02, 0x63, ...enc("builtins\neval\n"), 0x2e]), allowNone),
    /refused to load global 'builtins\.eval'/,
  );
  // A referable-only global called through REDUCE.
  const refOnly = { resolveGlobal: () => ({}) };
  assert.throws(
    () => unpickle(Uint8Array.from([0x80, 0x02, 0x63, ...enc("torch\nFloatStorage\n"), 0x29, 0x52, 0x2e]), refOnly),
    /refused to call 'torch\.FloatStorage'/,
  );
  assert.throws(() => unpickle(Uint8Array.from([0x80, 0x02, 0xff]), allowNone), /unsupported pickle opcode 0xff/);
  assert.throws(() => unpickle(Uint8Array.from([0x80, 0x02, 0x58, 0xff, 0xff, 0, 0]), allowNone), /truncated pickle/);
});
