// The real service on 127.0.0.1 (ephemeral port) with a small real bundle: concurrent requests
// in every form get exactly their own image's library score, the firewall, metrics, the audit
// log, the detector description, auth, and the library entry from an in-memory detector.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/engine/index.js";
import { loadBundle } from "../../src/defense/bundle.js";
import { Detector, type Detection } from "../../src/api/detector.js";
import { createModel } from "../../src/models/registry.js";
import { createServer, type BadExpertServer, type DetectionRecord } from "../../src/serve/index.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { b64, get, metric, postJson, postMultipart, postRaw } from "./http.js";

// Batch composition changes libtorch's kernels and so the last float bits; a mix-up changes far more.
const TOL = 1e-5;
const N = 64;

let dir: string;
let work: string;
let pngs: Uint8Array<ArrayBuffer>[];
let want: Detection[];
let server: BadExpertServer;
let url: string;
let tensorsAtStart: number;

before(async () => {
  tensorsAtStart = memory().numTensors;
  dir = await fixtureBundle();
  work = await mkdtemp(join(tmpdir(), "bx-serve-"));
  pngs = await fixturePngs(N);
  const lib = await Detector.load(dir);
  want = await lib.score(pngs);
  await lib.dispose();
  // libtorch: the library's own engine, so responses match its scores to 1e-5 (onnxruntime's are checked to 1e-4 in onnx-engine.test.ts).
  server = await createServer(dir, {
    port: 0,
    logLevel: "silent",
    engine: "libtorch",
    maxBatch: 16,
    maxWaitMs: 5,
    timeoutMs: 60_000,
    auditLog: join(work, "audit", "flagged.jsonl"),
    auditImages: join(work, "audit", "images"),
  });
  url = await server.listen();
});

after(async () => {
  assert.equal(await server.close(), 0, "workers freed every tensor");
  await rm(work, { recursive: true, force: true });
  assert.equal(memory().numTensors, tensorsAtStart);
});

function assertSame(got: DetectionRecord, w: Detection, what: string): void {
  assert.equal(got.pred, w.pred, `${what}: pred`);
  assert.equal(got.predClass, w.predClass, `${what}: predClass, the library's field`);
  assert.equal(got.class, w.predClass, `${what}: class`);
  assert.equal(got.detector, "badexpert", `${what}: detector`);
  assert.ok(Math.abs((got.score ?? Number.NaN) - w.score) <= TOL, `${what}: score ${got.score} vs library ${w.score}`);
  assert.ok(Math.abs((got.expertConfidence ?? Number.NaN) - (w.expertConfidence ?? Number.NaN)) <= TOL, `${what}: b`);
  assert.ok(
    Math.abs((got.auxiliaryConfidence ?? Number.NaN) - (w.auxiliaryConfidence ?? Number.NaN)) <= TOL,
    `${what}: a`,
  );
  assert.equal(got.threshold, w.threshold);
  if (Math.abs(w.score - w.threshold) > TOL) assert.equal(got.flagged, w.flagged, `${what}: flagged`);
}

/** Index of the only library record within tolerance of `got`: proves no answer belongs to another image. */
function ownerOf(got: DetectionRecord): number {
  const hits = want.flatMap((w, i) =>
    w.pred === got.pred &&
    Math.abs((got.score ?? Number.NaN) - w.score) <= TOL &&
    Math.abs((got.expertConfidence ?? Number.NaN) - (w.expertConfidence ?? Number.NaN)) <= TOL &&
    Math.abs((got.auxiliaryConfidence ?? Number.NaN) - (w.auxiliaryConfidence ?? Number.NaN)) <= TOL
      ? [i]
      : [],
  );
  assert.equal(hits.length, 1, `answer matches ${hits.length} library records`);
  return hits[0] as number;
}

let flaggedSent = 0;
let detectOk = 0;

