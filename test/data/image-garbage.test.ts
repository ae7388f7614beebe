// Every kind of bad bytes gets an ImageDecodeError whose code says what kind of problem it is and
// whose message names the file and what is wrong, instead of a decoder's "Unknown error", "Input
// Bit Array is empty" or "libpng read error". And the one-pipeline decode (decode and resize in one
// libvips pass) gives exactly the pixels of decoding first and resizing after.
import { test } from "node:test";
import assert from "node:assert/strict";
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { decodeImage, probeImage, resizeRaw } from "../../src/data/image-decode.js";
import { IMAGE_PROBLEM_CODES, ImageDecodeError } from "../../src/data/image-error.js";
import { pngCrc, pngProblem } from "../../src/data/png-decode.js";
import { pngChunk as chunk } from "../helpers/png-chunk.js";

/** An 8-bit grey PNG declaring width × height, with `rows` zero rows of data. */
export function greyPng(width: number, height: number, rows = height): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(rows * (width + 1)))),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

function isCode(code: string, message: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof ImageDecodeError, `expected an ImageDecodeError, got ${String(e)}`);
    assert.equal(e.reason, code, e.message);
    assert.equal(e.code, IMAGE_PROBLEM_CODES[e.reason], "the reason's error code");
    assert.match(e.message, message);
    assert.ok(e.message.length < 500, `short message (${e.message.length} characters)`);
    return true;
  };
}

const decode = (bytes: Uint8Array, name: string): Promise<unknown> =>
  decodeImage(bytes, name, { channels: 1, size: { width: 28, height: 28 } });

test("broken PNGs: bad CRC, zero width, truncated, impossible header fields, no IDAT", async () => {
  for (const [w, h] of [
    [28, 28],
    [600, 600],
  ] as const) {
    // Small ones go to pngjs ("Unknown error"), larger ones to libpng ("read error"): the same message either way.
    const bad = greyPng(w, h);
    bad[bad.length - 13] = (bad[bad.length - 13] ?? 0) ^ 0xff; // the last byte of IDAT's CRC
    await assert.rejects(
      decode(bad, `crc${w}.png`),
      isCode(
        "corrupt",
        new RegExp(
          `crc${w}\\.png: cannot decode: a corrupt PNG: chunk IDAT at byte 33 has a bad CRC \\(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\\)`,
        ),
      ),
    );
  }
  await assert.rejects(
    decode(greyPng(0, 28, 0), "zero.png"),
    isCode(
      "corrupt",
      /zero\.png: cannot decode: a corrupt PNG: its header \(IHDR\) declares 0x28 pixels; width and height must be at least 1/,
    ),
  );
  await assert.rejects(decode(greyPng(28, 0, 0), "flat.png"), isCode("corrupt", /flat\.png: .*declares 28x0 pixels/));
  const whole = greyPng(600, 600);
  await assert.rejects(
    decode(whole.subarray(0, 60), "cut.png"),
    isCode(
      "corrupt",
      /cut\.png: cannot decode: a corrupt PNG: truncated: chunk IDAT at byte 33 declares \d+ bytes, 15 remain/,
    ),
  );
  // Whole image data without IEND decodes (as libpng and browsers read it); the structure check still says what is missing.
  assert.match(
    String(pngProblem(whole.subarray(0, whole.length - 12))),
    /truncated: the file ends at byte \d+ without an IEND chunk/,
  );
  const depth = greyPng(28, 28);
  depth[24] = 3; // bit depth 3 does not exist
  depth.writeUInt32BE(pngCrc(depth, 12, 29), 29);
  await assert.rejects(
    decode(depth, "depth.png"),
    isCode("corrupt", /depth\.png: .*declares bit depth 3 for colour type 0; valid depths are 1, 2, 4, 8, 16/),
  );
  assert.equal(pngProblem(greyPng(28, 28)), null);
  assert.match(
    String(pngProblem(Buffer.concat([greyPng(1, 1).subarray(0, 33), chunk("IEND", new Uint8Array(0))]))),
    /no image data/,
  );
});

test("huge declared dimensions are refused from the header, before any decoder runs", async () => {
  const t0 = Date.now();
  await assert.rejects(
    decode(greyPng(2 ** 31 - 1, 2 ** 31 - 1, 0), "huge.png"),
    isCode("too_many_pixels", /huge\.png: 2147483647x2147483647 = \d+ pixels exceeds the limit of 50000000/),
  );
  await assert.rejects(
    decode(greyPng(2 ** 31, 1, 0), "over.png"),
    isCode("corrupt", /the PNG limit is 2\^31-1 per side/),
  );
  assert.ok(Date.now() - t0 < 1000);
});

