// Decoded pixels have a budget per request: 413 from the headers, before any pixel is decoded
// (pixel-budget.test.ts: the in-flight budget across requests). A request within budget is
// still decoded and scored.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import { memory } from "../../src/engine/index.js";
import { createServer, type BadExpertServer } from "../../src/serve/index.js";
import { resolveOptions } from "../../src/serve/options.js";
import { fixtureBundle } from "./fixture.js";
import { runCli } from "../cli/fixtures.js";
import { pngChunk as chunk } from "../helpers/png-chunk.js";

let server: BadExpertServer;
let url: string;
let tensorsAtStart: number;

/** A real, complete grey PNG of width × height (a flat image: tens of KB on the wire for 25 megapixels). */
function flatPng(width: number, height: number, value = 128): Uint8Array<ArrayBuffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  const row = Buffer.alloc(width + 1, value);
  row[0] = 0;
  const rows = Buffer.alloc(height * (width + 1));
  for (let r = 0; r < height; r++) row.copy(rows, r * (width + 1));
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", ihdr),
      chunk("IDAT", deflateSync(rows)),
      chunk("IEND", new Uint8Array(0)),
    ]),
  );
}

async function postForm(files: Uint8Array[]): Promise<{ status: number; body: Record<string, unknown> }> {
  const f = new FormData();
  for (const [i, bytes] of files.entries())
    f.append("image", new Blob([new Uint8Array(bytes)], { type: "image/png" }), `big${i}.png`);
  const r = await fetch(`${url}/v1/detect`, { method: "POST", body: f });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

before(async () => {
  tensorsAtStart = memory().numTensors;
  // The default limits (25 megapixels per image, 100 per request and in flight), one worker.
  server = await createServer(await fixtureBundle(), { port: 0, logLevel: "silent", workers: 1, flaggedKeep: 0 });
  url = await server.listen();
});

after(async () => {
  assert.equal(await server.close(), 0);
  assert.equal(memory().numTensors, tensorsAtStart);
});

test("64 PNGs of 4999x5000 in one request: 413 from their headers, at once, nothing decoded", async () => {
  const big = flatPng(4999, 5000);
  assert.ok(big.length < 100_000, `small on the wire (${big.length} bytes)`);
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const r = await postForm(Array.from({ length: 64 }, () => big));
  assert.equal(r.status, 413, JSON.stringify(r.body));
  assert.equal(r.body.error, "too_many_pixels");
  assert.match(
    String(r.body.message),
    /^the request's 64 images declare 1599680000 pixels together \(largest: image:big0\.png, 24995000\); at most 100000000 per request \(--max-request-pixels\)$/,
  );
  assert.ok(performance.now() - t0 < 3000, "refused from the headers, without decoding");
  assert.ok(process.memoryUsage().rss - rss0 < 300 * 2 ** 20, "no image was decoded");
});

test("a request within the budget is decoded and scored (four 4999x5000 PNGs, 99.98 megapixels)", async () => {
  const images = [64, 128, 192, 255].map((v) => flatPng(4999, 5000, v));
  const r = await postForm(images);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const results = r.body.results as { score: number; pred: number }[];
  assert.equal(results.length, 4);
  for (const x of results) assert.equal(typeof x.score, "number");
  // Each decoded to a flat 28x28 image of its own value: different inputs, different scores.
  assert.equal(new Set(results.map((x) => x.score)).size, 4);
});

test("options: the in-flight budget must hold the largest image allowed; serve --help documents the budgets", async () => {
  const help = await runCli(["serve", "--help"]);
  assert.equal(help.code, 0);
  for (const option of ["--max-pixels", "--max-request-pixels", "--max-inflight-pixels", "--frames"])
    assert.match(help.out, new RegExp(`${option} <value>.*\\(default: `), option);
  const bad = await runCli(["serve", "--bundle", "x", "--max-pixels", "30000000", "--max-inflight-pixels", "20000000"]);
  assert.equal(bad.code, 2, "a usage error");
  assert.match(bad.err, /maxPixels \(30000000\) must not exceed maxInflightPixels \(20000000\)/);
  assert.throws(
    () => resolveOptions({ maxPixels: 30_000_000, maxInflightPixels: 20_000_000 }),
    /maxPixels \(30000000\) must not exceed maxInflightPixels \(20000000\)/,
  );
  assert.throws(() => resolveOptions({ maxRequestPixels: 0 }), /maxRequestPixels must be an integer >= 1, got 0/);
  assert.throws(() => resolveOptions({ frames: "first" as "all" }), /frames must be one of refuse, all, got "first"/);
  const d = resolveOptions();
  assert.deepEqual(
    [d.maxPixels, d.maxRequestPixels, d.maxInflightPixels, d.frames],
    [25_000_000, 100_000_000, 100_000_000, "refuse"],
  );
});
