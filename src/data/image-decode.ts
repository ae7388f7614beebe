// Decoding and resizing of single images. Resizing uses sharp (libvips) with kernel "linear": when shrinking,
// libvips widens the triangle filter by the scale factor, i.e. antialiased bilinear, close to
// torchvision's Resize(antialias=True) / PIL BILINEAR; when enlarging it is plain bilinear. The aspect ratio is
// not kept (fit "fill"), as datasets resized to a fixed square input usually are.
// Channel conversion is done here rather than by libvips so it is exact and matches PIL's convert("L"):
// L = (299 R + 587 G + 114 B) / 1000, rounded; grey to RGB copies the value; alpha is dropped (PIL convert("RGB")).

import sharp, { type Metadata } from "sharp";
import type { ChannelCount, ImageSize } from "./dataset.js";
import { DatasetFormatError, errorMessage } from "./errors.js";
import { ImageDecodeError } from "./image-error.js";
import { decodePnm, pnmHeader, pnmImageStarts, type RawImage } from "./ppm.js";
import {
  decodePlainPng,
  isPlainPng,
  pngFrameCount,
  pngHeader,
  pngHeaderProblem,
  pngProblem,
  type PngHeader,
} from "./png-decode.js";
import { ApngError, forEachApngFrame, type RgbaImage } from "./apng.js";

/**
 * What to do with an image of several frames (an animated GIF, WebP or PNG, a multi-page TIFF, a
 * multi-image PPM): "refuse" it (judging it by one frame would let a trigger hide in another), or
 * decode "all" frames, for the caller to score each one.
 */
export type FramePolicy = "refuse" | "all";
export const FRAME_POLICIES: readonly FramePolicy[] = ["refuse", "all"];

export interface DecodeTarget {
  /** Leave the decoded size alone when absent. */
  size?: ImageSize;
  channels: ChannelCount;
  /**
   * Largest width × height accepted, checked from the header before any pixel is decoded (default
   * MAX_IMAGE_PIXELS). With frames "all" it bounds the frames' pixels together.
   */
  maxPixels?: number;
  /** Default "refuse". */
  frames?: FramePolicy;
  /** Most frames decoded with frames "all" (default MAX_FRAMES). */
  maxFrames?: number;
  /**
   * Called once (with the first frame) when the model will not see the image as it is: another
   * size, colour pixels for a grey model, or an alpha channel dropped. A caller may want to say so:
   * a 224x224 colour photo read by a 28x28 grey model is mostly lost. Lossless changes are not
   * reported: grey pixels stored as RGB read as grey, and grey read by a colour model.
   */
  onConversion?: (c: ImageConversion) => void;
}

/** What an image is, as far as its conversion to a model's input goes. */
export interface ImageShape {
  width: number;
  height: number;
  colour: "grey" | "grey+alpha" | "RGB" | "RGBA";
}

/** An image converted to a model's input: what it was and what the model reads. */
export interface ImageConversion {
  from: ImageShape;
  to: ImageShape;
}

/** "224x224 RGB". */
export function shapeText(s: ImageShape): string {
  return `${s.width}x${s.height} ${s.colour}`;
}

function colourWord(colourChannels: 1 | 3, alpha: boolean): ImageShape["colour"] {
  return colourChannels === 1 ? (alpha ? "grey+alpha" : "grey") : alpha ? "RGBA" : "RGB";
}

/**
 * The conversion decoding an image of this shape to `target` makes, or null when none loses
 * anything: same size, no alpha, and the same colour or grey read by a colour model.
 */
export function conversionOf(
  p: Pick<ImageProbe, "width" | "height" | "colourChannels" | "alpha">,
  target: Pick<DecodeTarget, "size" | "channels">,
): ImageConversion | null {
  const to = {
    width: target.size?.width ?? p.width,
    height: target.size?.height ?? p.height,
    colour: colourWord(target.channels === 1 ? 1 : 3, false),
  };
  const from = { width: p.width, height: p.height, colour: colourWord(p.colourChannels, p.alpha) };
  const sameColour = from.colour === to.colour || (from.colour === "grey" && to.colour === "RGB");
  return from.width === to.width && from.height === to.height && sameColour ? null : { from, to };
}

/** Whether every pixel of a 3- or 4-channel image has R = G = B (a grey picture stored as colour). */
function greyContent(img: RawImage): boolean {
  const c = img.channels;
  if (c < 3) return true;
  const px = img.pixels;
  for (let i = 0; i + 2 < px.length; i += c) if (px[i] !== px[i + 1] || px[i] !== px[i + 2]) return false;
  return true;
}

