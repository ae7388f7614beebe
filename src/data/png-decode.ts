// A fast path for the commonest upload: a plain 8-bit PNG. libvips (sharp) is the general decoder,
// but every call pays a fixed cost: the options object crosses into C++ on the calling thread,
// the pipeline runs on the libuv pool and libvips' own threads. For a small image that cost is
// most of the work — measured in the service, one sharp decode of a 28x28 PNG took more CPU than
// scoring it. pngjs inflates with Node's zlib on the calling thread instead. It is only used where
// it yields exactly libvips' pixels, with bounded memory: bit depth 8 or less (no 16-to-8
// rounding question), no embedded ICC profile (libvips would convert through it to sRGB), not
// interlaced. Everything else, and every PNG pngjs cannot read, goes to libvips as before, so the
// verdict on a file never depends on which decoder ran.
import pngjs from "pngjs";
import type { RawImage } from "./ppm.js";

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA. */
  colourType: number;
  /** Adam7 interlacing (1) or none (0). */
  interlace: number;
  /** An iCCP chunk before the image data. */
  iccProfile: boolean;
}

function u32(b: Uint8Array, at: number): number {
  return (((b[at] ?? 0) << 24) >>> 0) + ((b[at + 1] ?? 0) << 16) + ((b[at + 2] ?? 0) << 8) + (b[at + 3] ?? 0);
}

function chunkType(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at] ?? 0, b[at + 1] ?? 0, b[at + 2] ?? 0, b[at + 3] ?? 0);
}

/** The IHDR fields and whether an ICC profile precedes the image data; null when `data` is not a PNG with an IHDR. */
export function pngHeader(data: Uint8Array): PngHeader | null {
  if (data.length < 33 || SIGNATURE.some((v, i) => data[i] !== v) || chunkType(data, 12) !== "IHDR") return null;
  const h: PngHeader = { width: u32(data, 16), height: u32(data, 20), bitDepth: data[24] ?? 0, colourType: data[25] ?? 0, interlace: data[28] ?? 0, iccProfile: false };
  // Walk the chunks (length, type, data, CRC) up to the first IDAT: iCCP must come before it.
  for (let at = 8; at + 8 <= data.length; ) {
    const type = chunkType(data, at + 4);
    if (type === "IDAT" || type === "IEND") break;
    if (type === "iCCP") h.iccProfile = true;
    at += 12 + u32(data, at);
  }
  return h;
}

/**
 * Whether `decodePlainPng` gives the same pixels libvips would for this header, safely.
 * Interlaced PNGs are left to libvips: pngjs inflates them without an output limit, so a small
 * file could expand to gigabytes on the calling thread (for the others it stops at the size the
 * header declares).
 */
export function isPlainPng(h: PngHeader): boolean {
  return h.bitDepth <= 8 && !h.iccProfile && h.interlace === 0 && [0, 2, 3, 4, 6].includes(h.colourType);
}

/**
 * Decodes a plain PNG to what libvips hands back after removeAlpha(): one channel for greyscale
 * PNGs, three for colour and palette ones, alpha dropped. Throws whatever pngjs throws on a
 * broken file (the caller falls back to libvips, which names the problem). `h`: the header, when
 * the caller has already read it.
 */
export function decodePlainPng(data: Uint8Array, h: PngHeader | null = pngHeader(data)): RawImage {
  if (h === null || !isPlainPng(h)) throw new Error("not a plain 8-bit PNG (non-interlaced, without an ICC profile)");
  // pngjs always returns 8-bit RGBA (grey expanded to three equal bands, palette looked up).
  const { width, height, data: rgba } = pngjs.PNG.sync.read(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  const n = width * height;
  if (rgba.length !== n * 4) throw new Error(`pngjs returned ${rgba.length} bytes for ${width}x${height} RGBA`);
  const grey = h.colourType === 0 || h.colourType === 4;
  const channels = grey ? 1 : 3;
  const pixels = new Uint8Array(n * channels);
  if (grey) {
    for (let i = 0; i < n; i++) pixels[i] = rgba[4 * i] ?? 0;
  } else {
    for (let i = 0; i < n; i++) {
      pixels[3 * i] = rgba[4 * i] ?? 0;
      pixels[3 * i + 1] = rgba[4 * i + 1] ?? 0;
      pixels[3 * i + 2] = rgba[4 * i + 2] ?? 0;
    }
  }
  return { width, height, channels, pixels };
}
