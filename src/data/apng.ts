// The frames of an animated PNG (APNG) as a viewer shows them. libvips and pngjs read only the
// default image (IDAT) and ignore the animation chunks, so an APNG whose default image is clean
// and whose later frames carry a trigger would be judged by the clean one. Each frame's data is
// rewrapped as a standalone PNG (the file's IHDR at the frame's size, its palette and colour
// chunks, the frame's data as IDAT), decoded by the caller's PNG decoder, and composited on the
// canvas by the APNG rules (blend SOURCE/OVER, dispose NONE/BACKGROUND/PREVIOUS).
import { isPngSignature, pngCrc, u32 } from "./png-decode.js";
import { BadExpertError } from "../util/errors.js";

/** The canvas after one frame: RGBA, width × height × 4 bytes. */
export interface RgbaImage {
  width: number;
  height: number;
  pixels: Uint8Array;
}

interface FrameControl {
  width: number;
  height: number;
  x: number;
  y: number;
  dispose: number;
  blend: number;
  /** The frame's compressed data: IDAT payloads, or fdAT payloads without their sequence numbers. */
  data: Uint8Array[];
}

/** Chunks before the image data that a frame needs to decode to the same colours. */
const SHARED = new Set(["PLTE", "tRNS", "gAMA", "cHRM", "sRGB", "iCCP", "sBIT"]);
const DISPOSE_BACKGROUND = 1;
const DISPOSE_PREVIOUS = 2;
const BLEND_SOURCE = 0;
const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  view.setUint32(8 + body.length, pngCrc(out, 4, 8 + body.length));
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Thrown for an APNG whose animation chunks break the format's rules; the message says which. */
export class ApngError extends BadExpertError {
  override name = "ApngError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_INPUT_DECODE", message, options);
  }
}

interface Parsed {
  width: number;
  height: number;
  ihdr: Uint8Array;
  shared: Uint8Array[];
  /** The default image's data when it is not an animation frame (a decoder without APNG support shows it). */
  defaultImage: Uint8Array[] | null;
  frames: FrameControl[];
}

function parse(data: Uint8Array): Parsed {
  if (!isPngSignature(data)) throw new ApngError("not a PNG");
  let ihdr: Uint8Array | null = null;
  const shared: Uint8Array[] = [];
  const frames: FrameControl[] = [];
  const idat: Uint8Array[] = [];
  let idatIsFrame = false;
  let seenIdat = false;
  let expectedSeq = 0;
  let current: FrameControl | null = null;
  let width = 0;
  let height = 0;
  for (let at = 8; at + 12 <= data.length;) {
    const length = u32(data, at);
    const type = String.fromCharCode(...data.subarray(at + 4, at + 8));
    if (at + 12 + length > data.length) throw new ApngError(`chunk ${type} at byte ${at} is truncated`);
    const body = data.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      ihdr = body;
      width = u32(body, 0);
      height = u32(body, 4);
    } else if (type === "fcTL" || type === "fdAT") {
      const seq = u32(body, 0);
      if (seq !== expectedSeq)
        throw new ApngError(`${type} at byte ${at} has sequence number ${seq}, expected ${expectedSeq}`);
      expectedSeq++;
      if (type === "fcTL") {
        if (length !== 26) throw new ApngError(`fcTL at byte ${at} has ${length} bytes, expected 26`);
        current = {
          width: u32(body, 4),
          height: u32(body, 8),
          x: u32(body, 12),
          y: u32(body, 16),
          dispose: body[24] ?? 0,
          blend: body[25] ?? 0,
          data: [],
        };
        const f = current;
        if (f.width < 1 || f.height < 1 || f.x + f.width > width || f.y + f.height > height) {
          throw new ApngError(
            `frame ${frames.length} (${f.width}x${f.height} at ${f.x},${f.y}) does not fit the ${width}x${height} canvas`,
          );
        }
        if (f.dispose > DISPOSE_PREVIOUS || f.blend > 1)
          throw new ApngError(
            `frame ${frames.length} has dispose_op ${f.dispose}, blend_op ${f.blend} (valid: 0-2, 0-1)`,
          );
        if (!seenIdat) {
          if (f.x !== 0 || f.y !== 0 || f.width !== width || f.height !== height)
            throw new ApngError("the first frame is the default image but does not cover the canvas");
          idatIsFrame = true;
        }
        frames.push(f);
      } else {
        if (current === null || !seenIdat) throw new ApngError(`fdAT at byte ${at} belongs to no frame`);
        current.data.push(body.subarray(4));
      }
    } else if (type === "IDAT") {
      seenIdat = true;
      idat.push(body);
      if (idatIsFrame && current !== null) current.data.push(body);
    } else if (type === "IEND") {
      break;
    } else if (!seenIdat && SHARED.has(type)) {
      shared.push(data.subarray(at, at + 12 + length));
    }
    at += 12 + length;
  }
  if (ihdr === null || ihdr.length !== 13) throw new ApngError("no valid IHDR chunk");
  if (frames.length === 0) throw new ApngError("an acTL chunk but no frame (fcTL)");
  for (const [i, f] of frames.entries()) if (f.data.length === 0) throw new ApngError(`frame ${i} has no image data`);
  return { width, height, ihdr, shared, defaultImage: idatIsFrame ? null : idat, frames };
}

