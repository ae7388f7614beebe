// Real multi-frame image files built from raw frames: animated GIF and WebP and a multi-page TIFF
// written by libvips (sharp), an APNG written chunk by chunk (libvips does not write APNG), and a
// multi-image PGM/PPM. Every frame has the same size; `frames[k]` is width × height × channels bytes.
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { pngChunk as chunk } from "./png-chunk.js";

export interface Frames {
  width: number;
  height: number;
  channels: 1 | 3;
  frames: Uint8Array[];
}

function stacked(f: Frames): {
  raw: Buffer;
  options: { raw: { width: number; height: number; channels: 1 | 3; pageHeight: number } };
} {
  return {
    raw: Buffer.concat(f.frames.map((x) => Buffer.from(x))),
    options: {
      raw: { width: f.width, height: f.height * f.frames.length, channels: f.channels, pageHeight: f.height },
    },
  };
}

export async function animatedGif(f: Frames): Promise<Uint8Array<ArrayBuffer>> {
  const { raw, options } = stacked(f);
  return new Uint8Array(await sharp(raw, options).gif({ dither: 0, effort: 1 }).toBuffer());
}

export async function animatedWebp(f: Frames): Promise<Uint8Array<ArrayBuffer>> {
  const { raw, options } = stacked(f);
  return new Uint8Array(await sharp(raw, options).webp({ lossless: true }).toBuffer());
}

export async function multiPageTiff(f: Frames): Promise<Uint8Array<ArrayBuffer>> {
  const { raw, options } = stacked(f);
  return new Uint8Array(await sharp(raw, options).tiff({ compression: "lzw" }).toBuffer());
}

export function multiImagePnm(f: Frames): Uint8Array<ArrayBuffer> {
  const parts = f.frames.map((x) =>
    Buffer.concat([
      Buffer.from(`${f.channels === 3 ? "P6" : "P5"}\n${f.width} ${f.height}\n255\n`, "latin1"),
      Buffer.from(x),
    ]),
  );
  return new Uint8Array(Buffer.concat(parts));
}

/** zlib stream of 8-bit scanlines (filter 0), `channels` bytes per pixel. */
function idat(width: number, height: number, channels: number, pixels: Uint8Array): Buffer {
  const rows = Buffer.alloc(height * (1 + width * channels));
  for (let r = 0; r < height; r++)
    rows.set(pixels.subarray(r * width * channels, (r + 1) * width * channels), r * (1 + width * channels) + 1);
  return deflateSync(rows);
}

export interface ApngFrame {
  /** width × height × channels bytes of the frame's region (default: the whole canvas). */
  pixels: Uint8Array;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  /** 0 NONE, 1 BACKGROUND, 2 PREVIOUS. */
  dispose?: number;
  /** 0 SOURCE, 1 OVER. */
  blend?: number;
}

/**
 * An APNG of 8-bit grey (1), RGB (3) or RGBA (4) pixels. `defaultImage`: an IDAT image that is not
 * part of the animation (shown only by decoders without APNG support); absent, the first frame is
 * the IDAT image.
 */
export function apng(
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  frames: ApngFrame[],
  o: { defaultImage?: Uint8Array; declaredFrames?: number } = {},
): Uint8Array<ArrayBuffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 1 ? 0 : channels === 3 ? 2 : 6;
  const actl = Buffer.alloc(8);
  actl.writeUInt32BE(o.declaredFrames ?? frames.length, 0);
  const parts: Buffer[] = [
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("acTL", actl),
  ];
  let seq = 0;
  const fctl = (f: ApngFrame): Buffer => {
    const b = Buffer.alloc(26);
    b.writeUInt32BE(seq++, 0);
    b.writeUInt32BE(f.width ?? width, 4);
    b.writeUInt32BE(f.height ?? height, 8);
    b.writeUInt32BE(f.x ?? 0, 12);
    b.writeUInt32BE(f.y ?? 0, 16);
    b.writeUInt16BE(1, 20);
    b.writeUInt16BE(10, 22);
    b[24] = f.dispose ?? 0;
    b[25] = f.blend ?? 0;
    return chunk("fcTL", b);
  };
  const data = (f: ApngFrame): Buffer => idat(f.width ?? width, f.height ?? height, channels, f.pixels);
  if (o.defaultImage) parts.push(chunk("IDAT", idat(width, height, channels, o.defaultImage)));
  for (const [i, f] of frames.entries()) {
    parts.push(fctl(f));
    if (i === 0 && !o.defaultImage) {
      parts.push(chunk("IDAT", data(f)));
    } else {
      const seqBytes = Buffer.alloc(4);
      seqBytes.writeUInt32BE(seq++, 0);
      parts.push(chunk("fdAT", Buffer.concat([seqBytes, data(f)])));
    }
  }
  parts.push(chunk("IEND", new Uint8Array(0)));
  return new Uint8Array(Buffer.concat(parts));
}

/** Every multi-frame kind of the same frames, by name. */
export async function multiFrameFiles(
  f: Frames,
): Promise<Record<"gif" | "webp" | "apng" | "tiff" | "pgm", Uint8Array<ArrayBuffer>>> {
  return {
    gif: await animatedGif(f),
    webp: await animatedWebp(f),
    apng: apng(
      f.width,
      f.height,
      f.channels,
      f.frames.map((pixels) => ({ pixels })),
    ),
    tiff: await multiPageTiff(f),
    pgm: multiImagePnm(f),
  };
}