test("64 concurrent requests with different images each get their own image's library score", async () => {
  assert.ok(want.some((w) => w.flagged) && want.some((w) => !w.flagged), "the fixture has flagged and clean inputs");
  const replies = await Promise.all(
    pngs.map((p, i) => {
      const at = `${url}/v1/detect`;
      // Every form of single-image request, interleaved.
      if (i % 3 === 0) return postRaw<DetectionRecord>(at, p);
      if (i % 3 === 1) return postJson<DetectionRecord>(at, { image: b64(p) });
      return postRaw<DetectionRecord>(at, p, "application/octet-stream");
    }),
  );
  for (const [i, r] of replies.entries()) {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertSame(r.body, want[i] as Detection, `image ${i}`);
    assert.equal(ownerOf(r.body), i);
    assert.equal(r.headers.get("x-request-id"), (r.body as DetectionRecord & { requestId: string }).requestId);
  }
  flaggedSent += replies.filter((r) => r.body.flagged).length;
  detectOk += N;
  const text = await (await fetch(`${url}/metrics`)).text();
  const batches = metric(text, "badexpert_batch_size_count") ?? 0;
  assert.ok(
    batches >= 4 && batches < N,
    `64 concurrent inputs went in ${batches} batches (dynamic batching, at most 16 each)`,
  );
});

test("batch forms (JSON array, {images}, multipart) answer in request order", async () => {
  const idx = [5, 17, 33, 2, 60];
  const imgs = idx.map((i) => pngs[i] as Uint8Array<ArrayBuffer>);
  const forms = await Promise.all([
    postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, imgs.map(b64)),
    postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, { images: imgs.map(b64) }),
    postMultipart<{ results: DetectionRecord[] }>(`${url}/v1/detect`, imgs),
  ]);
  for (const r of forms) {
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.results.length, idx.length);
    for (const [k, i] of idx.entries())
      assertSame(r.body.results[k] as DetectionRecord, want[i] as Detection, `batch item ${k}`);
    flaggedSent += r.body.results.filter((x) => x.flagged).length;
  }
  detectOk += forms.length;
});

test("predict: clean inputs get M's prediction, flagged ones 422 with score and threshold (--on-flag reject)", async () => {
  const clean = want.findIndex((w) => !w.flagged && Math.abs(w.score - w.threshold) > TOL);
  const bad = want.findIndex((w) => w.flagged && Math.abs(w.score - w.threshold) > TOL);
  const ok = await postRaw(`${url}/v1/predict`, pngs[clean] as Uint8Array<ArrayBuffer>);
  assert.equal(ok.status, 200);
  assert.deepEqual(
    { pred: ok.body.pred, predClass: ok.body.predClass, class: ok.body.class, flagged: ok.body.flagged },
    { pred: want[clean]?.pred, predClass: want[clean]?.predClass, class: want[clean]?.predClass, flagged: false },
  );
  assert.equal(ok.body.score, undefined, "a clean prediction does not leak detector internals");
  const no = await postRaw<{
    error: string;
    code: string;
    reason: string;
    message: string;
    flagged: { index: number; score: number; threshold: number }[];
  }>(`${url}/v1/predict`, pngs[bad] as Uint8Array<ArrayBuffer>);
  assert.equal(no.status, 422);
  assert.deepEqual([no.body.error, no.body.code, no.body.reason], ["flagged", "E_FLAGGED", "flagged"]);
  assert.match(no.body.message, /flagged as a suspected backdoor input \(score -?[\d.]+ > threshold -?[\d.]+\)/);
  assert.ok(Math.abs((no.body.flagged[0]?.score ?? 0) - (want[bad]?.score ?? 1)) <= TOL);
  const batch = await postJson<{ flagged: { index: number }[] }>(`${url}/v1/predict`, {
    images: [b64(pngs[clean] as Uint8Array), b64(pngs[bad] as Uint8Array)],
  });
  assert.equal(batch.status, 422);
  assert.deepEqual(
    batch.body.flagged.map((f) => f.index),
    [1],
  );
  flaggedSent += 2;
});

