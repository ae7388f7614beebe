// Binary Netpbm (P6 colour, P5 grey) decoding in TS: GTSRB ships PPMs, and the format is too simple to be worth
// a native round trip when no resizing is needed.

import { DatasetFormatError } from "./errors.js";

export interface RawImage {
  width: number;
  height: number;
  channels: number;
  /** height*width*channels bytes, HWC. */
  pixels: Uint8Array;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d, 0x0b, 0x0c]);

export interface PnmHeader {
  width: number;
  height: number;
  channels: 1 | 3;
  maxval: number;
  /** Offset of the first pixel byte in the file. */
  pixelStart: number;
  /** Offset just after the last pixel byte: where a following image of a multi-image file starts. */
  end: number;
}

/**
 * The header of the image that starts at byte `at`, checked against the pixel limit and the
 * bytes present, before anything is allocated. `file` only labels errors.
 */
export function pnmHeader(data: Uint8Array, file: string, o: { maxPixels?: number } = {}, at = 0): PnmHeader {
  const fail = (problem: string): never => {
    throw new DatasetFormatError("ppm", file, problem);
  };
  if (data.length - at < 2 || data[at] !== 0x50 /* P */) fail("not a PPM/PGM file (no 'P' magic)");
  const kind = data[at + 1];
  if (kind === 0x33 || kind === 0x32)
    fail(`ASCII ${kind === 0x33 ? "P3" : "P2"} files are not supported, only binary P6/P5`);
  if (kind !== 0x36 && kind !== 0x35)
    fail(`unsupported magic 'P${String.fromCharCode(kind ?? 0x3f)}', expected P6 or P5`);
  const channels = kind === 0x36 ? 3 : 1;

  let pos = at + 2;
  const readHeaderInt = (what: string): number => {
    // Whitespace and '#' comments may separate every header token (OpenCV writes a comment after the magic).
    for (;;) {
      const c = data[pos];
      if (c === undefined) return fail(`header ends before ${what}`);
      if (WS.has(c)) pos++;
      else if (c === 0x23) {
        while (pos < data.length && data[pos] !== 0x0a && data[pos] !== 0x0d) pos++;
      } else break;
    }
    const start = pos;
    let v = 0;
    while (pos < data.length) {
      const c = data[pos] ?? 0;
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      pos++;
    }
    if (pos === start) fail(`bad header: ${what} is not a number`);
    if (pos - start > 9) fail(`bad header: ${what} is too large`);
    return v;
  };

  if (!WS.has(data[at + 2] ?? 0) && data[at + 2] !== 0x23) fail("bad header: no whitespace after the magic number");
  const width = readHeaderInt("width");
  const height = readHeaderInt("height");
  const maxval = readHeaderInt("maxval");
  if (width < 1 || height < 1) fail(`bad header: size ${width}x${height}`);
  // Checked from the header, before anything is allocated.
  if (o.maxPixels !== undefined && width * height > o.maxPixels)
    fail(`${width}x${height} = ${width * height} pixels exceeds the limit of ${o.maxPixels}`);
  if (maxval < 1 || maxval > 255) fail(`maxval ${maxval} is not supported (1..255)`);
  if (!WS.has(data[pos] ?? 0)) fail("bad header: no whitespace after maxval");
  pos++;
  const n = width * height * channels;
  if (data.length - pos < n)
    fail(`truncated: ${width}x${height}x${channels} needs ${n} pixel bytes, found ${data.length - pos}`);
  return { width, height, channels, maxval, pixelStart: pos, end: pos + n };
}

/**
 * Where each image of a file starts: Netpbm lets several images follow one another in one file,
 * and a reader that stops after the first would judge a file by its first image only.
 */
export function pnmImageStarts(data: Uint8Array, file: string, o: { maxPixels?: number } = {}): number[] {
  const starts: number[] = [];
  for (let at = 0; ;) {
    starts.push(at);
    let next = pnmHeader(data, file, o, at).end;
    while (next < data.length && WS.has(data[next] ?? 0)) next++;
    if (data[next] !== 0x50 /* P */ || (data[next + 1] !== 0x35 && data[next + 1] !== 0x36)) return starts;
    at = next;
  }
}

/** The image that starts at byte `at` (default: the first). `file` only labels errors. Returned pixels may share memory with `data`. */
export function decodePnm(data: Uint8Array, file: string, o: { maxPixels?: number } = {}, at = 0): RawImage {
  const h = pnmHeader(data, file, o, at);
  const n = h.end - h.pixelStart;
  let pixels = data.subarray(h.pixelStart, h.end);
  if (h.maxval !== 255) {
    const scaled = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = pixels[i] ?? 0;
      if (v > h.maxval) throw new DatasetFormatError("ppm", file, `sample ${v} exceeds maxval ${h.maxval}`);
      scaled[i] = Math.round((v * 255) / h.maxval);
    }
    pixels = scaled;
  }
  return { width: h.width, height: h.height, channels: h.channels, pixels };
}

/** Binary PPM/PGM bytes for tests and debugging dumps. */
export function encodePnm(img: RawImage): Uint8Array {
  if (img.channels !== 1 && img.channels !== 3) throw new Error(`PNM needs 1 or 3 channels, got ${img.channels}`);
  const header = new TextEncoder().encode(`${img.channels === 3 ? "P6" : "P5"}\n${img.width} ${img.height}\n255\n`);
  const out = new Uint8Array(header.length + img.pixels.length);
  out.set(header, 0);
  out.set(img.pixels, header.length);
  return out;
}
