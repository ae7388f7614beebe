// The Open Inference Protocol (KServe v2) on the real service: every /v2 route over real HTTP and
// every GRPCInferenceService RPC over real gRPC (a @grpc/grpc-js client built from the protocol's
// definition), with a bearer token set. Scores over /v2 (JSON, binary, BYTES images, gRPC) equal
// /v1/detect's and `scan`'s bit for bit (each request is one batch of the same images, so the
// forward passes are the same); the filtered model refuses flagged and unscorable inputs in
// their rows; bad shapes, datatypes and data are 400 / INVALID_ARGUMENT with a message.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, get as httpGet } from "node:http";
import { status, type ServiceError } from "@grpc/grpc-js";
import { memory } from "../../src/engine/index.js";
import { Detector, type Detection } from "../../src/api/detector.js";
import { createServer, type BadExpertServer, type DetectionRecord } from "../../src/serve/index.js";
import { V2_ROUTES } from "../../src/serve/v2/schemas.js";
import { runCli } from "../cli/fixtures.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { b64, metric, postJson } from "./http.js";
import {
  bytesTensor,
  fp32Bytes,
  GrpcClient,
  grpcValues,
  inferBinary,
  inferJson,
  toNchw,
  type GrpcInferResponse,
  type V2Answer,
} from "./v2-client.js";

const TOKEN = "v2-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const N = 64;
const H = 28;
const W = 28;
const C = 1;

let dir: string;
let work: string;
let pngs: Uint8Array<ArrayBuffer>[];
/** The same images decoded to uint8 NHWC at the bundle's size, as the service decodes them. */
let pixels: Uint8Array;
let lib: Detection[];
let server: BadExpertServer;
let url: string;
let grpc: GrpcClient;
let tensorsAtStart: number;

before(async () => {
  tensorsAtStart = memory().numTensors;
  dir = await fixtureBundle();
  work = await mkdtemp(join(tmpdir(), "bx-v2-"));
  pngs = await fixturePngs(N);
  const det = await Detector.load(dir);
  const decoded: Uint8Array[] = [];
  for await (const part of det.scoreEach(pngs, { keepPixels: true })) {
    for (const r of part) {
      if (!r.ok) throw new Error(r.message);
      decoded.push(r.pixels as Uint8Array);
    }
  }
  pixels = new Uint8Array(Buffer.concat(decoded));
  lib = await det.score(pngs);
  await det.dispose();
  await writeFile(join(work, "token"), TOKEN);
  server = await createServer(dir, {
    port: 0,
    grpcPort: 0,
    logLevel: "silent",
    engine: "libtorch",
    workers: 1,
    maxBatch: N,
    maxWaitMs: 5,
    timeoutMs: 60_000,
    token: TOKEN,
    auditLog: join(work, "audit.jsonl"),
  });
  url = await server.listen();
  grpc = new GrpcClient(`127.0.0.1:${server.grpcPort}`, TOKEN);
});

after(async () => {
  grpc.close();
  assert.equal(await server.close(), 0, "workers freed every tensor");
  await rm(work, { recursive: true, force: true });
  assert.equal(memory().numTensors, tensorsAtStart);
});

const infer = (model: string): string => `${url}/v2/models/${model}/infer`;
const imagesOf = (idx: readonly number[]): Uint8Array => {
  const per = H * W * C;
  const out = new Uint8Array(idx.length * per);
  idx.forEach((i, k) => out.set(pixels.subarray(i * per, (i + 1) * per), k * per));
  return out;
};
const grpcError = async (p: Promise<unknown>): Promise<ServiceError> => {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
};