/** A standalone PNG of one frame: the file's IHDR at the frame's size, the shared chunks, the frame's data. */
function framePng(p: Parsed, width: number, height: number, data: readonly Uint8Array[]): Uint8Array {
  const ihdr = new Uint8Array(p.ihdr);
  new DataView(ihdr.buffer).setUint32(0, width);
  new DataView(ihdr.buffer).setUint32(4, height);
  return concat([
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    ...p.shared,
    chunk("IDAT", concat(data)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/** `src` over `dst` at (x, y), 8-bit RGBA (the APNG spec's OVER). */
function blendOver(canvas: RgbaImage, src: RgbaImage, x: number, y: number): void {
  for (let r = 0; r < src.height; r++) {
    for (let c = 0; c < src.width; c++) {
      const s = 4 * (r * src.width + c);
      const d = 4 * ((y + r) * canvas.width + x + c);
      const sa = src.pixels[s + 3] ?? 0;
      if (sa === 0) continue;
      if (sa === 255) {
        canvas.pixels.set(src.pixels.subarray(s, s + 4), d);
        continue;
      }
      const u = sa * 255;
      const v = (255 - sa) * (canvas.pixels[d + 3] ?? 0);
      const al = u + v;
      for (let k = 0; k < 3; k++)
        canvas.pixels[d + k] = Math.round(((src.pixels[s + k] ?? 0) * u + (canvas.pixels[d + k] ?? 0) * v) / al);
      canvas.pixels[d + 3] = Math.round(al / 255);
    }
  }
}

function copyRegion(canvas: RgbaImage, src: RgbaImage, x: number, y: number): void {
  for (let r = 0; r < src.height; r++)
    canvas.pixels.set(
      src.pixels.subarray(4 * r * src.width, 4 * (r + 1) * src.width),
      4 * ((y + r) * canvas.width + x),
    );
}

function saveRegion(canvas: RgbaImage, f: FrameControl): RgbaImage {
  const out = new Uint8Array(4 * f.width * f.height);
  for (let r = 0; r < f.height; r++)
    out.set(
      canvas.pixels.subarray(4 * ((f.y + r) * canvas.width + f.x), 4 * ((f.y + r) * canvas.width + f.x + f.width)),
      4 * r * f.width,
    );
  return { width: f.width, height: f.height, pixels: out };
}

/** What the caller decodes a standalone PNG with: 8-bit RGBA of exactly the PNG's size. */
export type DecodeRgba = (png: Uint8Array) => Promise<RgbaImage>;

/**
 * Calls `emit` with each image a viewer may show, in order: the default image first when it is
 * not part of the animation, then the canvas after each animation frame. The canvas buffer is
 * reused: `emit` must copy or consume it before returning.
 */
export async function forEachApngFrame(
  data: Uint8Array,
  decode: DecodeRgba,
  emit: (img: RgbaImage, index: number) => Promise<void>,
): Promise<number> {
  const p = parse(data);
  let index = 0;
  if (p.defaultImage !== null)
    await emit(await decodeChecked(decode, framePng(p, p.width, p.height, p.defaultImage), p.width, p.height), index++);
  const canvas: RgbaImage = { width: p.width, height: p.height, pixels: new Uint8Array(4 * p.width * p.height) };
  for (const [i, f] of p.frames.entries()) {
    const previous = f.dispose === DISPOSE_PREVIOUS && i > 0 ? saveRegion(canvas, f) : null;
    const img = await decodeChecked(decode, framePng(p, f.width, f.height, f.data), f.width, f.height);
    if (f.blend === BLEND_SOURCE) copyRegion(canvas, img, f.x, f.y);
    else blendOver(canvas, img, f.x, f.y);
    await emit(canvas, index++);
    // The first frame's PREVIOUS is treated as BACKGROUND (APNG spec).
    if (f.dispose === DISPOSE_BACKGROUND || (f.dispose === DISPOSE_PREVIOUS && previous === null)) {
      copyRegion(
        canvas,
        { width: f.width, height: f.height, pixels: new Uint8Array(4 * f.width * f.height) },
        f.x,
        f.y,
      );
    } else if (previous !== null) {
      copyRegion(canvas, previous, f.x, f.y);
    }
  }
  return index;
}

async function decodeChecked(decode: DecodeRgba, png: Uint8Array, width: number, height: number): Promise<RgbaImage> {
  const img = await decode(png);
  if (img.width !== width || img.height !== height || img.pixels.length !== 4 * width * height) {
    throw new ApngError(
      `a frame decoded to ${img.width}x${img.height} (${img.pixels.length} bytes), expected ${width}x${height} RGBA`,
    );
  }
  return img;
}
