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
  compression: number;
  filter: number;
  /** Adam7 interlacing (1) or none (0). */
  interlace: number;
  /** An iCCP chunk before the image data. */
  iccProfile: boolean;
  /** A tRNS chunk before the image data (a transparent colour or palette alpha). */
  transparency: boolean;
  /** An APNG's animation control (acTL before the image data); null for a still PNG. */
  animation: PngAnimation | null;
}

export interface PngAnimation {
  /** num_frames of the acTL chunk. */
  declaredFrames: number;
  /** fcTL chunks in the file (a frame each, whatever acTL declares). */
  frameControls: number;
  /** Whether the default image (IDAT) is the animation's first frame (an fcTL precedes it). */
  idatIsFrame: boolean;
}

export function u32(b: Uint8Array, at: number): number {
  return (((b[at] ?? 0) << 24) >>> 0) + ((b[at + 1] ?? 0) << 16) + ((b[at + 2] ?? 0) << 8) + (b[at + 3] ?? 0);
}

function chunkType(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at] ?? 0, b[at + 1] ?? 0, b[at + 2] ?? 0, b[at + 3] ?? 0);
}

export function isPngSignature(data: Uint8Array): boolean {
  return data.length >= 8 && SIGNATURE.every((v, i) => data[i] === v);
}

/**
 * The IHDR fields, whether an ICC profile precedes the image data and the APNG animation, if any;
 * null when `data` is not a PNG with an IHDR. Reads chunk headers only (no CRC, no pixel data).
 */
export function pngHeader(data: Uint8Array): PngHeader | null {
  if (data.length < 33 || !isPngSignature(data) || chunkType(data, 12) !== "IHDR") return null;
  const h: PngHeader = {
    width: u32(data, 16),
    height: u32(data, 20),
    bitDepth: data[24] ?? 0,
    colourType: data[25] ?? 0,
    compression: data[26] ?? 0,
    filter: data[27] ?? 0,
    interlace: data[28] ?? 0,
    iccProfile: false,
    transparency: false,
    animation: null,
  };
  // Walk the chunks (length, type, data, CRC): iCCP and acTL must come before the first IDAT; an
  // APNG's frames (fcTL) are counted through the whole file, since a viewer shows every one of
  // them whatever number acTL declares.
  let seenIdat = false;
  for (let at = 8; at + 8 <= data.length;) {
    const type = chunkType(data, at + 4);
    if (type === "IEND") break;
    if (type === "IDAT") {
      if (h.animation === null) break;
      seenIdat = true;
    } else if (!seenIdat && type === "iCCP") {
      h.iccProfile = true;
    } else if (!seenIdat && type === "tRNS") {
      h.transparency = true;
    } else if (!seenIdat && type === "acTL" && h.animation === null) {
      h.animation = { declaredFrames: u32(data, at + 8), frameControls: 0, idatIsFrame: false };
    } else if (type === "fcTL" && h.animation !== null) {
      if (!seenIdat) h.animation.idatIsFrame = true;
      h.animation.frameControls++;
    }
    at += 12 + u32(data, at);
  }
  return h;
}

/**
 * The distinct images a viewer may show for this PNG: 1 for a still PNG; for an APNG every
 * animation frame, plus the default image when it is not the first frame (decoders without APNG
 * support show it, APNG viewers never do).
 */
export function pngFrameCount(h: PngHeader): number {
  const a = h.animation;
  if (a === null) return 1;
  return Math.max(a.declaredFrames, a.frameControls, 1) + (a.idatIsFrame ? 0 : 1);
}

const VALID_DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};