test("health, server and model metadata over HTTP and gRPC agree with the bundle", async () => {
  for (const path of [
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/badexpert/ready",
    "/v2/models/badexpert-filtered/versions/1/ready",
  ]) {
    const r = await fetch(`${url}${path}`); // probes need no token
    assert.equal(r.status, 200, path);
    assert.equal(await r.text(), "", `${path}: the protocol's health answers have an empty body`);
  }
  const server = (await (await fetch(`${url}/v2`, { headers: AUTH })).json()) as {
    name: string;
    version: string;
    extensions: string[];
  };
  assert.equal(server.name, "badexpert");
  assert.match(server.version, /^\d+\.\d+\.\d+/);
  assert.deepEqual(server.extensions, ["binary_tensor_data"]);
  const meta = (await (await fetch(`${url}/v2/models/badexpert`, { headers: AUTH })).json()) as {
    name: string;
    versions: string[];
    inputs: unknown[];
    outputs: { name: string; datatype: string }[];
  };
  assert.equal(meta.name, "badexpert");
  assert.deepEqual(meta.versions, ["1"]);
  assert.deepEqual(meta.inputs, [{ name: "image", datatype: "UINT8", shape: [-1, H, W, C] }]);
  assert.deepEqual(
    meta.outputs.map((o) => `${o.name}:${o.datatype}`),
    ["score:FP64", "threshold:FP64", "flagged:BOOL", "pred:INT64", "class:BYTES", "error:BYTES"],
  );
  const filtered = (await (
    await fetch(`${url}/v2/models/badexpert-filtered/versions/1`, { headers: AUTH })
  ).json()) as { outputs: { name: string }[] };
  assert.deepEqual(
    filtered.outputs.map((o) => o.name),
    ["pred", "class", "refused", "error"],
  );
  for (const [path, message] of [
    ["/v2/models/nope", /no model named "nope".*"badexpert" and "badexpert-filtered"/],
    ["/v2/models/badexpert/versions/2", /no version "2"; it serves version 1/],
    ["/v2/models/nope/ready", /no model named "nope"/],
  ] as const) {
    const r = await fetch(`${url}${path}`, { headers: AUTH });
    assert.equal(r.status, 404, path);
    assert.match(((await r.json()) as { error: string }).error, message);
  }

  assert.deepEqual(await grpc.call("ServerLive", {}, { token: null }), { live: true });
  assert.deepEqual(await grpc.call("ServerReady", {}, { token: null }), { ready: true });
  assert.deepEqual(await grpc.call("ModelReady", { name: "badexpert-filtered", version: "" }, { token: null }), {
    ready: true,
  });
  assert.deepEqual(await grpc.call("ServerMetadata", {}), server);
  const gm = await grpc.call<{ name: string; platform: string; inputs: unknown[]; outputs: unknown[] }>(
    "ModelMetadata",
    { name: "badexpert", version: "1" },
  );
  assert.deepEqual({ ...gm }, { ...meta, platform: gm.platform });
  assert.equal((await grpcError(grpc.call("ModelMetadata", { name: "nope", version: "" }))).code, status.NOT_FOUND);
  assert.equal(
    (await grpcError(grpc.call("ModelReady", { name: "badexpert", version: "7" }, { token: null }))).code,
    status.NOT_FOUND,
  );
});

