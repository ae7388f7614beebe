// Why an image could not be decoded, as a stable reason beside the message, and the error code
// that reason is (E_INPUT_DECODE for broken bytes, E_INPUT_UNSUPPORTED for a format or a
// multi-frame image the detector does not judge, E_INPUT_TOO_LARGE for too many pixels or frames):
// the service answers the code's HTTP status and `scan` prints both on the input's error line.
import type { ErrorCode } from "../util/errors.js";
import { DatasetFormatError } from "./errors.js";

export type ImageProblem =
  /** 0 bytes. */
  | "empty"
  /** No image signature we know. */
  | "not_an_image"
  /** An image format libvips could read but we do not accept (SVG, HEIF, ...). */
  | "unsupported_format"
  /** A known format whose bytes are broken: truncated, a bad checksum, impossible header fields. */
  | "corrupt"
  /** More pixels than the limit, from the header alone. */
  | "too_many_pixels"
  /** An animation or a multi-page file, refused unless every frame is scored. */
  | "multi_frame"
  /** More frames than the limit when every frame is scored. */
  | "too_many_frames";

/** The error code of each reason. */
export const IMAGE_PROBLEM_CODES: Readonly<Record<ImageProblem, ErrorCode>> = {
  empty: "E_INPUT_DECODE",
  not_an_image: "E_INPUT_DECODE",
  corrupt: "E_INPUT_DECODE",
  unsupported_format: "E_INPUT_UNSUPPORTED",
  multi_frame: "E_INPUT_UNSUPPORTED",
  too_many_pixels: "E_INPUT_TOO_LARGE",
  too_many_frames: "E_INPUT_TOO_LARGE",
};

export class ImageDecodeError extends DatasetFormatError {
  override name = "ImageDecodeError";
  constructor(
    readonly reason: ImageProblem,
    file: string,
    problem: string,
    /** reader: the decoder named at the head of the message (default "image"). */
    options: { cause?: unknown; reader?: string } = {},
  ) {
    super(options.reader ?? "image", file, problem, {
      code: IMAGE_PROBLEM_CODES[reason],
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
  }
}