/** What is impossible in the IHDR fields (PNG spec, 11.2.2), or null. */
export function pngHeaderProblem(h: PngHeader): string | null {
  if (h.width < 1 || h.height < 1)
    return `its header (IHDR) declares ${h.width}x${h.height} pixels; width and height must be at least 1`;
  if (h.width > 0x7fffffff || h.height > 0x7fffffff)
    return `its header (IHDR) declares ${h.width}x${h.height} pixels; the PNG limit is 2^31-1 per side`;
  const depths = VALID_DEPTHS[h.colourType];
  if (depths === undefined)
    return `its header (IHDR) declares colour type ${h.colourType}; valid types are 0, 2, 3, 4 and 6`;
  if (!depths.includes(h.bitDepth))
    return `its header (IHDR) declares bit depth ${h.bitDepth} for colour type ${h.colourType}; valid depths are ${depths.join(", ")}`;
  if (h.compression !== 0 || h.filter !== 0)
    return `its header (IHDR) declares compression method ${h.compression} and filter method ${h.filter}; only 0 and 0 exist`;
  if (h.interlace > 1) return `its header (IHDR) declares interlace method ${h.interlace}; only 0 and 1 exist`;
  return null;
}

let crcTable: Uint32Array | null = null;

/** CRC-32 as PNG chunks use it (ISO 3309), over `data[from, to)`. */
export function pngCrc(data: Uint8Array, from: number, to: number): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = from; i < to; i++) c = (crcTable[(c ^ (data[i] ?? 0)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const hex = (v: number): string => `0x${v.toString(16).padStart(8, "0")}`;

/**
 * What is structurally wrong with a PNG file, in words (a truncated chunk, a bad CRC, impossible
 * header fields, no image data, no end), or null when its structure is sound. Used to explain a
 * decoder's failure: libpng says "read error", pngjs "Unknown error" or "Input Bit Array is empty".
 */
export function pngProblem(data: Uint8Array): string | null {
  if (!isPngSignature(data)) return "not a PNG (no PNG signature)";
  const h = pngHeader(data);
  if (h === null) return "truncated or corrupt: no IHDR chunk right after the signature";
  const header = pngHeaderProblem(h);
  if (header !== null) return header;
  let idat = false;
  for (let at = 8; ;) {
    if (at + 12 > data.length)
      return `truncated: the file ends at byte ${data.length} ${at === data.length ? "without an IEND chunk" : `inside a chunk header (byte ${at})`}`;
    const length = u32(data, at);
    const type = chunkType(data, at + 4);
    const shown = /^[A-Za-z]{4}$/.test(type) ? type : JSON.stringify(type);
    if (length > 0x7fffffff)
      return `chunk ${shown} at byte ${at} declares ${length} bytes, more than the PNG limit of 2^31-1`;
    if (at + 12 + length > data.length)
      return `truncated: chunk ${shown} at byte ${at} declares ${length} bytes, ${Math.max(0, data.length - at - 12)} remain`;
    const stored = u32(data, at + 8 + length);
    const computed = pngCrc(data, at + 4, at + 8 + length);
    if (stored !== computed)
      return `chunk ${shown} at byte ${at} has a bad CRC (stored ${hex(stored)}, computed ${hex(computed)})`;
    if (type === "IDAT") idat = true;
    if (type === "IEND") return idat ? null : "no image data (no IDAT chunk before IEND)";
    at += 12 + length;
  }
}

/**
 * Whether `decodePlainPng` gives the same pixels libvips would for this header, safely.
 * Interlaced PNGs are left to libvips: pngjs inflates them without an output limit, so a small
 * file could expand to gigabytes on the calling thread (for the others it stops at the size the
 * header declares). APNGs are not plain: pngjs would read their default image only.
 */
export function isPlainPng(h: PngHeader): boolean {
  return (
    h.bitDepth <= 8 &&
    !h.iccProfile &&
    h.interlace === 0 &&
    h.animation === null &&
    [0, 2, 3, 4, 6].includes(h.colourType)
  );
}

/**
 * Decodes a plain PNG to what libvips hands back after removeAlpha(): one channel for greyscale
 * PNGs, three for colour and palette ones, alpha dropped. Throws whatever pngjs throws on a
 * broken file (the caller falls back to libvips, which names the problem). `h`: the header, when
 * the caller has already read it.
 */
export function decodePlainPng(data: Uint8Array, h: PngHeader | null = pngHeader(data)): RawImage {
  if (h === null || !isPlainPng(h))
    throw new Error("not a plain 8-bit PNG (non-interlaced, without an ICC profile, not animated)");
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
