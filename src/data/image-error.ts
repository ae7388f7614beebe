// Why an image could not be decoded, as a stable code beside the message: the service turns the
// code into its HTTP status (415 for a format or a multi-frame image it does not judge, 413 for
// too many pixels, 400 for broken bytes) and `scan` prints it on the input's error line.
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

export class ImageDecodeError extends DatasetFormatError {
  override name = "ImageDecodeError";
  constructor(
    readonly code: ImageProblem,
    file: string,
    problem: string,
    /** reader: the decoder named at the head of the message (default "image"). */
    options: { cause?: unknown; reader?: string } = {},
  ) {
    super(options.reader ?? "image", file, problem, options.cause === undefined ? undefined : { cause: options.cause });
  }
}