/**
 * 50 megapixels (a large camera photo; 150 MB decoded as RGB). libvips' own default, 16383², let
 * a 261 KB PNG cost 1 GB of memory; classifier inputs are far smaller than either.
 */
export const MAX_IMAGE_PIXELS = 50_000_000;

/** Most frames one image may have when every frame is scored (each is one more input to score). */
export const MAX_FRAMES = 256;

let sharpConfigured = false;
function configureSharp(): void {
  if (sharpConfigured) return;
  sharpConfigured = true;
  // Each dataset image is decoded exactly once, so libvips' operation cache only costs memory.
  sharp.cache(false);
}

const PNM_EXT = /\.(ppm|pgm|pnm)$/i;
export const IMAGE_EXT = /\.(jpe?g|png|ppm|pgm|pnm|webp|tiff?|gif)$/i;
export const ACCEPTED_FORMATS = "PNG, JPEG, WebP, GIF, TIFF or PPM/PGM";

export function isImageFile(name: string): boolean {
  return IMAGE_EXT.test(name);
}

export type ImageFormat = "png" | "jpeg" | "webp" | "gif" | "tiff" | "pnm";
const LIBVIPS_FORMATS = new Set<string>(["jpeg", "webp", "gif", "tiff"]);
const FORMAT_NAMES: Record<ImageFormat, string> = {
  png: "PNG",
  jpeg: "JPEG",
  webp: "WebP",
  gif: "GIF",
  tiff: "TIFF",
  pnm: "PPM/PGM",
};

/** What the header says, before any pixel is decoded. */
export interface ImageProbe {
  format: ImageFormat;
  /** Of the first frame (the canvas of an animation). */
  width: number;
  height: number;
  /** Images a viewer may show: animation frames, TIFF pages, the images of a multi-image PPM. */
  frames: number;
  /** Pixels decoding will produce at full size: width × height, summed over the frames decoded. */
  pixels: number;
  /** Whether libvips can decode and resize in one pipeline with the same pixels as in two steps. */
  onePass: boolean;
  /** Grey (1) or colour (3), as the header declares it (a palette is colour). */
  colourChannels: 1 | 3;
  /** Whether the header declares transparency (an alpha channel, or a PNG's tRNS). */
  alpha: boolean;
  /** PNG only: its header. */
  png?: PngHeader;
}

function tooManyPixels(file: string, what: string, pixels: number, maxPixels: number): ImageDecodeError {
  return new ImageDecodeError("too_many_pixels", file, `${what} = ${pixels} pixels exceeds the limit of ${maxPixels}`);
}

/** The format the first bytes announce, for messages about bytes libvips could not read. */
function sniff(data: Uint8Array): ImageFormat | null {
  const b = (i: number): number => data[i] ?? -1;
  if (b(0) === 0xff && b(1) === 0xd8 && b(2) === 0xff) return "jpeg";
  if (b(0) === 0x47 && b(1) === 0x49 && b(2) === 0x46 && b(3) === 0x38) return "gif";
  if (
    b(0) === 0x52 &&
    b(1) === 0x49 &&
    b(2) === 0x46 &&
    b(3) === 0x46 &&
    b(8) === 0x57 &&
    b(9) === 0x45 &&
    b(10) === 0x42 &&
    b(11) === 0x50
  )
    return "webp";
  if (
    (b(0) === 0x49 && b(1) === 0x49 && b(2) === 0x2a && b(3) === 0) ||
    (b(0) === 0x4d && b(1) === 0x4d && b(2) === 0 && b(3) === 0x2a)
  )
    return "tiff";
  return null;
}

/** A libvips message on one short line. */
function vipsMessage(e: unknown): string {
  const m = errorMessage(e).replace(/\s+/g, " ").trim();
  return m.length > 300 ? `${m.slice(0, 300)}…` : m;
}

function firstBytes(data: Uint8Array): string {
  return Array.from(data.subarray(0, 8), (v) => v.toString(16).padStart(2, "0")).join(" ");
}

function notAnImage(data: Uint8Array, file: string): ImageDecodeError {
  return new ImageDecodeError(
    "not_an_image",
    file,
    `cannot decode: not a supported image: the first bytes (${firstBytes(data)}) are no ${ACCEPTED_FORMATS} signature`,
  );
}

function corrupt(file: string, format: ImageFormat, problem: string, cause?: unknown): ImageDecodeError {
  return new ImageDecodeError(
    "corrupt",
    file,
    `cannot decode: a corrupt ${FORMAT_NAMES[format]}: ${problem}`,
    cause === undefined ? undefined : { cause },
  );
}

