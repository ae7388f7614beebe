// The plain-PNG fast path must hand back libvips' pixels exactly, for every PNG kind it takes, and
// leave the others (16-bit, an ICC profile, broken) to libvips.
import { test } from "node:test";
import assert from "node:assert/strict";
import sharp, { type PngOptions } from "sharp";
import pngjs from "pngjs";
import { convertChannels, decodeImage, resizeRaw } from "../../src/data/image-decode.js";
import { decodePlainPng, isPlainPng, pngHeader } from "../../src/data/png-decode.js";

const W = 23;
const H = 17;

/** Deterministic, varied pixels (edges and flat areas), `channels` per pixel. */
function pattern(channels: number, w = W, h = H): Buffer {
  const b = Buffer.alloc(w * h * channels);
  for (let i = 0; i < b.length; i++) b[i] = (i * 73 + Math.floor(i / 7) * 31 + (i % 5 === 0 ? 200 : 0)) % 256;
  return b;
}

async function encode(channels: 1 | 2 | 3 | 4, png: PngOptions = {}): Promise<Uint8Array> {
  return new Uint8Array(
    await sharp(pattern(channels), { raw: { width: W, height: H, channels } })
      .png(png)
      .toBuffer(),
  );
}

/** What libvips alone makes of the file: the decoder decodeImage used for every PNG before. */
async function libvips(png: Uint8Array): Promise<{ channels: number; pixels: Uint8Array }> {
  const { data, info } = await sharp(png, { failOn: "error" })
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { channels: info.channels, pixels: new Uint8Array(data) };
}

/** Reduces a decoded image to one grey value per pixel when its bands are equal (libvips may hand grey back as three). */
function bands(img: { channels: number; pixels: Uint8Array }, n: number): Uint8Array[] {
  return Array.from({ length: img.channels }, (_, c) =>
    Uint8Array.from({ length: n }, (_, i) => img.pixels[i * img.channels + c] ?? -1),
  );
}

const KINDS: [string, () => Promise<Uint8Array>][] = [
  ["grey", () => encode(1)],
  ["grey + alpha", () => encode(2)],
  ["RGB", () => encode(3)],
  ["RGBA", () => encode(4)],
  ["palette", () => encode(3, { palette: true, colours: 16 })],
  ["palette with transparency", () => encode(4, { palette: true, colours: 16 })],
  [
    "grey, written by pngjs",
    () =>
      Promise.resolve(
        new Uint8Array(
          pngjs.PNG.sync.write(Object.assign(new pngjs.PNG({ width: W, height: H }), { data: rgbaOf(pattern(1)) }), {
            colorType: 0,
            bitDepth: 8,
            inputHasAlpha: true,
          }),
        ),
      ),
  ],
];

function rgbaOf(grey: Buffer): Buffer {
  const out = Buffer.alloc(grey.length * 4);
  for (let i = 0; i < grey.length; i++) out.set([grey[i] ?? 0, grey[i] ?? 0, grey[i] ?? 0, 255], 4 * i);
  return out;
}

test("every plain PNG kind decodes on the fast path to libvips' exact pixels", async () => {
  for (const [kind, make] of KINDS) {
    const png = await make();
    const h = pngHeader(png);
    assert.ok(h && isPlainPng(h), `${kind}: header ${JSON.stringify(h)} should take the fast path`);
    const fast = decodePlainPng(png);
    const ref = await libvips(png);
    assert.deepEqual([fast.width, fast.height], [W, H], kind);
    const fb = bands(fast, W * H);
    const rb = bands(ref, W * H);
    // Same bands, or grey on one side and three equal bands on the other.
    if (fb.length === rb.length) assert.deepEqual(fb, rb, kind);
    else
      for (const b of fb.length === 1 ? rb : fb)
        assert.deepEqual(b, (fb.length === 1 ? fb : rb)[0], `${kind}: grey vs equal bands`);
    // And through decodeImage, to both channel counts, with and without a resize.
    for (const channels of [1, 3] as const) {
      for (const size of [undefined, { height: 28, width: 28 }]) {
        const got = await decodeImage(png, `${kind}.png`, { channels, ...(size ? { size } : {}) });
        // The libvips-only pipeline decodeImage ran before: decode, resize from raw, convert channels.
        const raw = { width: W, height: H, ...ref };
        const want = convertChannels(size ? await resizeRaw(raw, size) : raw, channels);
        assert.deepEqual(
          new Uint8Array(got.pixels),
          new Uint8Array(want.pixels),
          `${kind} -> ${channels} channels${size ? ", resized" : ""}`,
        );
      }
    }
  }
});

test("16-bit, ICC-tagged and interlaced PNGs are left to libvips; broken and oversized ones are refused as before", async () => {
  // Interlaced: pngjs would inflate it with no output limit (a zlib bomb on the calling thread).
  const interlaced = await encode(3, { progressive: true });
  const interlacedHeader = pngHeader(interlaced);
  assert.equal(interlacedHeader?.interlace, 1);
  assert.equal(isPlainPng(interlacedHeader as NonNullable<typeof interlacedHeader>), false);
  assert.deepEqual(
    new Uint8Array((await decodeImage(interlaced, "adam7.png", { channels: 3 })).pixels),
    (await libvips(interlaced)).pixels,
  );

  const deep = new Uint8Array(
    await sharp(pattern(3), { raw: { width: W, height: H, channels: 3 } })
      .toColourspace("rgb16")
      .png()
      .toBuffer(),
  );
  const deepHeader = pngHeader(deep);
  assert.equal(deepHeader?.bitDepth, 16);
  assert.equal(isPlainPng(deepHeader as NonNullable<typeof deepHeader>), false);
  assert.throws(() => decodePlainPng(deep), /not a plain 8-bit PNG/);
  assert.deepEqual(
    new Uint8Array((await decodeImage(deep, "deep.png", { channels: 3 })).pixels),
    (await libvips(deep)).pixels,
  );

  const tagged = new Uint8Array(
    await sharp(pattern(3), { raw: { width: W, height: H, channels: 3 } })
      .withIccProfile("p3")
      .png()
      .toBuffer(),
  );
  const taggedHeader = pngHeader(tagged);
  assert.equal(taggedHeader?.iccProfile, true);
  assert.equal(isPlainPng(taggedHeader as NonNullable<typeof taggedHeader>), false);
  assert.deepEqual(
    new Uint8Array((await decodeImage(tagged, "p3.png", { channels: 3 })).pixels),
    (await libvips(tagged)).pixels,
  );

  const rgb = await encode(3);
  await assert.rejects(
    decodeImage(rgb.slice(0, Math.floor(rgb.length / 2)), "half.png", { channels: 3 }),
    /half\.png.*cannot decode/,
  );
  await assert.rejects(
    decodeImage(rgb, "small-limit.png", { channels: 3, maxPixels: W * H - 1 }),
    new RegExp(`${W}x${H} = ${W * H} pixels exceeds the limit of ${W * H - 1}`),
  );
  assert.equal(pngHeader(new TextEncoder().encode("not a png at all, just some text here")), null);
});