test("scores over /v2 JSON, binary, BYTES images and gRPC equal /v1/detect's and scan's bit for bit", async () => {
  const idx = [0, 1, 2, 3, 4, 5, 6, 7];
  const imgs = idx.map((i) => pngs[i] as Uint8Array<ArrayBuffer>);
  // scan decodes these files and scores them as one batch of 8: every request below is one batch of the same 8.
  const files = await Promise.all(
    imgs.map(async (p, k) => {
      const f = join(work, `img${k}.png`);
      await writeFile(f, p);
      return f;
    }),
  );
  const scan = await runCli(["scan", "--bundle", dir, ...files]);
  assert.equal(scan.code, 0, scan.err);
  const scanScores = scan.lines
    .map((l) => JSON.parse(l) as { input?: string; score?: number })
    .filter((l) => l.input !== undefined)
    .map((l) => l.score);
  assert.equal(scanScores.length, 8);

  const v1 = await postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, { images: imgs.map(b64) }, AUTH);
  assert.equal(v1.status, 200, JSON.stringify(v1.body));
  const v1Scores = v1.body.results.map((r) => r.score);
  assert.deepEqual(v1Scores, scanScores, "/v1/detect and scan");

  const u8 = imagesOf(idx);
  const shape = [8, H, W, C];
  // One at a time: concurrent requests would share batches, and a batch's composition changes the last bits.
  const answers: [string, () => Promise<V2Answer>][] = [
    [
      "JSON UINT8",
      () =>
        inferJson(
          infer("badexpert"),
          { inputs: [{ name: "image", datatype: "UINT8", shape, data: Array.from(u8) }] },
          AUTH,
        ),
    ],
    [
      "JSON UINT8 nested",
      () =>
        inferJson(
          infer("badexpert"),
          {
            inputs: [
              {
                name: "image",
                datatype: "UINT8",
                shape,
                data: idx.map((_, k) =>
                  Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => [u8[(k * H + y) * W + x]])),
                ),
              },
            ],
          },
          AUTH,
        ),
    ],
    [
      "JSON FP32",
      () =>
        inferJson(
          infer("badexpert"),
          {
            inputs: [
              { name: "image", datatype: "FP32", shape: [8, C, H, W], data: Array.from(toNchw(u8, 8, H, W, C)) },
            ],
          },
          AUTH,
        ),
    ],
    [
      "JSON BYTES base64",
      () =>
        inferJson(
          infer("badexpert"),
          {
            inputs: [
              {
                name: "image",
                datatype: "BYTES",
                shape: [8],
                parameters: { content_type: "base64" },
                data: imgs.map(b64),
              },
            ],
          },
          AUTH,
        ),
    ],
    [
      "binary UINT8",
      () =>
        inferBinary(
          infer("badexpert"),
          {
            inputs: [{ name: "image", datatype: "UINT8", shape, parameters: { binary_data_size: u8.length } }],
            parameters: { binary_data_output: true },
          },
          [u8],
          AUTH,
        ),
    ],
    [
      "binary FP32",
      () =>
        inferBinary(
          infer("badexpert"),
          {
            inputs: [
              { name: "image", datatype: "FP32", shape: [8, C, H, W], parameters: { binary_data_size: u8.length * 4 } },
            ],
            outputs: [{ name: "score", parameters: { binary_data: true } }],
          },
          [fp32Bytes(toNchw(u8, 8, H, W, C))],
          AUTH,
        ),
    ],
    [
      "binary BYTES",
      () =>
        inferBinary(
          infer("badexpert"),
          {
            inputs: [
              {
                name: "image",
                datatype: "BYTES",
                shape: [8, 1],
                parameters: { binary_data_size: bytesTensor(imgs).length },
              },
            ],
            parameters: { binary_data_output: true },
          },
          [bytesTensor(imgs)],
          AUTH,
        ),
    ],
  ];
  for (const [what, send] of answers) {
    const a = await send();
    assert.equal(a.status, 200, `${what}: ${JSON.stringify(a.body).slice(0, 300)}`);
    assert.deepEqual(a.values.score, v1Scores, `${what}: scores`);
    if (a.values.pred)
      assert.deepEqual(
        a.values.pred,
        v1.body.results.map((r) => r.pred),
        `${what}: pred`,
      );
    if (a.values.flagged)
      assert.deepEqual(
        a.values.flagged,
        v1.body.results.map((r) => r.flagged),
        `${what}: flagged`,
      );
  }
  const viaGrpc: [string, Record<string, unknown>][] = [
    [
      "gRPC raw UINT8",
      {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "UINT8", shape }],
        raw_input_contents: [Buffer.from(u8)],
      },
    ],
    [
      "gRPC uint_contents",
      {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "UINT8", shape, contents: { uint_contents: Array.from(u8) } }],
      },
    ],
    [
      "gRPC fp32_contents",
      {
        model_name: "badexpert",
        inputs: [
          {
            name: "image",
            datatype: "FP32",
            shape: [8, C, H, W],
            contents: { fp32_contents: Array.from(toNchw(u8, 8, H, W, C)) },
          },
        ],
      },
    ],
    [
      "gRPC bytes_contents",
      {
        model_name: "badexpert",
        inputs: [
          {
            name: "image",
            datatype: "BYTES",
            shape: [8],
            contents: { bytes_contents: imgs.map((p) => Buffer.from(p)) },
          },
        ],
      },
    ],
  ];
  for (const [what, req] of viaGrpc) {
    const r = await grpc.call<GrpcInferResponse>("ModelInfer", { id: "req-7", ...req });
    assert.equal(r.model_name, "badexpert");
    assert.equal(r.id, "req-7");
    assert.deepEqual(grpcValues(r).score, v1Scores, `${what}: scores`);
  }
});

