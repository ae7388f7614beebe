// Multi-frame images (animated GIF, WebP and PNG, multi-page TIFF, multi-image PGM) are refused by
// default, never judged by their first frame, and decoded frame by frame on request; each frame is
// the image a viewer shows (APNG frames composited by the APNG rules).
import { test } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { decodeImage, decodeImageFrames, probeImage } from "../../src/data/image-decode.js";
import { IMAGE_PROBLEM_CODES, ImageDecodeError } from "../../src/data/image-error.js";
import { isPlainPng, pngHeader } from "../../src/data/png-decode.js";
import { apng, multiFrameFiles, type Frames } from "../helpers/multi-frame.js";

const W = 28;
const H = 28;

/** Frame 0 a smooth gradient, frame 1 the same with a bright 6x6 patch: what a trigger in a later frame looks like. */
function twoFrames(): Frames {
  const clean = new Uint8Array(W * H);
  for (let i = 0; i < clean.length; i++) clean[i] = 40 + ((i % W) * 3 + Math.floor(i / W) * 2);
  const patched = new Uint8Array(clean);
  for (let r = 20; r < 26; r++) for (let c = 20; c < 26; c++) patched[r * W + c] = 255;
  return { width: W, height: H, channels: 1, frames: [clean, patched] };
}

function isCode(code: string, message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof ImageDecodeError, `expected an ImageDecodeError, got ${String(e)}`);
    assert.equal(e.reason, code, e.message);
    assert.equal(e.code, IMAGE_PROBLEM_CODES[e.reason], "the reason's error code");
    assert.match(e.message, message);
    return true;
  };
}

test("every multi-frame kind is refused by default, naming the file, the kind and the frame count", async () => {
  const files = await multiFrameFiles(twoFrames());
  const kinds: Record<keyof typeof files, RegExp> = {
    gif: /an animated GIF with 2 frames/,
    webp: /an animated WebP with 2 frames/,
    apng: /an animated PNG with 2 frames/,
    tiff: /a multi-page TIFF with 2 pages/,
    pgm: /a multi-image PPM\/PGM with 2 images/,
  };
  for (const [kind, bytes] of Object.entries(files) as [keyof typeof files, Uint8Array][]) {
    const name = `upload.${kind}`;
    assert.equal((await probeImage(bytes, name, { frames: "all" })).frames, 2, kind);
    await assert.rejects(
      decodeImage(bytes, name, { channels: 1 }),
      isCode(
        "multi_frame",
        new RegExp(`^image: upload\\.${kind}: ${kinds[kind].source}: multi-frame images are refused`),
      ),
    );
    await assert.rejects(decodeImageFrames(bytes, name, { channels: 1 }), isCode("multi_frame", kinds[kind]));
  }
});

test("frames 'all' decodes each frame to what a viewer shows: frame 1 carries the patch frame 0 lacks", async () => {
  const f = twoFrames();
  const files = await multiFrameFiles(f);
  for (const [kind, bytes] of Object.entries(files)) {
    const frames = await decodeImageFrames(bytes, kind, { channels: 1, frames: "all" });
    assert.equal(frames.length, 2, kind);
    for (const [k, img] of frames.entries()) {
      assert.deepEqual([img.width, img.height, img.channels], [W, H, 1], `${kind} frame ${k}`);
      // GIF is palette-quantised: compare the patch region loosely there, exactly elsewhere.
      const want = f.frames[k] as Uint8Array;
      if (kind === "gif") {
        assert.ok(
          Math.abs((img.pixels[22 * W + 22] ?? 0) - (want[22 * W + 22] ?? 0)) <= 8,
          `${kind} frame ${k}: patch pixel ${img.pixels[22 * W + 22]} vs ${want[22 * W + 22]}`,
        );
      } else {
        assert.deepEqual(new Uint8Array(img.pixels), want, `${kind} frame ${k}`);
      }
    }
  }
  // Resized and converted frame by frame, as a single image is.
  const still = new Uint8Array(
    await sharp(Buffer.from(f.frames[1] as Uint8Array), { raw: { width: W, height: H, channels: 1 } })
      .png()
      .toBuffer(),
  );
  const want = await decodeImage(still, "still.png", { channels: 3, size: { width: 16, height: 12 } });
  const [, got] = await decodeImageFrames(files.apng, "a.png", {
    channels: 3,
    size: { width: 16, height: 12 },
    frames: "all",
  });
  assert.deepEqual(new Uint8Array(got?.pixels ?? []), new Uint8Array(want.pixels));
});