test("empty, text, truncated JPEG/GIF/WebP, unsupported formats (SVG)", async () => {
  await assert.rejects(decode(new Uint8Array(0), "nothing.png"), isCode("empty", /nothing\.png: empty \(0 bytes\)/));
  await assert.rejects(
    decode(Buffer.from("hello, I am text with a .png name"), "text.png"),
    isCode(
      "not_an_image",
      /text\.png: cannot decode: not a supported image: the first bytes \(68 65 6c 6c 6f 2c 20 49\) are no PNG, JPEG, WebP, GIF, TIFF or PPM\/PGM signature/,
    ),
  );
  const raw = Buffer.alloc(64 * 64 * 3, 90);
  const jpeg = await sharp(raw, { raw: { width: 64, height: 64, channels: 3 } })
    .jpeg()
    .toBuffer();
  await assert.rejects(
    decode(jpeg.subarray(0, Math.floor(jpeg.length / 2)), "half.jpg"),
    isCode("corrupt", /half\.jpg: cannot decode: a corrupt JPEG: .*(premature|end|truncat)/i),
  );
  await assert.rejects(
    decode(jpeg.subarray(0, 4), "stub.jpg"),
    isCode("corrupt", /stub\.jpg: cannot decode: a corrupt JPEG/),
  );
  const gif = await sharp(raw, { raw: { width: 64, height: 64, channels: 3 } })
    .gif()
    .toBuffer();
  await assert.rejects(
    decode(gif.subarray(0, 8), "stub.gif"),
    isCode("corrupt", /stub\.gif: cannot decode: a corrupt GIF/),
  );
  const webp = await sharp(raw, { raw: { width: 64, height: 64, channels: 3 } })
    .webp()
    .toBuffer();
  await assert.rejects(
    decode(webp.subarray(0, 30), "stub.webp"),
    isCode("corrupt", /stub\.webp: cannot decode: a corrupt WebP/),
  );
  const svg = Buffer.from(
    "<svg xmlns='http://www.w3.org/2000/svg' width='28' height='28'><rect width='28' height='28'/></svg>",
  );
  await assert.rejects(
    decode(svg, "drawing.png"),
    isCode(
      "unsupported_format",
      /drawing\.png: a SVG image; only PNG, JPEG, WebP, GIF, TIFF or PPM\/PGM images are accepted/,
    ),
  );
  await assert.rejects(
    decode(Buffer.from("P3\n1 1\n255\n0 0 0\n"), "ascii.ppm"),
    isCode("unsupported_format", /^ppm: ascii\.ppm: ASCII P3 files are not supported, only binary P6\/P5$/),
  );
  await assert.rejects(
    decode(Buffer.from("P6\n4 4\n255\nabc"), "short.ppm"),
    isCode("corrupt", /^ppm: short\.ppm: truncated: 4x4x3 needs 48 pixel bytes, found 3$/),
  );
});

test("decoding and resizing in one libvips pass gives the two-step pixels, for every kind it is used for", async () => {
  const W = 301;
  const H = 257;
  const pattern = (ch: number): Buffer => {
    const b = Buffer.alloc(W * H * ch);
    for (let i = 0; i < b.length; i++)
      b[i] = (i * 73 + Math.floor(i / 7) * 31 + (i % 5 === 0 ? 200 : 0) + Math.floor(i / (W * ch)) * 3) % 256;
    return b;
  };
  const img = (ch: 1 | 3) => sharp(pattern(ch), { raw: { width: W, height: H, channels: ch } });
  const kinds: [string, Buffer, boolean][] = [
    ["grey PNG", await img(1).png().toBuffer(), true],
    ["RGB PNG", await img(3).png().toBuffer(), true],
    ["interlaced PNG", await img(3).png({ progressive: true }).toBuffer(), true],
    ["palette PNG", await img(3).png({ palette: true }).toBuffer(), true],
    ["ICC-tagged PNG", await img(3).withIccProfile("p3").png().toBuffer(), true],
    ["GIF", await img(3).gif().toBuffer(), true],
    ["TIFF", await img(3).tiff({ compression: "lzw" }).toBuffer(), true],
    ["WebP", await img(3).webp().toBuffer(), true],
    // Not in one pass: alpha (libvips would premultiply before resizing), 16 bits, JPEG (shrink on load).
    [
      "RGBA PNG",
      await sharp(pattern(4), { raw: { width: W, height: H, channels: 4 } })
        .png()
        .toBuffer(),
      false,
    ],
    ["16-bit PNG", await img(3).toColourspace("rgb16").png().toBuffer(), false],
    ["JPEG", await img(3).jpeg().toBuffer(), false],
  ];
  for (const [kind, bytes, onePass] of kinds) {
    assert.equal((await probeImage(bytes, kind)).onePass, onePass, kind);
    const { data, info } = await sharp(bytes, { failOn: "error" })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    for (const size of [
      { width: 28, height: 28 },
      { width: 32, height: 24 },
      { width: 400, height: 300 },
    ]) {
      const want = await resizeRaw(
        { width: info.width, height: info.height, channels: info.channels, pixels: data },
        size,
      );
      const got = await decodeImage(bytes, kind, { channels: 3, size });
      assert.deepEqual(
        new Uint8Array(got.pixels),
        new Uint8Array(want.pixels),
        `${kind} at ${size.width}x${size.height}`,
      );
    }
  }
});