test("a batch of 64: binary and gRPC answer 64 rows, equal to /v1/detect's batch of 64", async () => {
  const all = Array.from({ length: N }, (_, i) => i);
  const v1 = await postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, { images: pngs.map(b64) }, AUTH);
  assert.equal(v1.status, 200);
  const u8 = imagesOf(all);
  const bin = await inferBinary(
    infer("badexpert"),
    {
      id: "b64",
      inputs: [{ name: "image", datatype: "UINT8", shape: [N, H, W, C], parameters: { binary_data_size: u8.length } }],
      parameters: { binary_data_output: true },
    },
    [u8],
    AUTH,
  );
  assert.equal(bin.status, 200);
  assert.equal(bin.body.id, "b64");
  assert.equal(bin.headers.get("content-type"), "application/octet-stream");
  const g = grpcValues(
    await grpc.call<GrpcInferResponse>("ModelInfer", {
      model_name: "badexpert",
      inputs: [{ name: "image", datatype: "UINT8", shape: [N, H, W, C] }],
      raw_input_contents: [Buffer.from(u8)],
    }),
  );
  for (const values of [bin.values, g]) {
    assert.deepEqual(
      values.score,
      v1.body.results.map((r) => r.score),
    );
    assert.deepEqual(
      values.pred,
      v1.body.results.map((r) => r.pred),
    );
    assert.deepEqual(
      values.class,
      v1.body.results.map((r) => r.class),
    );
    assert.deepEqual(
      values.threshold,
      v1.body.results.map((r) => r.threshold),
    );
  }
  // Within the library's tolerance of its own batches of 64 (the same images, the same engine).
  for (const [i, s] of (bin.values.score as number[]).entries())
    assert.ok(Math.abs(s - (lib[i] as Detection).score) <= 1e-5, `image ${i}`);
});

test("the filtered model refuses flagged inputs in their rows and answers the others with M's prediction", async () => {
  const flagged = lib.findIndex((d) => d.flagged && d.score - d.threshold > 1e-4);
  const clean = lib.findIndex((d) => !d.flagged && d.threshold - d.score > 1e-4);
  assert.ok(flagged >= 0 && clean >= 0, "the fixture has a clearly flagged and a clearly clean image");
  const u8 = imagesOf([clean, flagged]);
  const auditBefore = server.auditLines;
  const a = await inferBinary(
    infer("badexpert-filtered"),
    {
      inputs: [{ name: "image", datatype: "UINT8", shape: [2, H, W, C], parameters: { binary_data_size: u8.length } }],
    },
    [u8],
    AUTH,
  );
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.model_name, "badexpert-filtered");
  assert.deepEqual(a.values.pred, [(lib[clean] as Detection).pred, -1], "no prediction for the flagged input");
  assert.deepEqual(a.values.class, [(lib[clean] as Detection).predClass, ""]);
  assert.deepEqual(a.values.refused, [false, true]);
  assert.equal((a.values.error as string[])[0], "");
  assert.match(
    (a.values.error as string[])[1] as string,
    /flagged as a suspected backdoor input \(score .* > threshold /,
  );
  assert.equal(server.auditLines, auditBefore + 1, "the flagged input is audited");
  const line = JSON.parse((await readFile(join(work, "audit.jsonl"), "utf8")).trim().split("\n").at(-1) as string) as {
    route: string;
    index: number;
  };
  assert.deepEqual(
    { route: line.route, index: line.index },
    { route: "/v2/models/badexpert-filtered/infer", index: 1 },
  );

  const g = grpcValues(
    await grpc.call<GrpcInferResponse>("ModelInfer", {
      model_name: "badexpert-filtered",
      inputs: [{ name: "image", datatype: "UINT8", shape: [2, H, W, C] }],
      raw_input_contents: [Buffer.from(u8)],
    }),
  );
  assert.deepEqual(g.pred, a.values.pred);
  assert.deepEqual(g.refused, [false, true]);
});

