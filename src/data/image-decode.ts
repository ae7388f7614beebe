// Decoding and resizing of single images. Resizing uses sharp (libvips) with kernel "linear": when shrinking,
// libvips widens the triangle filter by the scale factor, i.e. antialiased bilinear, close to
// torchvision's Resize(antialias=True) / PIL BILINEAR; when enlarging it is plain bilinear. The aspect ratio is
// not kept (fit "fill"), as datasets resized to a fixed square input usually are.
// Channel conversion is done here rather than by libvips so it is exact and matches PIL's convert("L"):
// L = (299 R + 587 G + 114 B) / 1000, rounded; grey to RGB copies the value; alpha is dropped (PIL convert("RGB")).

import sharp from "sharp";
import type { ChannelCount, ImageSize } from "./dataset.js";
import { DatasetFormatError, errorMessage } from "./errors.js";
import { decodePnm, type RawImage } from "./ppm.js";
import { decodePlainPng, isPlainPng, pngHeader } from "./png-decode.js";

export interface DecodeTarget {
  /** Leave the decoded size alone when absent. */
  size?: ImageSize;
  channels: ChannelCount;
  /** Largest width × height accepted, checked from the header before any pixel is decoded (default MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

/**
 * 50 megapixels (a large camera photo; 150 MB decoded as RGB). libvips' own default, 16383², let
 * a 261 KB PNG cost 1 GB of memory; classifier inputs are far smaller than either.
 */
export const MAX_IMAGE_PIXELS = 50_000_000;

let sharpConfigured = false;
function configureSharp(): void {
  if (sharpConfigured) return;
  sharpConfigured = true;
  // Each dataset image is decoded exactly once, so libvips' operation cache only costs memory.
  sharp.cache(false);
}

const PNM_EXT = /\.(ppm|pgm|pnm)$/i;
export const IMAGE_EXT = /\.(jpe?g|png|ppm|pgm|pnm|webp|tiff?|gif)$/i;

export function isImageFile(name: string): boolean {
  return IMAGE_EXT.test(name);
}

/** Decodes JPEG/PNG/WebP/TIFF/GIF via sharp (small plain PNGs via pngjs) and binary PPM/PGM in TS, then resizes and converts channels. */
export async function decodeImage(data: Uint8Array, file: string, target: DecodeTarget): Promise<RawImage> {
  let img: RawImage;
  const maxPixels = target.maxPixels ?? MAX_IMAGE_PIXELS;
  if (PNM_EXT.test(file) || (data[0] === 0x50 && (data[1] === 0x36 || data[1] === 0x35))) {
    img = decodePnm(data, file, { maxPixels });
  } else {
    img = smallPlainPng(data, file, maxPixels) ?? (await decodeWithLibvips(data, file, maxPixels));
  }
  if (target.size && (img.width !== target.size.width || img.height !== target.size.height)) {
    img = await resizeRaw(img, target.size, file);
  }
  return convertChannels(img, target.channels);
}

/**
 * Images up to this size that are plain PNGs are decoded on the calling thread (png-decode.ts):
 * there libvips' fixed cost per call dominates. Larger ones go to libvips, off the thread, so a
 * big upload never blocks the service's event loop.
 */
export const FAST_PNG_MAX_PIXELS = 256 * 256;

/** A small plain PNG decoded on this thread (null: not one, or pngjs could not read it — libvips decides then). */
function smallPlainPng(data: Uint8Array, file: string, maxPixels: number): RawImage | null {
  const h = pngHeader(data);
  if (h === null || !isPlainPng(h)) return null;
  if (h.width * h.height > maxPixels) {
    throw new DatasetFormatError("image", file, `${h.width}x${h.height} = ${h.width * h.height} pixels exceeds the limit of ${maxPixels}`);
  }
  if (h.width * h.height > FAST_PNG_MAX_PIXELS) return null;
  try {
    return checkedRaw(decodePlainPng(data, h), file);
  } catch {
    return null;
  }
}

async function decodeWithLibvips(data: Uint8Array, file: string, maxPixels: number): Promise<RawImage> {
  configureSharp();
  try {
    const { data: pixels, info } = await sharp(data, { failOn: "error", limitInputPixels: maxPixels })
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    return checkedRaw({ width: info.width, height: info.height, channels: info.channels, pixels }, file);
  } catch (e) {
    if (e instanceof DatasetFormatError) throw e;
    throw new DatasetFormatError("image", file, `cannot decode: ${errorMessage(e)}`, { cause: e });
  }
}

export async function resizeRaw(img: RawImage, size: ImageSize, file = "<raw image>"): Promise<RawImage> {
  if (img.width === size.width && img.height === size.height) return img;
  configureSharp();
  const channels = img.channels;
  if (channels !== 1 && channels !== 3) throw new Error(`${file}: can only resize 1- or 3-channel images, not ${channels}`);
  try {
    const { data, info } = await sharp(img.pixels, { raw: { width: img.width, height: img.height, channels } })
      .resize(size.width, size.height, { fit: "fill", kernel: "linear", fastShrinkOnLoad: false })
      .raw()
      .toBuffer({ resolveWithObject: true });
    // sharp hands grey input back as sRGB (three equal bands), which the luma conversion maps back exactly.
    const out = checkedRaw({ width: info.width, height: info.height, channels: info.channels, pixels: data }, file);
    return info.channels === channels ? out : convertChannels(out, channels);
  } catch (e) {
    if (e instanceof DatasetFormatError) throw e;
    throw new DatasetFormatError("image", file, `cannot resize to ${size.width}x${size.height}: ${errorMessage(e)}`, {
      cause: e,
    });
  }
}

/** A plain Uint8Array copy: Buffer.prototype.slice shares memory, and a view would pin its (large) parent buffer. */
export function copyBytes(src: Uint8Array): Uint8Array {
  return new Uint8Array(src);
}

export function convertChannels(img: RawImage, channels: ChannelCount): RawImage {
  const from = img.channels;
  if (from === channels) return img;
  const n = img.width * img.height;
  const src = img.pixels;
  const out = new Uint8Array(n * channels);
  if (channels === 3 && (from === 1 || from === 2)) {
    for (let i = 0; i < n; i++) {
      const v = src[i * from] ?? 0;
      out[3 * i] = v;
      out[3 * i + 1] = v;
      out[3 * i + 2] = v;
    }
  } else if (channels === 1 && (from === 3 || from === 4)) {
    for (let i = 0; i < n; i++) {
      const r = src[i * from] ?? 0;
      const g = src[i * from + 1] ?? 0;
      const b = src[i * from + 2] ?? 0;
      out[i] = Math.floor((r * 299 + g * 587 + b * 114 + 500) / 1000);
    }
  } else if (channels === 3 && from === 4) {
    for (let i = 0; i < n; i++) {
      out[3 * i] = src[4 * i] ?? 0;
      out[3 * i + 1] = src[4 * i + 1] ?? 0;
      out[3 * i + 2] = src[4 * i + 2] ?? 0;
    }
  } else if (channels === 1 && from === 2) {
    for (let i = 0; i < n; i++) out[i] = src[2 * i] ?? 0;
  } else {
    throw new Error(`cannot convert ${from} channels to ${channels}`);
  }
  return { width: img.width, height: img.height, channels, pixels: out };
}

function checkedRaw(img: RawImage, file: string): RawImage {
  const want = img.width * img.height * img.channels;
  if (img.pixels.length !== want) {
    throw new DatasetFormatError("image", file, `decoder returned ${img.pixels.length} bytes, expected ${want}`);
  }
  return img;
}
