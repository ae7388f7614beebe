// The Open Inference Protocol's tensor codec without a server: the binary body's framing, BYTES
// elements, nested JSON data, and the FP32 -> uint8 conversion that must give back exactly the
// pixels a client divided by 255 (so FP32 requests score the same images as UINT8 ones).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ServeError } from "../../src/serve/errors.js";
import { encodeAnswer, inferRequestOf, parseInferBody, type InferBody } from "../../src/serve/v2/http-codec.js";
import { modelImages } from "../../src/serve/v2/model-input.js";
import { resolveModel } from "../../src/serve/v2/models.js";
import { resolveOptions } from "../../src/serve/options.js";
import { flattenJson, rawBytes, splitBytesElements } from "../../src/serve/v2/tensor.js";
import { bytesTensor, decodeRaw } from "./v2-client.js";

const m = { height: 2, width: 3, channels: 1 as const };

function refused(fn: () => unknown, status: number, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ServeError && e.statusCode === status && message.test(e.message));
}

test("FP32 pixel / 255 converts back to exactly the uint8 pixels, for every level", () => {
  const levels = Uint8Array.from({ length: 256 }, (_, i) => i);
  const f = Float32Array.from(levels, (x) => x / 255);
  const raw = new Uint8Array(f.buffer);
  const r = modelImages(
    [{ name: "image", datatype: "FP32", shape: [1, 1, 16, 16], parameters: {}, data: { kind: "raw", bytes: raw } }],
    { height: 16, width: 16, channels: 1 },
    8,
  );
  assert.equal(r.kind, "pixels");
  const item = r.kind === "pixels" ? r.items[0] : undefined;
  assert.ok(item && "pixels" in item);
  assert.deepEqual(Array.from(item.pixels), Array.from(levels));
});

test("FP32 NCHW becomes NHWC; a non-finite image is unscorable alone, an out-of-range value refuses the request", () => {
  const rgb = { height: 1, width: 2, channels: 3 as const };
  // Image 0: channel planes R = [1, 2], G = [3, 4], B = [5, 6] (x / 255); image 1 holds an infinity.
  const data = [1, 2, 3, 4, 5, 6].map((x) => x / 255).concat([0, 0, Number.POSITIVE_INFINITY, 0, 0, 0]);
  const r = modelImages(
    [{ name: "image", datatype: "FP32", shape: [2, 3, 1, 2], parameters: {}, data: { kind: "list", values: data } }],
    rgb,
    8,
  );
  assert.equal(r.kind, "pixels");
  if (r.kind !== "pixels") return;
  assert.deepEqual("pixels" in r.items[0]! ? Array.from(r.items[0].pixels) : null, [1, 3, 5, 2, 4, 6]);
  const bad = r.items[1]!;
  assert.ok("unscorable" in bad);
  assert.match(bad.unscorable, /image 1 holds Infinity at \[1, 0, 0\]/);
  assert.equal(bad.raw.length, 6 * 4, "the raw elements of that image are kept for the audit log");
  refused(
    () =>
      modelImages(
        [
          {
            name: "image",
            datatype: "FP32",
            shape: [1, 3, 1, 2],
            parameters: {},
            data: { kind: "list", values: [0, 0, 1.5, 0, 0, 0] },
          },
        ],
        rgb,
        8,
      ),
    400,
    /holds 1.5 at \[1, 0, 0\]; FP32 pixels are pixel \/ 255/,
  );
});