test("metrics move: requests by route and status, inputs scored, flagged by class, queue drained", async () => {
  const text = await (await fetch(`${url}/metrics`)).text();
  assert.equal(metric(text, 'badexpert_http_requests_total{route="/v1/detect",method="POST",status="200"}'), detectOk);
  assert.equal(metric(text, 'badexpert_http_requests_total{route="/v1/predict",method="POST",status="422"}'), 2);
  assert.equal(metric(text, "badexpert_inputs_scored_total"), N + 15 + 4);
  let flagged = 0;
  for (const line of text.split("\n"))
    if (line.startsWith("badexpert_inputs_flagged_total{")) flagged += Number(line.split(" ")[1]);
  assert.equal(flagged, flaggedSent);
  assert.equal(metric(text, "badexpert_queue_depth"), 0);
  assert.equal(metric(text, "badexpert_score_count"), N + 15 + 4);
  assert.equal(metric(text, "badexpert_window_inputs_scored"), N + 15 + 4);
  assert.ok(Math.abs((metric(text, "badexpert_window_flagged_rate") ?? -1) - flaggedSent / (N + 19)) < 1e-9);
  assert.ok((metric(text, 'badexpert_http_request_duration_seconds_count{route="/v1/detect"}') ?? 0) >= detectOk);
  // The workers hold the three models' weights and nothing else between batches.
  const m = createModel("compact-cnn", server.info.spec);
  const perModel = m.stateDict().size;
  m.dispose();
  assert.equal(metric(text, "badexpert_worker_live_tensors"), 3 * perModel);
  assert.ok((metric(text, "badexpert_process_resident_memory_bytes") ?? 0) > 0);
});

test("the audit log has one line per flagged input, with request id, client, pred, score and the saved image", async () => {
  const lines = (await readFile(join(work, "audit", "flagged.jsonl"), "utf8")).trim().split("\n");
  assert.equal(lines.length, flaggedSent);
  const entries = lines.map(
    (l) =>
      JSON.parse(l) as {
        time: string;
        requestId: string;
        client: string;
        pred: number;
        score: number;
        threshold: number;
        image: string;
        route: string;
      },
  );
  for (const e of entries) {
    assert.ok(!Number.isNaN(Date.parse(e.time)));
    assert.match(e.requestId, /^[\w.-]+$/);
    assert.match(e.client, /127\.0\.0\.1/);
    assert.ok(e.score > e.threshold);
    assert.ok(["/v1/detect", "/v1/predict"].includes(e.route));
  }
  const saved = await readdir(join(work, "audit", "images"));
  assert.equal(saved.length, flaggedSent);
  const first = entries[0] as (typeof entries)[number];
  const bytes = new Uint8Array(await readFile(first.image));
  assert.ok(
    pngs.some((p) => Buffer.compare(Buffer.from(p), Buffer.from(bytes)) === 0),
    "the saved image is the uploaded one",
  );
});

test("detector description, probes and the OpenAPI document", async () => {
  const d = await get<{
    detector: string;
    kind: string;
    params: unknown;
    checkpoint: unknown;
    architecture: string;
    classNames: string[];
    rule: string;
    threshold: number;
    targetFpr: number;
    hashes: Record<string, string>;
    serving: Record<string, unknown>;
  }>(`${url}/v1/detector`);
  assert.equal(d.status, 200);
  assert.deepEqual(
    [d.body.detector, d.body.kind, d.body.params, d.body.checkpoint],
    ["badexpert", "badexpert", null, null],
  );
  assert.equal(d.body.architecture, "compact-cnn");
  assert.equal(d.body.classNames.length, 10);
  assert.equal(d.body.rule, "triangle");
  assert.equal(d.body.threshold, want[0]?.threshold);
  assert.equal(d.body.targetFpr, 0.05);
  assert.match(d.body.hashes["model.safetensors"] ?? "", /^[0-9a-f]{64}$/);
  assert.deepEqual((await get(`${url}/healthz`)).body, { status: "ok" });
  assert.deepEqual((await get(`${url}/readyz`)).body, { status: "ready", workers: server.options.workers });
  type Schema = { required: string[]; properties: Record<string, { type: unknown; required?: string[] }> };
  const api = await get<{
    openapi: string;
    paths: Record<string, unknown>;
    components: { schemas: { Detection: Schema; DetectorSummary: Schema } };
  }>(`${url}/openapi.json`);
  assert.equal(api.body.openapi, "3.1.0");
  assert.ok("/v1/detect" in api.body.paths && "/v1/predict" in api.body.paths);
  // The record's schema says which fields a baseline detector leaves null.
  const schemas = api.body.components.schemas;
  assert.ok(schemas.Detection.required.includes("detector"));
  assert.deepEqual(schemas.Detection.properties.expertConfidence?.type, ["number", "null"]);
  assert.deepEqual(schemas.Detection.properties.auxiliaryConfidence?.type, ["number", "null"]);
  // /v1/detector returns exactly the documented fields, its serving object too.
  assert.deepEqual(Object.keys(d.body).sort(), [...schemas.DetectorSummary.required].sort());
  assert.deepEqual(
    Object.keys(d.body.serving).sort(),
    [...(schemas.DetectorSummary.properties.serving?.required ?? [])].sort(),
  );
  const missing = await get(`${url}/v2/nothing`);
  assert.equal(missing.status, 404);
  assert.match(String(missing.body.message), /no route GET \/v2\/nothing/);
});