test("APNG: detected from acTL (libvips and pngjs see a still PNG), frames composited by blend and dispose rules", async () => {
  const f = twoFrames();
  const bytes = apng(
    W,
    H,
    1,
    f.frames.map((pixels) => ({ pixels })),
  );
  // Why the chunk walk is ours: libvips reports no pages for an APNG, and the fast path would read IDAT only.
  assert.equal((await sharp(bytes).metadata()).pages, undefined);
  const h = pngHeader(bytes);
  assert.deepEqual(h?.animation, { declaredFrames: 2, frameControls: 2, idatIsFrame: true });
  assert.equal(isPlainPng(h as NonNullable<typeof h>), false);

  // A default image outside the animation is one more image (decoders without APNG support show it).
  const outside = apng(W, H, 1, [{ pixels: f.frames[1] as Uint8Array }], { defaultImage: f.frames[0] as Uint8Array });
  assert.equal((await probeImage(outside, "o.png", { frames: "all" })).frames, 2);
  await assert.rejects(
    decodeImage(outside, "o.png", { channels: 1 }),
    isCode("multi_frame", /an animated PNG with 2 frames/),
  );
  const both = await decodeImageFrames(outside, "o.png", { channels: 1, frames: "all" });
  assert.deepEqual(
    both.map((x) => new Uint8Array(x.pixels)),
    f.frames,
  );
  // acTL declaring 1 frame while the file holds 2: the file's frames count.
  const understated = apng(
    W,
    H,
    1,
    f.frames.map((pixels) => ({ pixels })),
    { declaredFrames: 1 },
  );
  assert.equal((await probeImage(understated, "u.png", { frames: "all" })).frames, 2);

  // RGBA: frame 1 is a 4x4 half-transparent white square blended OVER at (2, 2), dispose PREVIOUS; frame 2 a
  // fully transparent SOURCE-blended 1x1 at (0, 0), showing the canvas restored after frame 1.
  const base = new Uint8Array(8 * 8 * 4);
  for (let i = 0; i < 64; i++) base.set([100, 50, 0, 255], 4 * i);
  const square = new Uint8Array(4 * 4 * 4);
  for (let i = 0; i < 16; i++) square.set([255, 255, 255, 128], 4 * i);
  const anim = apng(8, 8, 4, [
    { pixels: base },
    { pixels: square, x: 2, y: 2, width: 4, height: 4, blend: 1, dispose: 2 },
    { pixels: new Uint8Array([0, 0, 0, 0]), width: 1, height: 1, blend: 1 },
  ]);
  const [f0, f1, f2] = await decodeImageFrames(anim, "anim.png", { channels: 3, frames: "all" });
  const px = (img: typeof f0, x: number, y: number): number[] =>
    Array.from((img?.pixels ?? new Uint8Array()).subarray(3 * (y * 8 + x), 3 * (y * 8 + x) + 3));
  assert.deepEqual(px(f0, 3, 3), [100, 50, 0]);
  // OVER at alpha 128/255 over an opaque pixel: round((255·128·255 + c·127·255) / (128·255 + 127·255)).
  const over = (c: number): number => Math.round((255 * 128 * 255 + c * 127 * 255) / (128 * 255 + 127 * 255));
  assert.deepEqual(px(f1, 3, 3), [over(100), over(50), over(0)]);
  assert.deepEqual(px(f1, 0, 0), [100, 50, 0]);
  assert.deepEqual(px(f2, 3, 3), [100, 50, 0], "dispose PREVIOUS restored the region");
});

test("limits with frames 'all': frame count, and the pixels of all frames together", async () => {
  const files = await multiFrameFiles(twoFrames());
  await assert.rejects(
    decodeImageFrames(files.webp, "w.webp", { channels: 1, frames: "all", maxFrames: 1 }),
    isCode("too_many_frames", /w\.webp: an animated WebP with 2 frames; at most 1 are scored per image/),
  );
  await assert.rejects(
    decodeImageFrames(files.tiff, "t.tiff", { channels: 1, frames: "all", maxPixels: W * H * 2 - 1 }),
    isCode(
      "too_many_pixels",
      new RegExp(`t\\.tiff: 2 pages of 28x28 = ${W * H * 2} pixels exceeds the limit of ${W * H * 2 - 1}`),
    ),
  );
  assert.equal(
    (await decodeImageFrames(files.tiff, "t.tiff", { channels: 1, frames: "all", maxPixels: W * H * 2 })).length,
    2,
  );
});

test("a single-frame GIF, WebP, TIFF and APNG-free PNG decode as before under either policy", async () => {
  const one: Frames = { ...twoFrames(), frames: [twoFrames().frames[1] as Uint8Array] };
  const files = await multiFrameFiles(one);
  for (const [kind, bytes] of Object.entries(files)) {
    assert.equal((await probeImage(bytes, kind)).frames, 1, kind);
    const a = await decodeImage(bytes, kind, { channels: 1 });
    const b = await decodeImageFrames(bytes, kind, { channels: 1, frames: "all" });
    assert.equal(b.length, 1, kind);
    assert.deepEqual(new Uint8Array(a.pixels), new Uint8Array(b[0]?.pixels ?? []), kind);
  }
});