test("an FP32 image holding NaN is unscorable: flagged with a reason by the detector, refused by the filtered model; its neighbours are scored", async () => {
  const u8 = imagesOf([10, 11, 12]);
  const f = toNchw(u8, 3, H, W, C);
  f[H * W + 5] = Number.NaN; // image 1
  const refusedBefore = metric(await metricsText(), 'badexpert_refused_total{reason="unscorable_input"}') ?? 0;
  const req = {
    inputs: [{ name: "image", datatype: "FP32", shape: [3, C, H, W], parameters: { binary_data_size: f.byteLength } }],
  };
  const d = await inferBinary(infer("badexpert"), req, [fp32Bytes(f)], AUTH);
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assert.equal(d.values.score?.[1], null, "JSON has no NaN: the score is null");
  assert.deepEqual(d.values.flagged?.[1], true);
  assert.equal(d.values.pred?.[1], -1);
  assert.match(
    String(d.values.error?.[1]),
    /image 1 holds NaN at \[0, 0, 5\]: a tensor that is not finite cannot be scored/,
  );
  for (const k of [0, 2]) {
    assert.equal(typeof d.values.score?.[k], "number");
    assert.equal(d.values.error?.[k], "");
  }
  const filtered = await inferBinary(
    infer("badexpert-filtered"),
    { ...req, parameters: { binary_data_output: true } },
    [fp32Bytes(f)],
    AUTH,
  );
  assert.deepEqual(filtered.values.refused?.[1], true);
  assert.equal(filtered.values.pred?.[1], -1);
  const g = grpcValues(
    await grpc.call<GrpcInferResponse>("ModelInfer", {
      model_name: "badexpert",
      inputs: [{ name: "image", datatype: "FP32", shape: [3, C, H, W], contents: { fp32_contents: Array.from(f) } }],
    }),
  );
  assert.ok(Number.isNaN(g.score?.[1]), "gRPC's raw FP64 carries the NaN");
  assert.deepEqual(g.flagged?.[1], true);
  const refusedAfter = metric(await metricsText(), 'badexpert_refused_total{reason="unscorable_input"}') ?? 0;
  assert.equal(refusedAfter - refusedBefore, 3, "each unscorable input is counted");
});

