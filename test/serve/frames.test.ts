// Multi-frame images whose first frame is clean and whose second is flagged: refused with 415 by
// default on every route that decodes images, in every request form; with --frames all each frame
// is scored and the image is flagged (score = the highest frame score), so /v1/predict refuses it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { memory } from "../../src/engine/index.js";
import { createServer, type BadExpertServer } from "../../src/serve/index.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { b64, postJson, postRaw, type Reply } from "./http.js";
import { multiFrameFiles } from "../helpers/multi-frame.js";

type Kind = "gif" | "webp" | "apng" | "tiff" | "pgm";
const KINDS: Record<Kind, { type: string; says: RegExp }> = {
  gif: { type: "image/gif", says: /an animated GIF with 2 frames/ },
  webp: { type: "image/webp", says: /an animated WebP with 2 frames/ },
  apng: { type: "image/png", says: /an animated PNG with 2 frames/ },
  tiff: { type: "image/tiff", says: /a multi-page TIFF with 2 pages/ },
  pgm: { type: "image/x-portable-graymap", says: /a multi-image PPM\/PGM with 2 images/ },
};

let refusing: BadExpertServer;
let scoring: BadExpertServer;
let refuseUrl: string;
let allUrl: string;
let files: Record<Kind, Uint8Array<ArrayBuffer>>;
let clean: Uint8Array<ArrayBuffer>;
let flagged: Uint8Array<ArrayBuffer>;
let tensorsAtStart: number;

interface Rec {
  flagged: boolean;
  score: number;
  frames?: number;
  frame?: number;
}

before(async () => {
  tensorsAtStart = memory().numTensors;
  const dir = await fixtureBundle();
  refusing = await createServer(dir, { port: 0, logLevel: "silent", workers: 1, flaggedKeep: 0 });
  scoring = await createServer(dir, {
    port: 0,
    logLevel: "silent",
    workers: 1,
    flaggedKeep: 0,
    frames: "all",
    onFlag: "reject",
  });
  refuseUrl = await refusing.listen();
  allUrl = await scoring.listen();
  // A clean and a flagged evaluation image (the fixture is calibrated at a 5% target FPR).
  const pngs = await fixturePngs(200);
  const r = await postJson<{ results: Rec[] }>(`${allUrl}/v1/detect`, { images: pngs.slice(0, 200).map(b64) }, {});
  const flaggedAt = r.body.results.findIndex((x) => x.flagged);
  const cleanAt = r.body.results.findIndex((x) => !x.flagged);
  assert.ok(flaggedAt >= 0 && cleanAt >= 0, "the fixture flags some of 200 clean images and passes others");
  clean = pngs[cleanAt] as Uint8Array<ArrayBuffer>;
  flagged = pngs[flaggedAt] as Uint8Array<ArrayBuffer>;
  const raw = async (p: Uint8Array): Promise<Uint8Array> => new Uint8Array(await sharp(p).greyscale().raw().toBuffer());
  files = await multiFrameFiles({ width: 28, height: 28, channels: 1, frames: [await raw(clean), await raw(flagged)] });
});

after(async () => {
  assert.equal(await refusing.close(), 0);
  assert.equal(await scoring.close(), 0);
  assert.equal(memory().numTensors, tensorsAtStart);
});

function refused(r: Reply, message: RegExp): void {
  assert.equal(r.status, 415, JSON.stringify(r.body));
  assert.equal(r.body.error, "multi_frame");
  assert.match(String(r.body.message), message);
  assert.equal(r.body.flagged, undefined, "a refusal carries no verdict");
}

async function postForm(base: string, route: string, parts: [string, Uint8Array][]): Promise<Reply> {
  const f = new FormData();
  for (const [name, bytes] of parts) f.append("image", new Blob([new Uint8Array(bytes)]), name);
  const r = await fetch(`${base}${route}`, { method: "POST", body: f });
  return { status: r.status, headers: r.headers, body: (await r.json()) as Record<string, unknown> };
}

test("by default every multi-frame kind gets 415 naming the input and its frame count, on /v1/detect and /v1/predict, in every form", async () => {
  for (const [kind, { type, says }] of Object.entries(KINDS) as [Kind, (typeof KINDS)[Kind]][]) {
    const bytes = files[kind];
    for (const route of ["/v1/detect", "/v1/predict"]) {
      refused(
        await postRaw(`${refuseUrl}${route}`, bytes, type),
        new RegExp(`^body: ${says.source}: multi-frame images are refused.*--frames all`),
      );
      refused(await postJson(`${refuseUrl}${route}`, { image: b64(bytes) }), new RegExp(`^image: ${says.source}`));
      refused(
        await postJson(`${refuseUrl}${route}`, { images: [b64(clean), b64(bytes)] }),
        new RegExp(`^images\\[1\\]: ${says.source}`),
      );
      refused(
        await postForm(refuseUrl, route, [
          ["ok.png", clean],
          [`anim.${kind}`, bytes],
        ]),
        new RegExp(`^image:anim\\.${kind}: ${says.source}`),
      );
    }
  }
  const single = await postRaw<Rec>(`${refuseUrl}/v1/detect`, clean);
  assert.equal(single.status, 200);
  assert.equal(single.body.frames, undefined, "a single-frame image's record is unchanged");
});

test("--frames all: every frame scored, the image flagged because frame 1 is, with the highest frame score; /v1/predict refuses it", async () => {
  for (const kind of Object.keys(KINDS) as Kind[]) {
    const bytes = files[kind];
    // Each frame on its own, as a still PNG of the pixels the server decodes for it: the two fixture
    // images for the lossless kinds written chunk by chunk, libvips' page for the others.
    const frames: Uint8Array<ArrayBuffer>[] =
      kind === "apng" || kind === "pgm"
        ? [clean, flagged]
        : await Promise.all([0, 1].map(async (page) => new Uint8Array(await sharp(bytes, { page }).png().toBuffer())));
    const alone = await postJson<{ results: Rec[] }>(`${allUrl}/v1/detect`, { images: frames.map(b64) });
    assert.equal(alone.status, 200);
    const [s0, s1] = alone.body.results as [Rec, Rec];
    const r = await postRaw<Rec>(`${allUrl}/v1/detect`, bytes, KINDS[kind].type);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.frames, 2, kind);
    assert.equal(r.body.score, Math.max(s0.score, s1.score), `${kind}: the image's score is its highest frame score`);
    assert.equal(r.body.frame, s1.score > s0.score ? 1 : 0, kind);
    assert.equal(r.body.flagged, s0.flagged || s1.flagged, kind);
    if (kind !== "gif") {
      // Lossless kinds: frame 0 is the clean image, frame 1 the flagged one.
      assert.deepEqual([s0.flagged, s1.flagged, r.body.flagged], [false, true, true], kind);
      const p = await postRaw(`${allUrl}/v1/predict`, bytes, KINDS[kind].type);
      assert.equal(p.status, 422, `${kind}: /v1/predict refuses the image (--on-flag reject)`);
      assert.deepEqual(
        (p.body.flagged as { index: number; frames: number; frame: number }[]).map((x) => [x.index, x.frames, x.frame]),
        [[0, 2, 1]],
        kind,
      );
    }
  }
  // Frames count as inputs against --max-images-per-request.
  const many = Array.from({ length: 129 }, () => b64(files.webp));
  const over = await postJson(`${allUrl}/v1/detect`, { images: many });
  assert.equal(over.status, 413);
  assert.match(String(over.body.message), /the request's images hold 258 frames to score; at most 256 per request/);
});