test("JSON data: flat or nested by dimension, never deeper than the shape, with the shape's count", () => {
  assert.deepEqual(
    flattenJson(
      [
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
      ],
      3,
      6,
      "x",
    ),
    [1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(flattenJson([1, 2, 3, 4, 5, 6], 3, 6, "x"), [1, 2, 3, 4, 5, 6]);
  refused(() => flattenJson([[[[1]]]], 3, 1, "x"), 400, /nested deeper than the shape's 3 dimensions/);
  refused(() => flattenJson([1, 2], 1, 3, "x"), 400, /holds 2 elements, its shape 3/);
  refused(() => flattenJson(Array(10).fill(0), 1, 3, "x"), 400, /more than the 3 elements/);
  // A deeply nested body is refused without recursion.
  let deep: unknown = [0];
  for (let i = 0; i < 100_000; i++) deep = [deep];
  refused(() => flattenJson(deep, 4, 1, "x"), 400, /nested deeper/);
});

test("BYTES elements: 4-byte little-endian lengths, exactly the shape's count, nothing truncated", () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array([]);
  const raw = bytesTensor([a, b]);
  assert.deepEqual(
    splitBytesElements(raw, 2, "x").map((e) => Array.from(e)),
    [[1, 2, 3], []],
  );
  refused(() => splitBytesElements(raw, 3, "x"), 400, /holds 2 elements, its shape 3/);
  refused(() => splitBytesElements(raw.subarray(0, 5), 2, "x"), 400, /declares 3 bytes, 1 are left/);
  refused(() => splitBytesElements(raw.subarray(0, 9), 2, "x"), 400, /truncated 4-byte length/);
  // And the other way: outputs in the raw layout read back as they were.
  for (const t of [
    { name: "s", datatype: "FP64" as const, shape: [3], values: [1.5, Number.NaN, -2] },
    { name: "p", datatype: "INT64" as const, shape: [2], values: [7, -1] },
    { name: "f", datatype: "BOOL" as const, shape: [2], values: [true, false] },
    { name: "e", datatype: "BYTES" as const, shape: [2], values: ["", "refusé"] },
  ]) {
    assert.deepEqual(decodeRaw(t.datatype, rawBytes(t)), t.values, t.datatype);
  }
});

test("binary bodies: Inference-Header-Content-Length splits JSON from tensor bytes, and every byte must be claimed", () => {
  const header = Buffer.from(
    JSON.stringify({
      inputs: [{ name: "image", datatype: "UINT8", shape: [1, 2, 3, 1], parameters: { binary_data_size: 6 } }],
    }),
  );
  const body = Buffer.concat([header, Buffer.from([9, 8, 7, 6, 5, 4])]);
  const req = inferRequestOf(parseInferBody(body, String(header.length)) as InferBody);
  const input = req.inputs[0];
  assert.equal(input?.data.kind, "raw");
  assert.deepEqual(input?.data.kind === "raw" ? Array.from(input.data.bytes) : null, [9, 8, 7, 6, 5, 4]);
  refused(
    () => inferRequestOf(parseInferBody(Buffer.concat([body, Buffer.from([0])]), String(header.length)) as InferBody),
    400,
    /1 bytes of binary data that no input's binary_data_size claims/,
  );
  refused(
    () => parseInferBody(body, String(body.length + 1)),
    400,
    /Inference-Header-Content-Length is \d+, the body has \d+ bytes/,
  );
  refused(() => parseInferBody(body, "12abc"), 400, /must be a byte count/);
  refused(
    () => inferRequestOf(parseInferBody(header, undefined) as InferBody),
    400,
    /binary_data_size but the request has no binary data/,
  );
  refused(() => parseInferBody(Buffer.from('{"__proto__": {"x": 1}}'), undefined), 400, /prototype-poisoning/);
  // An answer with one binary output: JSON first, then its bytes, the JSON's length given.
  const out = encodeAnswer({
    model_name: "m",
    model_version: "1",
    outputs: [
      { tensor: { name: "pred", datatype: "INT64", shape: [1], values: [3] }, binary: true },
      { tensor: { name: "flagged", datatype: "BOOL", shape: [1], values: [false] }, binary: false },
    ],
  });
  assert.ok("binary" in out);
  if (!("binary" in out)) return;
  const json = JSON.parse(out.binary.subarray(0, out.headerLength).toString()) as {
    outputs: { parameters?: { binary_data_size: number }; data?: unknown[] }[];
  };
  assert.deepEqual(json.outputs[0]?.parameters, { binary_data_size: 8 });
  assert.deepEqual(json.outputs[1]?.data, [false]);
  assert.deepEqual(decodeRaw("INT64", out.binary.subarray(out.headerLength)), [3]);
});

test("UINT8 tensors: the bundle's shape only, values 0..255, and the image count limit", () => {
  const ok = modelImages(
    [
      {
        name: "image",
        datatype: "UINT8",
        shape: [2, 2, 3, 1],
        parameters: {},
        data: { kind: "json", values: Array.from({ length: 12 }, (_, i) => i) },
      },
    ],
    m,
    8,
  );
  assert.equal(ok.kind === "pixels" ? ok.items.length : 0, 2);
  refused(
    () =>
      modelImages(
        [{ name: "image", datatype: "UINT8", shape: [1, 3, 2, 1], parameters: {}, data: { kind: "json", values: [] } }],
        m,
        8,
      ),
    400,
    /shape \[1, 3, 2, 1\] does not fit the bundle: UINT8 \(NHWC\) takes \[-1, 2, 3, 1\]/,
  );
  refused(
    () =>
      modelImages(
        [
          {
            name: "image",
            datatype: "UINT8",
            shape: [9, 2, 3, 1],
            parameters: {},
            data: { kind: "raw", bytes: new Uint8Array(54) },
          },
        ],
        m,
        8,
      ),
    413,
    /9 images; at most 8 per request/,
  );
  refused(
    () =>
      modelImages(
        [
          {
            name: "image",
            datatype: "UINT8",
            shape: [1, 2, 3, 1],
            parameters: {},
            data: { kind: "json", values: [0, 0, 0, 0, 0, 2.5] },
          },
        ],
        m,
        8,
      ),
    400,
    /element 5 is 2.5/,
  );
  refused(
    () =>
      modelImages(
        [
          {
            name: "image",
            datatype: "UINT8",
            shape: [0, 2, 3, 1],
            parameters: {},
            data: { kind: "raw", bytes: new Uint8Array(0) },
          },
        ],
        m,
        8,
      ),
    400,
    /batch dimension is 0/,
  );
});

test("model names: --model-name names the detector and NAME-filtered the firewall; bad names and a shared gRPC port are refused", () => {
  assert.deepEqual(resolveModel("fmnist", "fmnist-filtered", "1"), { name: "fmnist-filtered", role: "filtered" });
  assert.deepEqual(resolveModel("fmnist", "fmnist", undefined), { name: "fmnist", role: "detector" });
  refused(
    () => resolveModel("fmnist", "badexpert", undefined),
    404,
    /no model named "badexpert"; this server serves "fmnist" and "fmnist-filtered"/,
  );
  assert.throws(() => resolveOptions({ modelName: "../etc" }), /modelName must be 1-64 letters, digits/);
  assert.throws(() => resolveOptions({ port: 9000, grpcPort: 9000 }), /grpcPort must differ from port/);
  assert.throws(() => resolveOptions({ grpcPort: 70000 }), /grpcPort must be at most 65535/);
  assert.equal(resolveOptions({}).grpcPort, null, "no gRPC service unless asked");
});