test("wrong shapes, datatypes and data are 400 (HTTP) and INVALID_ARGUMENT (gRPC) with a message naming the problem", async () => {
  const u8 = imagesOf([0]);
  const cases: [string, unknown, RegExp][] = [
    [
      "wrong height",
      {
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, 27, W, C], data: Array.from(u8.subarray(0, 27 * W)) }],
      },
      /shape \[1, 27, 28, 1\] does not fit the bundle: UINT8 \(NHWC\) takes \[-1, 28, 28, 1\]/,
    ],
    [
      "NCHW given as UINT8",
      { inputs: [{ name: "image", datatype: "UINT8", shape: [1, C, H, W], data: Array.from(u8) }] },
      /does not fit the bundle/,
    ],
    [
      "unsupported datatype",
      { inputs: [{ name: "image", datatype: "FP16", shape: [1, C, H, W], data: [] }] },
      /datatype "FP16" is not accepted; send UINT8 \[-1, 28, 28, 1\]/,
    ],
    [
      "too few elements",
      { inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, C], data: [1, 2, 3] }] },
      /"data" holds 3 elements, its shape 784/,
    ],
    [
      "out of range UINT8",
      {
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, C], data: [300, ...Array.from(u8.subarray(1))] }],
      },
      /element 0 is 300; UINT8 elements are integers in 0..255/,
    ],
    [
      "FP32 in 0..255",
      { inputs: [{ name: "image", datatype: "FP32", shape: [1, C, H, W], data: Array.from(u8, (x) => x + 1) }] },
      /FP32 pixels are pixel \/ 255 in \[0, 1\]/,
    ],
    [
      "wrong input name",
      { inputs: [{ name: "input0", datatype: "UINT8", shape: [1, H, W, C], data: Array.from(u8) }] },
      /the model takes one input, "image"/,
    ],
    [
      "unknown output",
      {
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, C], data: Array.from(u8) }],
        outputs: [{ name: "logits" }],
      },
      /no output "logits"; its outputs: score, threshold/,
    ],
    [
      "BYTES JSON without base64",
      { inputs: [{ name: "image", datatype: "BYTES", shape: [1], data: ["abc"] }] },
      /must be base64 strings with parameters.content_type "base64"/,
    ],
    ["no inputs (route schema)", { outputs: [] }, /body must have required property 'inputs'/],
  ];
  for (const [what, body, message] of cases) {
    const r = await inferJson(infer("badexpert"), body, AUTH);
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.match(r.body.error ?? "", message, what);
    assert.deepEqual(Object.keys(r.body), ["error"], `${what}: the protocol's error form`);
  }
  const bin = await inferBinary(
    infer("badexpert"),
    { inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, C], parameters: { binary_data_size: 100 } }] },
    [u8],
    AUTH,
  );
  assert.equal(bin.status, 400);
  assert.match(bin.body.error ?? "", /684 bytes of binary data that no input's binary_data_size claims/);
  const tooMany = await inferBinary(
    infer("badexpert"),
    { inputs: [{ name: "image", datatype: "UINT8", shape: [257, H, W, C], parameters: { binary_data_size: 0 } }] },
    [],
    AUTH,
  );
  assert.equal(tooMany.status, 413);
  assert.match(tooMany.body.error ?? "", /257 images; at most 256 per request/);
  const noHeader = await fetch(infer("badexpert"), {
    method: "POST",
    headers: { "content-type": "application/octet-stream", ...AUTH },
    body: Buffer.concat([Buffer.from("{}"), Buffer.from(u8)]).reverse(),
  });
  assert.equal(noHeader.status, 400);
  assert.match(((await noHeader.json()) as { error: string }).error, /Inference-Header-Content-Length/);

  for (const [what, req, message] of [
    [
      "gRPC wrong shape",
      {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, 3] }],
        raw_input_contents: [Buffer.from(u8)],
      },
      /does not fit the bundle/,
    ],
    [
      "gRPC raw size",
      {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "UINT8", shape: [2, H, W, C] }],
        raw_input_contents: [Buffer.from(u8)],
      },
      /784 bytes of UINT8 data, its shape needs 1568/,
    ],
    [
      "gRPC datatype",
      {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "INT64", shape: [1, H, W, C] }],
        raw_input_contents: [Buffer.from(u8)],
      },
      /datatype "INT64" is not accepted/,
    ],
  ] as const) {
    const e = await grpcError(grpc.call("ModelInfer", req));
    assert.equal(e.code, status.INVALID_ARGUMENT, what);
    assert.match(e.details, message, what);
  }
});