/** ppm.ts's own words (its messages, "ppm: FILE: ...", are what dataset users see), with a code. */
function pnmError(file: string, e: unknown): ImageDecodeError {
  const problem = e instanceof DatasetFormatError ? e.problem : errorMessage(e);
  const code = /exceeds the limit/.test(problem)
    ? "too_many_pixels"
    : /not supported|unsupported magic/.test(problem)
      ? "unsupported_format"
      : "corrupt";
  return new ImageDecodeError(code, file, problem, { cause: e, reader: "ppm" });
}

function frameWord(format: ImageFormat): string {
  return format === "tiff" ? "pages" : format === "pnm" ? "images" : "frames";
}

function multiFrameKind(p: ImageProbe): string {
  return p.format === "tiff"
    ? "a multi-page TIFF"
    : p.format === "pnm"
      ? "a multi-image PPM/PGM"
      : `an animated ${FORMAT_NAMES[p.format]}`;
}

function multiFrame(file: string, p: ImageProbe): ImageDecodeError {
  return new ImageDecodeError(
    "multi_frame",
    file,
    `${multiFrameKind(p)} with ${p.frames} ${frameWord(p.format)}: multi-frame images are refused, since judging one frame would let another carry a trigger; --frames all (library: frames "all") scores every frame`,
  );
}

/**
 * Reads what the header declares (format, size, frames) and applies the limits and the frame
 * policy, before any pixel is decoded. Throws an ImageDecodeError naming `file` and the problem.
 */
export async function probeImage(
  data: Uint8Array,
  file: string,
  o: Omit<DecodeTarget, "size" | "channels"> = {},
): Promise<ImageProbe> {
  const maxPixels = o.maxPixels ?? MAX_IMAGE_PIXELS;
  const policy = o.frames ?? "refuse";
  const maxFrames = o.maxFrames ?? MAX_FRAMES;
  if (data.length === 0) throw new ImageDecodeError("empty", file, "empty (0 bytes)");
  const probe = await readHeader(data, file, maxPixels);
  const sizeText = `${probe.width}x${probe.height}`;
  if (probe.width * probe.height > maxPixels)
    throw tooManyPixels(file, sizeText, probe.width * probe.height, maxPixels);
  if (probe.frames > 1) {
    if (policy === "refuse") throw multiFrame(file, probe);
    if (probe.frames > maxFrames)
      throw new ImageDecodeError(
        "too_many_frames",
        file,
        `${multiFrameKind(probe)} with ${probe.frames} ${frameWord(probe.format)}; at most ${maxFrames} are scored per image`,
      );
    probe.pixels =
      probe.format === "tiff" ? await tiffPixels(data, probe.frames) : probe.width * probe.height * probe.frames;
    if (probe.pixels > maxPixels)
      throw tooManyPixels(file, `${probe.frames} ${frameWord(probe.format)} of ${sizeText}`, probe.pixels, maxPixels);
  }
  return probe;
}

