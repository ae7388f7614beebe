// A trigger given as an image (`evaluate-defense --trigger PNG [--mask PNG] [--trigger-alpha A]`),
// stamped on clean images: x' = (1 − A·m)·x + A·m·P, per pixel, with P the trigger image and m
// its mask in 0..1. The mask is the trigger's alpha channel, or a separate greyscale mask image
// (white: the trigger's pixels, black: the clean image's), or, with neither, the whole image.
// A = 1 pastes a patch where the mask is set; A < 1 blends (Blend: an opaque pattern, A = 0.2).
// Trigger and mask are at the model's input size: that is where they are placed, pixel for
// pixel; an image of another size is refused rather than resized, which would blur the trigger.
import sharp from "sharp";
import type { ImageDataset } from "./dataset.js";
import { convertChannels, MAX_IMAGE_PIXELS } from "./image-decode.js";
import { MAX_IMAGE_FILE_BYTES } from "./read-image-file.js";
import { readRegularFile } from "../util/read-regular-file.js";
import { BadExpertError } from "../util/errors.js";

export interface TriggerImage {
  /** The pattern P, height*width*channels bytes (HWC) at the model's size and channels. */
  pattern: Uint8Array;
  /** m per pixel (height*width values in 0..1); null: the whole image. */
  mask: Float32Array | null;
  /** Where m came from. */
  maskSource: "alpha channel" | "mask image" | "whole image";
  height: number;
  width: number;
  channels: 1 | 3;
}

interface Rgba {
  rgba: Uint8Array;
  width: number;
  height: number;
  /** Whether some pixel is not fully opaque. */
  translucent: boolean;
}

async function readRgba(file: string, what: string, size: { height: number; width: number }): Promise<Rgba> {
  const bytes = await readRegularFile(file, { maxBytes: MAX_IMAGE_FILE_BYTES, what });
  const out = await sharp(bytes, { limitInputPixels: MAX_IMAGE_PIXELS })
    .toColourspace("srgb")
    .ensureAlpha()
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true })
    .catch((e: unknown) => {
      throw new BadExpertError(
        "E_INPUT_DECODE",
        `${file}: cannot decode the ${what} (${e instanceof Error ? e.message : String(e)})`,
        { cause: e },
      );
    });
  const { width, height, channels } = out.info;
  if (channels !== 4)
    throw new BadExpertError("E_DATA", `${file}: the ${what} decoded to ${channels} channels, expected RGBA`);
  if (width !== size.width || height !== size.height) {
    throw new BadExpertError(
      "E_DATA",
      `${file}: the ${what} is ${width}x${height} but the model takes ${size.width}x${size.height} inputs: give it at the model's size (transparent, or black in the mask, where there is no trigger); it is not resized`,
    );
  }
  const rgba = new Uint8Array(out.data);
  let translucent = false;
  for (let i = 3; i < rgba.length; i += 4) if (rgba[i] !== 255) translucent = true;
  return { rgba, width, height, translucent };
}

export async function readTriggerImage(
  file: string,
  maskFile: string | undefined,
  model: { height: number; width: number; channels: 1 | 3 },
): Promise<TriggerImage> {
  const t = await readRgba(file, "trigger image", model);
  const n = t.width * t.height;
  const pattern = convertChannels(
    { width: t.width, height: t.height, channels: 4, pixels: t.rgba },
    model.channels,
  ).pixels;
  let mask: Float32Array | null = null;
  let maskSource: TriggerImage["maskSource"] = "whole image";
  if (maskFile !== undefined) {
    if (t.translucent)
      throw new BadExpertError(
        "E_DATA",
        `${file}: the trigger image has transparent pixels and a mask image was given too: give the mask one way (its alpha channel, or --mask)`,
      );
    const m = await readRgba(maskFile, "mask image", model);
    if (m.translucent)
      throw new BadExpertError(
        "E_DATA",
        `${maskFile}: the mask image has transparent pixels: a mask is greyscale, white where the trigger is and black where it is not`,
      );
    const grey = convertChannels({ width: m.width, height: m.height, channels: 4, pixels: m.rgba }, 1).pixels;
    mask = Float32Array.from(grey, (v) => v / 255);
    maskSource = "mask image";
  } else if (t.translucent) {
    mask = new Float32Array(n);
    for (let i = 0; i < n; i++) mask[i] = (t.rgba[4 * i + 3] as number) / 255;
    maskSource = "alpha channel";
  }
  if (mask !== null && mask.every((v) => v === 0))
    throw new BadExpertError("E_DATA", `${maskFile ?? file}: the mask is empty: the trigger would change no pixel`);
  return { pattern, mask, maskSource, height: t.height, width: t.width, channels: model.channels };
}

/** Copies of `images` (of the trigger's size and channels) with the trigger stamped at blend weight `alpha` in (0, 1]. */
export function applyTriggerImage(images: ImageDataset, t: TriggerImage, alpha: number): ImageDataset {
  if (!(alpha > 0 && alpha <= 1)) throw new BadExpertError("E_USAGE", `trigger alpha must be in (0, 1], got ${alpha}`);
  if (images.height !== t.height || images.width !== t.width || images.channels !== t.channels) {
    throw new BadExpertError(
      "E_DATA",
      `the trigger is ${t.width}x${t.height}x${t.channels} but the images are ${images.width}x${images.height}x${images.channels}`,
    );
  }
  const c = t.channels;
  const n = t.height * t.width;
  const out = new Uint8Array(images.images.length);
  for (let i = 0; i < images.count; i++) {
    const base = i * n * c;
    for (let p = 0; p < n; p++) {
      const a = alpha * (t.mask === null ? 1 : (t.mask[p] as number));
      for (let ch = 0; ch < c; ch++) {
        const k = p * c + ch;
        out[base + k] = Math.round((1 - a) * (images.images[base + k] as number) + a * (t.pattern[k] as number));
      }
    }
  }
  return { ...images, images: out, name: `${images.name}+trigger` };
}