test("auth: /v2 metadata and inference need the token over HTTP and gRPC; the probes do not", async () => {
  const body = { inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, C], data: Array.from(imagesOf([0])) }] };
  for (const headers of [{}, { authorization: "Bearer wrong-token-000000000" }] as Record<string, string>[]) {
    const r = await inferJson(infer("badexpert"), body, headers);
    assert.equal(r.status, 401);
    assert.match(r.body.error ?? "", /bearer token|Authorization/);
    assert.equal((await fetch(`${url}/v2/models/badexpert`, { headers })).status, 401);
    assert.equal((await fetch(`${url}/v2`, { headers })).status, 401);
  }
  assert.equal((await fetch(`${url}/v2/health/ready`)).status, 200);
  const e = await grpcError(
    grpc.call(
      "ModelInfer",
      {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, H, W, C] }],
        raw_input_contents: [Buffer.from(imagesOf([0]))],
      },
      { token: null },
    ),
  );
  assert.equal(e.code, status.UNAUTHENTICATED);
  assert.equal(
    (await grpcError(grpc.call("ModelMetadata", { name: "badexpert" }, { token: "wrong-token-000000000" }))).code,
    status.UNAUTHENTICATED,
  );
});

async function metricsText(): Promise<string> {
  return (await fetch(`${url}/metrics`, { headers: AUTH })).text();
}

test("metrics count every protocol's scoring requests, and gRPC calls by method and code", async () => {
  const text = await metricsText();
  const count = (labels: string): number => metric(text, `badexpert_inference_requests_total{${labels}}`) ?? 0;
  assert.ok(count('protocol="v1",model="badexpert",status="200"') >= 2);
  assert.ok(count('protocol="v2-http",model="badexpert",status="200"') >= 8);
  assert.ok(count('protocol="v2-http",model="badexpert",status="400"') >= 10);
  assert.ok(count('protocol="v2-http",model="badexpert",status="401"') >= 2);
  assert.ok(count('protocol="v2-grpc",model="badexpert",status="200"') >= 6);
  assert.ok(count('protocol="v2-grpc",model="badexpert-filtered",status="200"') >= 1);
  assert.ok(count('protocol="v2-grpc",model="badexpert",status="400"') >= 3);
  assert.ok((metric(text, 'badexpert_grpc_requests_total{method="ModelInfer",code="OK"}') ?? 0) >= 7);
  assert.equal(metric(text, 'badexpert_grpc_requests_total{method="ServerLive",code="OK"}'), 1);
  assert.ok((metric(text, 'badexpert_grpc_request_duration_seconds_count{method="ModelInfer"}') ?? 0) >= 10);
  assert.ok(
    (metric(text, 'badexpert_http_requests_total{route="/v2/models/:name/infer",method="POST",status="200"}') ?? 0) >=
      8,
  );
});

test("/openapi.json describes every /v2 route with the schemas fastify validates", async () => {
  const doc = (await (await fetch(`${url}/openapi.json`)).json()) as {
    paths: Record<
      string,
      Record<
        string,
        {
          requestBody?: { content: Record<string, { schema: unknown }> };
          security: unknown[];
          parameters?: { name: string; in: string }[];
        }
      >
    >;
  };
  for (const r of V2_ROUTES) {
    const path = r.url.replace(/:(\w+)/g, "{$1}");
    const op = doc.paths[path]?.[r.method.toLowerCase()];
    assert.ok(op, `${r.method} ${path} is in the document`);
    assert.deepEqual(op.security, r.schema.public ? [] : [{ bearer: [] }], `${path}: security`);
    if (r.schema.body)
      assert.deepEqual(
        op.requestBody?.content["application/json"]?.schema,
        r.schema.body,
        `${path}: the body schema is the route's`,
      );
    for (const p of (path.match(/\{(\w+)\}/g) ?? []).map((m) => m.slice(1, -1)))
      assert.ok(
        op.parameters?.some((x) => x.name === p && x.in === "path"),
        `${path}: parameter ${p}`,
      );
  }
  assert.equal(
    Object.keys(doc.paths).filter((p) => p.startsWith("/v2")).length,
    new Set(V2_ROUTES.map((r) => r.url)).size,
    "no /v2 path the routes do not have",
  );
  // Each route's registration is the table's: fastify answers every /v2 URL of the document.
  for (const r of V2_ROUTES) assert.ok(server.app.hasRoute({ method: r.method, url: r.url }), `${r.url} registered`);
});

