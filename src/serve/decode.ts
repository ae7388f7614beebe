// Decoding one uploaded image to the model's input, as `scan` and Detector.score do (same
// decodeImage: sRGB, alpha dropped, antialiased bilinear resize, exact luma), behind a pixel
// limit checked from the header alone: a small file that claims 20000×20000 pixels (a
// decompression bomb) is refused before any pixel is decoded.
import { decodeImage } from "../data/image-decode.js";
import { errorMessage } from "../data/errors.js";
import { ServeError } from "./errors.js";

export interface ModelInput {
  height: number;
  width: number;
  channels: 1 | 3;
}

/** Decodes `data` to uint8 HWC at the model's size and channel count, or throws a 4xx ServeError. */
export async function decodeForModel(data: Uint8Array, name: string, target: ModelInput, maxPixels: number): Promise<Uint8Array> {
  if (data.length === 0) throw new ServeError(400, "empty_image", `${name}: empty (0 bytes)`);
  try {
    // One decoding call per image: libvips' limitInputPixels (and decodePnm's maxPixels) refuse an
    // oversized image from its header, before any pixel is decoded; a separate metadata() call
    // cost each request a second trip through libvips.
    const img = await decodeImage(data, name, { size: { height: target.height, width: target.width }, channels: target.channels, maxPixels });
    return img.pixels;
  } catch (e) {
    const msg = errorMessage(e);
    if (/pixel limit|pixels exceeds the limit/i.test(msg)) throw new ServeError(413, "too_many_pixels", `${name}: the image has more than ${maxPixels} pixels (--max-pixels): ${msg}`);
    if (/unsupported image format/i.test(msg)) throw new ServeError(400, "not_an_image", `${name}: not a supported image (PNG, JPEG, WebP, GIF, TIFF, PPM/PGM): ${msg}`);
    throw new ServeError(400, "undecodable_image", `${name}: ${msg}`);
  }
}
