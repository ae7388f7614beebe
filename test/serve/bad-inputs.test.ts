// Bad requests get a 4xx JSON body naming the problem, and the server keeps serving; a full
// queue and a missed deadline are refused (503 / 504), never answered as clean.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { memory } from "../../src/engine/index.js";
import { createServer, type BadExpertServer } from "../../src/serve/index.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { b64, get, metric, postJson, postMultipart, postRaw, type Reply } from "./http.js";
import { httpStatus, type ErrorCode } from "../../src/util/errors.js";

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
function claimedPng(width: number, height: number, rows = 1): Uint8Array<ArrayBuffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const file = Buffer.concat([
    sig,
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(rows * (width + 1)))),
    chunk("IEND", new Uint8Array(0)),
  ]);
  return new Uint8Array(file);
}

before(async () => {
  tensorsAtStart = memory().numTensors;
  const dir = await fixtureBundle();
  [png] = (await fixturePngs(1)) as [Uint8Array<ArrayBuffer>];
  server = await createServer(dir, {
    port: 0,
    logLevel: "silent",
    maxBodyBytes: 64 * 1024,
    maxImagesPerRequest: 8,
    maxPixels: 4_000_000,
  });
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

/** The error code each problem is (src/util/errors.ts): the status must be the code's, whatever route answered. */
const CODE_OF: Record<string, ErrorCode> = {
  not_an_image: "E_INPUT_DECODE",
  undecodable_image: "E_INPUT_DECODE",
  empty_image: "E_INPUT_DECODE",
  bad_base64: "E_INPUT_DECODE",
  unsupported_image_format: "E_INPUT_UNSUPPORTED",
  unsupported_media_type: "E_INPUT_UNSUPPORTED",
  too_many_pixels: "E_INPUT_TOO_LARGE",
  too_many_images: "E_INPUT_TOO_LARGE",
  body_too_large: "E_INPUT_TOO_LARGE",
  bad_field: "E_USAGE",
  bad_json: "E_USAGE",
  bad_multipart: "E_USAGE",
  missing_field: "E_USAGE",
  empty_body: "E_USAGE",
  no_images: "E_USAGE",
  queue_full: "E_BUSY",
  timeout: "E_TIMEOUT",
};

function refused(r: Reply, status: number, reason: string, message: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.error, reason);
  assert.equal(r.body.reason, reason);
  assert.equal(r.body.code, CODE_OF[reason] ?? "(a reason this test does not know)", JSON.stringify(r.body));
  assert.equal(httpStatus(r.body.code as ErrorCode), status, "the status is the code's");
  assert.match(String(r.body.message), message);
  assert.equal(typeof r.body.requestId, "string");
}

test("not an image, a truncated PNG, an empty body", async () => {
  refused(
    await postRaw(`${url}/v1/detect`, "hello, I am text", "image/png"),
    400,
    "not_an_image",
    /^body: cannot decode: not a supported image/,
  );
  refused(
    await postRaw(`${url}/v1/detect`, png.slice(0, Math.floor(png.length / 2)), "image/png"),
    400,
    "undecodable_image",
    /^body: .*(cannot decode|premature|truncated|end)/i,
  );
  refused(
    await postRaw(`${url}/v1/detect`, new Uint8Array(0), "image/png"),
    400,
    "empty_image",
    /body: empty \(0 bytes\)/,
  );
  await stillServing();
});

test("wrong Content-Type, bad JSON, missing field, bad base64", async () => {
  refused(
    await postRaw(`${url}/v1/detect`, "x", "text/plain"),
    415,
    "unsupported_media_type",
    /Content-Type "text\/plain" is not accepted; send image\/\*/,
  );
  refused(await postRaw(`${url}/v1/detect`, "{nope", "application/json"), 400, "bad_json", /not valid JSON/);
  refused(
    await postJson(`${url}/v1/detect`, { picture: b64(png) }),
    400,
    "missing_field",
    /no "image" or "images" field \(found: "picture"\)/,
  );
  refused(
    await postJson(`${url}/v1/detect`, { image: "%%%not base64%%%" }),
    400,
    "bad_base64",
    /^image: not valid base64/,
  );
  refused(await postJson(`${url}/v1/detect`, { images: "abc" }), 400, "bad_field", /"images" must be an array/);
  refused(
    await postJson(`${url}/v1/detect`, [b64(png), 7]),
    400,
    "bad_field",
    /images\[1\]: expected a base64 string, got number/,
  );
  refused(await postJson(`${url}/v1/detect`, []), 400, "no_images", /no images/);
  await stillServing();
});

test("oversize body, too many images, a 20000x20000 PNG (refused from its header)", async () => {
  const big = new Uint8Array(100 * 1024);
  refused(
    await postRaw(`${url}/v1/detect`, big, "image/png"),
    413,
    "body_too_large",
    /larger than 65536 bytes \(--max-body-bytes\)/,
  );
  refused(
    await postJson(
      `${url}/v1/detect`,
      Array.from({ length: 9 }, () => b64(png)),
    ),
    413,
    "too_many_images",
    /holds 9 images; at most 8 per request/,
  );
  const bomb = claimedPng(20000, 20000);
  assert.ok(bomb.length < 64 * 1024, `the bomb is small (${bomb.length} bytes)`);
  const t0 = Date.now();
  refused(
    await postRaw(`${url}/v1/detect`, bomb, "image/png"),
    413,
    "too_many_pixels",
    /more than 4000000 pixels|20000x20000 = 400000000 pixels exceeds the limit of 4000000/,
  );
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
  const s = await createServer(dir, {
    port: 0,
    logLevel: "silent",
    maxBatch: 64,
    maxWaitMs: 10_000,
    maxQueue: 4,
    maxImagesPerRequest: 4,
    timeoutMs: 600,
  });
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

/** A multipart body written by hand, for bodies no client library would send. */
function rawMultipart(contentType: string, body: string | Uint8Array): Promise<Reply> {
  return postRaw(`${url}/v1/detect`, typeof body === "string" ? body : new Uint8Array(body), contentType);
}

function filePart(boundary: string, filename: string): string {
  return `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${filename}"\r\nContent-Type: image/png\r\n\r\n`;
}

function form(files: [string, Uint8Array][]): FormData {
  const f = new FormData();
  for (const [name, bytes] of files) f.append("image", new Blob([new Uint8Array(bytes)], { type: "image/png" }), name);
  return f;
}

async function postForm(files: [string, Uint8Array][], route = "/v1/detect"): Promise<Reply> {
  const r = await fetch(`${url}${route}`, { method: "POST", body: form(files) });
  return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}

test("malformed multipart (no boundary, truncated part) and prototype-poisoning JSON get 400 naming the problem", async () => {
  refused(
    await rawMultipart("multipart/form-data", `${filePart("x", "a.png")}abc\r\n--x--\r\n`),
    400,
    "bad_multipart",
    /^Content-Type multipart\/form-data has no boundary parameter/,
  );
  refused(
    await rawMultipart("multipart/form-data; boundary=x", `${filePart("x", "a.png")}abcdef`),
    400,
    "bad_multipart",
    /^the multipart body is malformed: .*(terminated early|unexpected end)/i,
  );
  const whole = `${filePart("x", "a.png")}${"A".repeat(10)}\r\n`;
  refused(
    await rawMultipart(
      "multipart/form-data; boundary=x",
      `${whole}--x\r\nContent-Disposition: form-data; name="image"; filename="b.png"\r\n\r\nxyz`,
    ),
    400,
    "bad_multipart",
    /malformed after 1 complete file part/,
  );
  const poisoned = `{"__proto__": {"polluted": true}, "image": "${b64(png)}"}`;
  refused(
    await postRaw(`${url}/v1/detect`, poisoned, "application/json"),
    400,
    "bad_json",
    /the JSON body has the key "__proto__" at \$, which is refused \(a prototype-poisoning pattern\)/,
  );
  refused(
    await postRaw(`${url}/v1/detect`, `{"images": [{"constructor": {"prototype": {"x": 1}}}]}`, "application/json"),
    400,
    "bad_json",
    /"constructor": \{"prototype": \.\.\.\} at \$\["images"\]\[0\]/,
  );
  refused(
    await postRaw(`${url}/v1/detect`, "{nope", "application/json"),
    400,
    "bad_json",
    /^the body is not valid JSON: .*(Unexpected|Expected)/,
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  await stillServing();
});

test("broken and hostile images: each a 4xx whose message names the input and what is wrong", async () => {
  const withBadCrc = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => {
    const b = new Uint8Array(bytes);
    const iend = b.length - 12;
    b[iend - 1] = (b[iend - 1] ?? 0) ^ 0xff; // the last byte of the CRC of the chunk before IEND
    return b;
  };
  refused(
    await postRaw(`${url}/v1/detect`, withBadCrc(png), "image/png"),
    400,
    "undecodable_image",
    /^body: cannot decode: a corrupt PNG: chunk IDAT at byte \d+ has a bad CRC \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/,
  );
  refused(
    await postRaw(`${url}/v1/detect`, claimedPng(0, 28), "image/png"),
    400,
    "undecodable_image",
    /^body: cannot decode: a corrupt PNG: its header \(IHDR\) declares 0x28 pixels; width and height must be at least 1/,
  );
  refused(
    await postRaw(`${url}/v1/detect`, png.slice(0, 40), "image/png"),
    400,
    "undecodable_image",
    /^body: cannot decode: a corrupt PNG: truncated/,
  );
  const jpeg = new Uint8Array(
    await sharp(Buffer.alloc(64 * 64 * 3, 99), { raw: { width: 64, height: 64, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
  refused(
    await postRaw(`${url}/v1/detect`, jpeg.slice(0, jpeg.length >> 1), "image/jpeg"),
    400,
    "undecodable_image",
    /^body: cannot decode: a corrupt JPEG: /,
  );
  refused(
    await postRaw(`${url}/v1/detect`, claimedPng(2 ** 31 - 1, 2 ** 31 - 1, 0), "image/png"),
    413,
    "too_many_pixels",
    /^body: 2147483647x2147483647 = \d+ pixels exceeds the limit of 4000000 \(--max-pixels\)/,
  );
  const svg = Buffer.from(
    "<svg xmlns='http://www.w3.org/2000/svg' width='28' height='28'><rect width='28' height='28'/></svg>",
  );
  refused(
    await postRaw(`${url}/v1/detect`, new Uint8Array(svg), "image/png"),
    415,
    "unsupported_image_format",
    /^body: a SVG image; only PNG, JPEG, WebP, GIF, TIFF or PPM\/PGM images are accepted/,
  );
  // In a batch, the message names the bad part by its field and file name.
  refused(
    await postForm([
      ["good.png", png],
      ["notes.png", new TextEncoder().encode("just some text, no image")],
    ]),
    400,
    "not_an_image",
    /^image:notes\.png: cannot decode: not a supported image/,
  );
  refused(
    await postForm([
      ["good.png", png],
      ["empty.png", new Uint8Array(0)],
    ]),
    400,
    "empty_image",
    /^image:empty\.png: empty \(0 bytes\)/,
  );
  refused(
    await postJson(`${url}/v1/predict`, { images: [b64(png), b64(withBadCrc(png))] }),
    400,
    "undecodable_image",
    /^images\[1\]: cannot decode: a corrupt PNG: chunk IDAT/,
  );
  await stillServing();
});