test("readiness: not ready while draining (HTTP and gRPC); a gRPC call in flight is answered by the drain", async () => {
  // One keep-alive socket: the drain keeps it open for a while, so a probe on it sees the drain.
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal(await probe(agent), 200);
  const u8 = imagesOf(Array.from({ length: N }, (_, i) => i));
  const pending = grpc.call<GrpcInferResponse>("ModelInfer", {
    model_name: "badexpert",
    inputs: [{ name: "image", datatype: "UINT8", shape: [N, H, W, C] }],
    raw_input_contents: [Buffer.from(u8)],
  });
  // Wait until the call is being scored (or already was), so that the drain has it to answer.
  for (let i = 0; i < 400; i++) {
    const t = await metricsText();
    if (
      (metric(t, "badexpert_batches_running") ?? 0) + (metric(t, "badexpert_queue_depth") ?? 0) > 0 ||
      (metric(t, 'badexpert_grpc_requests_total{method="ModelInfer",code="OK"}') ?? 0) >= 12
    )
      break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const closing = server.close({ drainTimeoutMs: 20_000 });
  assert.equal(await probe(agent), 400, "/v2/health/ready: not ready while draining");
  const ready = await grpc.call("ServerReady", {}, { token: null }).then(
    (r) => r,
    (e: ServiceError) => ({ code: e.code }),
  );
  assert.notDeepEqual(ready, { ready: true }, "gRPC: not ready (or not taking calls) while draining");
  const answered = grpcValues(await pending);
  assert.equal(answered.score?.length, N, "the call in flight was answered, not dropped");
  assert.equal(await closing, 0);
  assert.equal(server.shutdown?.drained, true);
  agent.destroy();
});

function probe(agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`${url}/v2/health/ready`, { agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
  });
}

test("a gRPC call still unscored when the grace period ends is answered UNAVAILABLE, never with a score", async () => {
  // One input per batch, so 64 inputs take many forward passes: the call is still queued at the deadline.
  const s = await createServer(dir, {
    port: 0,
    grpcPort: 0,
    logLevel: "silent",
    engine: "libtorch",
    workers: 1,
    maxBatch: 1,
    maxWaitMs: 0,
    timeoutMs: 60_000,
  });
  await s.listen();
  const c = new GrpcClient(`127.0.0.1:${s.grpcPort}`);
  try {
    const u8 = imagesOf(Array.from({ length: N }, (_, i) => i));
    const pending = grpcError(
      c.call("ModelInfer", {
        model_name: "badexpert",
        inputs: [{ name: "image", datatype: "UINT8", shape: [N, H, W, C] }],
        raw_input_contents: [Buffer.from(u8)],
      }),
    );
    // Until the call is queued: then end the drain at once. The metrics are read on connections
    // that close after each answer, so only gRPC has anything left to drain.
    const port = (s.app.server.address() as { port: number }).port;
    for (let i = 0; i < 400; i++) {
      const t = await getClosing(`http://127.0.0.1:${port}/metrics`);
      if ((metric(t, "badexpert_queue_depth") ?? 0) > 0) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(await s.close({ drainTimeoutMs: 0 }), 0);
    const e = await pending;
    assert.equal(e.code, status.UNAVAILABLE);
    assert.match(e.details, /grace period .* ended before this input was scored; it was not checked/);
    assert.equal(s.shutdown?.drained, false);
  } finally {
    c.close();
    await s.close();
  }
});

/** GET on a connection of its own that closes after the answer. */
function getClosing(at: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet(at, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => resolve(text));
    });
    req.on("error", reject);
  });
}
