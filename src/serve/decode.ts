// Decoding one uploaded image to the model's input, as `scan` and Detector.score do (same
// decodeImageFrames: sRGB, alpha dropped, antialiased bilinear resize, exact luma), in two steps:
// the header first (probeUpload: format, size, frames, checked against the limits and the frame
// policy before any pixel is decoded, so a small file that claims 20000×20000 pixels is refused
// at once), then the pixels (decodeForModel), which the server runs under its pixel budget.
import { decodeImageFrames, probeImage, type FramePolicy, type ImageProbe } from "../data/image-decode.js";
import { ImageDecodeError } from "../data/image-error.js";
import { DatasetFormatError, errorMessage } from "../data/errors.js";
import { ServeError } from "./errors.js";

export interface ModelInput {
  height: number;
  width: number;
  channels: 1 | 3;
}

export interface DecodeLimits {
  maxPixels: number;
  frames: FramePolicy;
  /** Most frames one image may have with frames "all" (each is one input to score). */
  maxFrames: number;
}

/** What each kind of bad image is answered with: the service's name of the problem, and the option that governs it (the status is the error code's). */
const ANSWERS: Record<ImageDecodeError["reason"], { reason: string; option?: string }> = {
  empty: { reason: "empty_image" },
  not_an_image: { reason: "not_an_image" },
  unsupported_format: { reason: "unsupported_image_format" },
  corrupt: { reason: "undecodable_image" },
  too_many_pixels: { reason: "too_many_pixels", option: "--max-pixels" },
  multi_frame: { reason: "multi_frame", option: "--frames" },
  too_many_frames: { reason: "too_many_frames", option: "--max-images-per-request" },
};

/** The 4xx answer for an image that could not be probed or decoded; its message names the input and the problem. */
export function decodeRefusal(e: unknown, name: string): ServeError {
  if (e instanceof ServeError) return e;
  if (e instanceof ImageDecodeError) {
    const a = ANSWERS[e.reason];
    return new ServeError(
      e.code,
      a.reason,
      `${name}: ${e.problem}${a.option && !e.problem.includes(a.option) ? ` (${a.option})` : ""}`,
      { cause: e },
    );
  }
  // A resize or channel conversion that failed on a decoded image: the image is still what is wrong.
  const problem = e instanceof DatasetFormatError ? e.problem : errorMessage(e);
  return new ServeError("E_INPUT_DECODE", "undecodable_image", `${name}: cannot decode: ${problem}`, { cause: e });
}

/** Reads one upload's header and applies the per-image limits and the frame policy, or throws a 4xx ServeError. */
export async function probeUpload(data: Uint8Array, name: string, limits: DecodeLimits): Promise<ImageProbe> {
  try {
    return await probeImage(data, name, limits);
  } catch (e) {
    throw decodeRefusal(e, name);
  }
}

/** Decodes a probed upload to uint8 HWC at the model's size and channel count, one buffer per frame, or throws a 4xx ServeError. */
export async function decodeForModel(
  data: Uint8Array,
  name: string,
  target: ModelInput,
  probe: ImageProbe,
  limits: DecodeLimits,
): Promise<Uint8Array[]> {
  try {
    const frames = await decodeImageFrames(
      data,
      name,
      { size: { height: target.height, width: target.width }, channels: target.channels, ...limits },
      probe,
    );
    return frames.map((f) => f.pixels);
  } catch (e) {
    throw decodeRefusal(e, name);
  }
}
