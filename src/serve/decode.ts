// Decoding one uploaded image to the model's input, as `scan` and Detector.score do (same
// decodeImage: sRGB, alpha dropped, antialiased bilinear resize, exact luma), behind a pixel
// limit checked from the header alone: a small file that claims 20000×20000 pixels (a
// decompression bomb) is refused before any pixel is decoded.
import sharp from "sharp";
import { decodeImage } from "../data/image-decode.js";
import { decodePnm } from "../data/ppm.js";
import { errorMessage } from "../data/errors.js";
import { ServeError } from "./errors.js";

export interface ModelInput {
  height: number;
  width: number;
  channels: 1 | 3;
}

function isPnm(b: Uint8Array): boolean {
  return b[0] === 0x50 && (b[1] === 0x35 || b[1] === 0x36);
}

/** Width and height from the header only (no pixel decoding). */
async function headerSize(data: Uint8Array, name: string, maxPixels: number): Promise<{ width: number; height: number }> {
  if (isPnm(data)) {
    try {
      // decodePnm reads the header and checks the length without copying pixels.
      const img = decodePnm(data, name);
      return { width: img.width, height: img.height };
    } catch (e) {
      throw new ServeError(400, "undecodable_image", `${name}: ${errorMessage(e)}`);
    }
  }
  try {
    // metadata() parses the header; limitInputPixels also makes libvips refuse oversized inputs itself.
    const m = await sharp(data, { limitInputPixels: maxPixels, failOn: "error" }).metadata();
    if (!m.width || !m.height) throw new Error("no image dimensions in the header");
    return { width: m.width, height: m.height };
  } catch (e) {
    const msg = errorMessage(e);
    if (/pixel limit/i.test(msg)) throw new ServeError(413, "too_many_pixels", `${name}: the image has more than ${maxPixels} pixels (--max-pixels)`);
    throw new ServeError(400, "not_an_image", `${name}: not a supported image (PNG, JPEG, WebP, GIF, TIFF, PPM/PGM): ${msg}`);
  }
}

/** Decodes `data` to uint8 HWC at the model's size and channel count, or throws a 4xx ServeError. */
export async function decodeForModel(data: Uint8Array, name: string, target: ModelInput, maxPixels: number): Promise<Uint8Array> {
  if (data.length === 0) throw new ServeError(400, "empty_image", `${name}: empty (0 bytes)`);
  const { width, height } = await headerSize(data, name, maxPixels);
  if (width * height > maxPixels) {
    throw new ServeError(413, "too_many_pixels", `${name}: ${width}x${height} = ${width * height} pixels exceeds the limit of ${maxPixels} (--max-pixels)`);
  }
  try {
    const img = await decodeImage(data, name, { size: { height: target.height, width: target.width }, channels: target.channels });
    return img.pixels;
  } catch (e) {
    throw new ServeError(400, "undecodable_image", `${name}: ${errorMessage(e)}`);
  }
}