test("library entry: a server from an in-memory detector, bearer token, --on-flag annotate", async () => {
  const before = memory().numTensors;
  // Made in this process (here: read back from the bundle): its weights are copied to the workers.
  const lib = await Detector.fromDetector(await loadBundle(dir, { onWarning: () => undefined }));
  const token = "a-test-token-0123456789";
  const s = await createServer(lib, {
    port: 0,
    logLevel: "silent",
    engine: "libtorch",
    onFlag: "annotate",
    token,
    workers: 2,
    threadsPerWorker: 1,
  });
  await lib.dispose();
  try {
    const u = await s.listen();
    const auth = { authorization: `Bearer ${token}` };
    const bad = want.findIndex((w) => w.flagged && Math.abs(w.score - w.threshold) > TOL);
    const denied = await postRaw(`${u}/v1/predict`, pngs[bad] as Uint8Array<ArrayBuffer>);
    assert.equal(denied.status, 401);
    assert.match(String(denied.body.message), /missing Authorization header/);
    assert.equal(
      (
        await postRaw(`${u}/v1/predict`, pngs[bad] as Uint8Array<ArrayBuffer>, "image/png", {
          authorization: "Bearer wrong-token-wrong-token",
        })
      ).body.message,
      "wrong bearer token",
    );
    assert.equal((await get(`${u}/metrics`)).status, 401);
    assert.equal((await get(`${u}/healthz`)).status, 200, "probes need no token");
    const r = await postRaw(`${u}/v1/predict`, pngs[bad] as Uint8Array<ArrayBuffer>, "image/png", auth);
    assert.equal(r.status, 200);
    assert.equal(r.body.flagged, true);
    assert.ok(
      Math.abs(Number(r.body.score) - (want[bad]?.score ?? 0)) <= TOL,
      "in-memory weights score like the bundle",
    );
    const d = await get<{ source: unknown; serving: { workers: number; threadsPerWorker: number } }>(
      `${u}/v1/detector`,
      auth,
    );
    assert.deepEqual(d.body.source, { inMemory: true });
    assert.deepEqual([d.body.serving.workers, d.body.serving.threadsPerWorker], [2, 1]);
    await assert.rejects(s.reload(), /created from an in-memory detector/);
  } finally {
    assert.equal(await s.close(), 0);
  }
  // A Detector opened from a bundle: the workers open that bundle themselves.
  const opened = await Detector.load(dir, { onWarning: () => undefined });
  const t = await createServer(opened, { port: 0, logLevel: "silent", engine: "libtorch", workers: 1 });
  await opened.dispose();
  try {
    const u = await t.listen();
    assert.deepEqual((await get<{ source: unknown }>(`${u}/v1/detector`)).body.source, { bundle: dir });
    const r = await postRaw(`${u}/v1/detect`, pngs[bad0()] as Uint8Array<ArrayBuffer>);
    assert.ok(
      Math.abs(Number(r.body.score) - (want[bad0()]?.score ?? 0)) <= TOL,
      "the reopened bundle scores like the library",
    );
  } finally {
    assert.equal(await t.close(), 0);
  }
  assert.equal(memory().numTensors, before);
});

/** A flagged image away from the threshold. */
function bad0(): number {
  return want.findIndex((w) => w.flagged && Math.abs(w.score - w.threshold) > TOL);
}

test("a bad --verify-key or bundle refuses to start, naming the problem", async () => {
  await assert.rejects(
    createServer(join(work, "nope"), { port: 0, logLevel: "silent" }),
    /nope\/model\.safetensors \(model\): cannot read \(no such file\)/,
  );
  await writeFile(join(work, "key.pub"), "not a key");
  await assert.rejects(
    createServer(dir, { port: 0, logLevel: "silent", bundleLoad: { verifyKey: join(work, "key.pub") } }),
    /verification key .*key\.pub: not a PEM public key/,
  );
  await assert.rejects(createServer(dir, { maxBatch: 0 }), /maxBatch must be an integer >= 1, got 0/);
});