async function readHeader(data: Uint8Array, file: string, maxPixels: number): Promise<ImageProbe> {
  const png = pngHeader(data);
  if (png !== null) {
    const problem = pngHeaderProblem(png);
    if (problem !== null) throw corrupt(file, "png", problem);
    const frames = pngFrameCount(png);
    // libvips reads a PNG of 8 bits or less without alpha to the same pixels whether it resizes in the same pipeline or not.
    const onePass =
      png.bitDepth <= 8 &&
      (png.colourType === 0 || png.colourType === 2 || png.colourType === 3) &&
      !png.transparency &&
      frames === 1;
    const colourChannels = png.colourType === 0 || png.colourType === 4 ? 1 : 3;
    const alpha = png.colourType === 4 || png.colourType === 6 || png.transparency;
    return {
      format: "png",
      width: png.width,
      height: png.height,
      frames,
      pixels: png.width * png.height,
      onePass,
      colourChannels,
      alpha,
      png,
    };
  }
  if ((data[0] === 0x50 && data[1] !== undefined && data[1] >= 0x31 && data[1] <= 0x37) || PNM_EXT.test(file)) {
    try {
      const starts = pnmImageStarts(data, file, { maxPixels });
      const first = pnmHeader(data, file, { maxPixels });
      return {
        format: "pnm",
        width: first.width,
        height: first.height,
        frames: starts.length,
        pixels: first.width * first.height,
        onePass: false,
        colourChannels: first.channels,
        alpha: false,
      };
    } catch (e) {
      throw pnmError(file, e);
    }
  }
  configureSharp();
  let meta: Metadata;
  try {
    meta = await sharp(data).metadata();
  } catch (e) {
    const known = sniff(data);
    if (known === null) throw notAnImage(data, file);
    throw corrupt(file, known, vipsMessage(e), e);
  }
  const format = meta.format as string;
  if (!LIBVIPS_FORMATS.has(format)) {
    throw new ImageDecodeError(
      "unsupported_format",
      file,
      `a ${format.toUpperCase()} image; only ${ACCEPTED_FORMATS} images are accepted`,
    );
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const f = format as ImageFormat;
  if (width < 1 || height < 1) throw corrupt(file, f, `its header declares ${width}x${height} pixels`);
  const frames = Math.max(1, meta.pages ?? 1);
  // The header read is the first page's: a TIFF's later pages may have alpha or 16 bits where it has not.
  const onePass = f !== "jpeg" && meta.depth === "uchar" && !meta.hasAlpha && (f !== "tiff" || frames === 1);
  const alpha = meta.hasAlpha === true;
  const colourChannels = (meta.channels ?? 3) - (alpha ? 1 : 0) <= 1 || meta.space === "b-w" ? 1 : 3;
  return { format: f, width, height, frames, pixels: width * height, onePass, colourChannels, alpha };
}

/** The pages of a TIFF may differ in size: their pixels, each page's header read. */
async function tiffPixels(data: Uint8Array, pages: number): Promise<number> {
  let total = 0;
  for (let page = 0; page < pages; page++) {
    const m = await sharp(data, { page }).metadata();
    total += (m.width ?? 0) * (m.height ?? 0);
  }
  return total;
}

/**
 * Decodes JPEG/PNG/WebP/TIFF/GIF via sharp (small plain PNGs via pngjs) and binary PPM/PGM in TS,
 * then resizes and converts channels. An image of several frames is refused (ImageDecodeError
 * "multi_frame"); decodeImageFrames decodes each of them.
 */
export async function decodeImage(data: Uint8Array, file: string, target: DecodeTarget): Promise<RawImage> {
  const [img] = await decodeImageFrames(data, file, { ...target, frames: "refuse" });
  return img as RawImage;
}

/**
 * Decodes every frame the policy lets through (one for a single-frame image), each resized to
 * `target.size` and converted to `target.channels` as soon as it is decoded, so only one frame
 * exists at full size at a time. `probe`: the header, when the caller has read it already.
 */
export async function decodeImageFrames(
  data: Uint8Array,
  file: string,
  target: DecodeTarget,
  probe?: ImageProbe,
): Promise<RawImage[]> {
  const maxPixels = target.maxPixels ?? MAX_IMAGE_PIXELS;
  const p = probe ?? (await probeImage(data, file, target));
  if (p.frames > 1 && (target.frames ?? "refuse") === "refuse") throw multiFrame(file, p);
  let reported = target.onConversion === undefined;
  const finish = async (img: RawImage): Promise<RawImage> => {
    const sized =
      target.size && (img.width !== target.size.width || img.height !== target.size.height)
        ? await resizeRaw(img, target.size, file)
        : img;
    if (!reported) {
      reported = true;
      // A grey model reading colour pixels loses their colour, unless they are grey already.
      const colourChannels =
        p.colourChannels === 3 && target.channels === 1 && greyContent(sized) ? 1 : p.colourChannels;
      const c = conversionOf({ ...p, colourChannels }, target);
      if (c) target.onConversion?.(c);
    }
    return convertChannels(sized, target.channels);
  };
  if (p.format === "pnm") {
    const starts = p.frames > 1 ? pnmImageStarts(data, file, { maxPixels }) : [0];
    const out: RawImage[] = [];
    for (const at of starts) {
      let img: RawImage;
      try {
        img = decodePnm(data, file, { maxPixels }, at);
      } catch (e) {
        throw pnmError(file, e);
      }
      out.push(await finish(img));
    }
    return out;
  }
  if (p.format === "png" && p.frames > 1) return decodeApngFrames(data, file, p.frames, maxPixels, finish);
  if (p.format === "png") {
    const fast = smallPlainPng(data, file, p);
    if (fast !== null) return [await finish(fast)];
  }
  const out: RawImage[] = [];
  for (let page = 0; page < p.frames; page++) {
    const img = await decodeWithLibvips(data, file, p, p.frames > 1 ? page : null, maxPixels, target);
    out.push(await finish(img));
  }
  return out;
}

/**
 * Images up to this size that are plain PNGs are decoded on the calling thread (png-decode.ts):
 * there libvips' fixed cost per call dominates. Larger ones go to libvips, off the thread, so a
 * big upload never blocks the service's event loop.
 */
export const FAST_PNG_MAX_PIXELS = 256 * 256;

/** A small plain PNG decoded on this thread (null: not one, or pngjs could not read it — libvips decides then). */
function smallPlainPng(data: Uint8Array, file: string, p: ImageProbe): RawImage | null {
  const h = p.png;
  if (h === undefined || !isPlainPng(h) || h.width * h.height > FAST_PNG_MAX_PIXELS) return null;
  try {
    return checkedRaw(decodePlainPng(data, h), file);
  } catch {
    return null;
  }
}

/**
 * One frame (`page`; null: the only one) through libvips. Where the pixels are the same either way
 * (onePass), it decodes and resizes in one pipeline, which streams: a 5000x5000 PNG shrunk to
 * 28x28 never exists at full size. Otherwise (alpha, 16 bits, JPEG) the resize runs on the decoded
 * image in a second step: one pipeline would premultiply alpha, resize 16-bit samples or shrink a
 * JPEG on load, and the pixels would differ from decode-then-resize (torchvision's order).
 */
async function decodeWithLibvips(
  data: Uint8Array,
  file: string,
  p: ImageProbe,
  page: number | null,
  maxPixels: number,
  target: DecodeTarget,
): Promise<RawImage> {
  configureSharp();
  try {
    let pipeline = sharp(data, {
      failOn: "error",
      limitInputPixels: maxPixels,
      ...(page !== null ? { page, pages: 1 } : {}),
    })
      .removeAlpha()
      .toColourspace("srgb");
    if (p.onePass && target.size)
      pipeline = pipeline.resize(target.size.width, target.size.height, {
        fit: "fill",
        kernel: "linear",
        fastShrinkOnLoad: false,
      });
    const { data: pixels, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    return checkedRaw({ width: info.width, height: info.height, channels: info.channels, pixels }, file);
  } catch (e) {
    if (e instanceof DatasetFormatError) throw e;
    if (/pixel limit/i.test(errorMessage(e)))
      throw new ImageDecodeError(
        "too_many_pixels",
        file,
        `${page === null ? "the image" : `page ${page}`} has more than ${maxPixels} pixels (${vipsMessage(e)})`,
        { cause: e },
      );
    // libpng says "read error" for any broken PNG; our own walk of its chunks names the problem.
    const detail = p.format === "png" ? (pngProblem(data) ?? vipsMessage(e)) : vipsMessage(e);
    throw corrupt(file, p.format, page === null ? detail : `page ${page}: ${detail}`, e);
  }
}

/** Every image an APNG viewer (or a decoder without APNG support) may show, composited, at the target size. */
async function decodeApngFrames(
  data: Uint8Array,
  file: string,
  frames: number,
  maxPixels: number,
  finish: (img: RawImage) => Promise<RawImage>,
): Promise<RawImage[]> {
  configureSharp();
  const out: RawImage[] = [];
  const rgba = async (png: Uint8Array): Promise<RgbaImage> => {
    const { data: pixels, info } = await sharp(png, { failOn: "error", limitInputPixels: maxPixels })
      .ensureAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 4) throw new ApngError(`a frame decoded to ${info.channels} channels, expected RGBA`);
    return {
      width: info.width,
      height: info.height,
      pixels: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength),
    };
  };
  try {
    await forEachApngFrame(data, rgba, async (canvas) => {
      // The limits were checked against the frames the header chunks announce; a file holding more is refused.
      if (out.length === frames) throw new ApngError(`more frames than the ${frames} its animation chunks announce`);
      out.push(
        await finish(
          convertChannels({ width: canvas.width, height: canvas.height, channels: 4, pixels: canvas.pixels }, 3),
        ),
      );
    });
  } catch (e) {
    if (e instanceof DatasetFormatError) throw e;
    throw corrupt(file, "png", `APNG: ${e instanceof ApngError ? e.message : (pngProblem(data) ?? vipsMessage(e))}`, e);
  }
  return out;
}

export async function resizeRaw(img: RawImage, size: ImageSize, file = "<raw image>"): Promise<RawImage> {
  if (img.width === size.width && img.height === size.height) return img;
  configureSharp();
  const channels = img.channels;
  if (channels !== 1 && channels !== 3)
    throw new Error(`${file}: can only resize 1- or 3-channel images, not ${channels}`);
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
