// Bad requests get a 4xx JSON body naming the problem, and the server keeps serving; a full
// queue and a missed deadline are refused (503 / 504), never answered as clean.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { memory } from "../../src/engine/index.js";
import { createServer, type BadExpertServer } from "../../src/serve/index.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { b64, get, metric, postJson, postMultipart, postRaw, type Reply } from "./http.js";

let server: BadExpertServer;
let url: string;
let png: Uint8Array<ArrayBuffer>;
let tensorsAtStart: number;

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A valid PNG header claiming width × height grey pixels, with a tiny IDAT: a decompression-bomb shape. */
function claimedPng(width: number, height: number): Uint8Array<ArrayBuffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const file = Buffer.concat([sig, chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.alloc(width + 1))), chunk("IEND", new Uint8Array(0))]);
  return new Uint8Array(file);
}

before(async () => {
  tensorsAtStart = memory().numTensors;
  const dir = await fixtureBundle();
  [png] = (await fixturePngs(1)) as [Uint8Array<ArrayBuffer>];
  server = await createServer(dir, { port: 0, logLevel: "silent", maxBodyBytes: 64 * 1024, maxImagesPerRequest: 8, maxPixels: 4_000_000 });
  url = await server.listen();
});

after(async () => {
  assert.equal(await server.close(), 0);
  assert.equal(memory().numTensors, tensorsAtStart);
});

async function stillServing(): Promise<void> {
  const r = await postRaw(`${url}/v1/detect`, png);
  assert.equal(r.status, 200, "the server keeps serving after a bad request");
  assert.equal(typeof r.body.score, "number");
}

function refused(r: Reply, status: number, code: string, message: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error, code);
  assert.match(String(r.body.message), message);
  assert.equal(typeof r.body.requestId, "string");
}

test("not an image, a truncated PNG, an empty body", async () => {
  refused(await postRaw(`${url}/v1/detect`, "hello, I am text", "image/png"), 400, "not_an_image", /^body: not a supported image/);
  refused(await postRaw(`${url}/v1/detect`, png.slice(0, Math.floor(png.length / 2)), "image/png"), 400, "undecodable_image", /^body: .*(cannot decode|premature|truncated|end)/i);
  refused(await postRaw(`${url}/v1/detect`, new Uint8Array(0), "image/png"), 400, "empty_image", /body: empty \(0 bytes\)/);
  await stillServing();
});

test("wrong Content-Type, bad JSON, missing field, bad base64", async () => {
  refused(await postRaw(`${url}/v1/detect`, "x", "text/plain"), 415, "unsupported_media_type", /Content-Type "text\/plain" is not accepted; send image\/\*/);
  refused(await postRaw(`${url}/v1/detect`, "{nope", "application/json"), 400, "bad_json", /not valid JSON/);
  refused(await postJson(`${url}/v1/detect`, { picture: b64(png) }), 400, "missing_field", /no "image" or "images" field \(found: "picture"\)/);
  refused(await postJson(`${url}/v1/detect`, { image: "%%%not base64%%%" }), 400, "bad_base64", /^image: not valid base64/);
  refused(await postJson(`${url}/v1/detect`, { images: "abc" }), 400, "bad_field", /"images" must be an array/);
  refused(await postJson(`${url}/v1/detect`, [b64(png), 7]), 400, "bad_field", /images\[1\]: expected a base64 string, got number/);
  refused(await postJson(`${url}/v1/detect`, []), 400, "no_images", /no images/);
  await stillServing();
});

test("oversize body, too many images, a 20000x20000 PNG (refused from its header)", async () => {
  const big = new Uint8Array(100 * 1024);
  refused(await postRaw(`${url}/v1/detect`, big, "image/png"), 413, "body_too_large", /larger than 65536 bytes \(--max-body-bytes\)/);
  refused(await postJson(`${url}/v1/detect`, Array.from({ length: 9 }, () => b64(png))), 413, "too_many_images", /holds 9 images; at most 8 per request/);
  const bomb = claimedPng(20000, 20000);
  assert.ok(bomb.length < 64 * 1024, `the bomb is small (${bomb.length} bytes)`);
  const t0 = Date.now();
  refused(await postRaw(`${url}/v1/detect`, bomb, "image/png"), 413, "too_many_pixels", /more than 4000000 pixels|20000x20000 = 400000000 pixels exceeds the limit of 4000000/);
  assert.ok(Date.now() - t0 < 2000, "refused without decoding");
  refused(await postMultipart(`${url}/v1/detect`, [png, bomb]), 413, "too_many_pixels", /image:img1\.png/);
  await stillServing();
});

test("multipart without files, and the metrics count the 4xx answers", async () => {
  const form = new FormData();
  form.append("note", "no files here");
  const r = await fetch(`${url}/v1/detect`, { method: "POST", body: form });
  assert.equal(r.status, 400);
  assert.match(((await r.json()) as { message: string }).message, /multipart body has no file parts/);
  const text = await (await fetch(`${url}/metrics`)).text();
  assert.equal(metric(text, 'badexpert_http_requests_total{route="/v1/detect",method="POST",status="413"}'), 4);
  assert.equal(metric(text, 'badexpert_http_requests_total{route="/v1/detect",method="POST",status="415"}'), 1);
  assert.equal(metric(text, "badexpert_inputs_scored_total"), 3, "only the good requests were scored");
  await stillServing();
});

test("a full queue gets 503 + Retry-After and a missed deadline 504: never answered clean", async () => {
  const dir = await fixtureBundle();
  // Batches wait 10 s for companions, so queued inputs stay queued for the whole test.
  const s = await createServer(dir, { port: 0, logLevel: "silent", maxBatch: 64, maxWaitMs: 10_000, maxQueue: 4, maxImagesPerRequest: 4, timeoutMs: 600 });
  try {
    const u = await s.listen();
    const waiting = postJson(`${u}/v1/detect`, { images: [b64(png), b64(png), b64(png)] });
    await new Promise((r) => setTimeout(r, 150));
    const full = await postJson(`${u}/v1/detect`, { images: [b64(png), b64(png)] });
    refused(full, 503, "queue_full", /3 inputs waiting, this request adds 2, the limit is 4 \(--max-queue\)/);
    assert.equal(full.headers.get("retry-after"), "1");
    const late = await waiting;
    refused(late, 504, "timeout", /not scored within 600 ms .*must not be treated as clean/);
    assert.equal(late.body.results, undefined);
    const text = await (await get(`${u}/readyz`)).body;
    assert.equal(text.status, "ready");
    const m = await (await fetch(`${u}/metrics`)).text();
    assert.equal(metric(m, 'badexpert_refused_total{reason="queue_full"}'), 1);
    assert.equal(metric(m, 'badexpert_refused_total{reason="timeout"}'), 1);
    assert.equal(metric(m, "badexpert_inputs_scored_total"), 0);
  } finally {
    assert.equal(await s.close(), 0);
  }
});
