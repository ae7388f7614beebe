// The in-memory form every dataset reader produces; the rest of the toolkit only sees this shape.
import { BadExpertError } from "../util/errors.js";

export type Split = "train" | "test";

export interface ImageDataset {
  name: string;
  split: Split;
  /** count*height*width*channels bytes, NHWC, row-major, 0..255. */
  images: Uint8Array;
  /** count labels, each in 0..classNames.length-1. */
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
  /** The path the data was decoded from (not the cache file). */
  source: string;
}

export interface ImageSize {
  height: number;
  width: number;
}

export type ChannelCount = 1 | 3;

/** Options every reader understands; readers without a native size need `imageSize` or uniform images. */
export interface ReadOptions {
  split: Split;
  /** Resize every image to this size (sharp, kernel "linear"; see image-decode.ts). */
  imageSize?: ImageSize;
  /** Convert to 1 (ITU-R 601 luma) or 3 channels. */
  channels?: ChannelCount;
  /** Print progress lines to stderr when decoding is slow; default true. */
  progress?: boolean;
}

export function imageBytes(ds: Pick<ImageDataset, "height" | "width" | "channels">): number {
  return ds.height * ds.width * ds.channels;
}

/**
 * Throws if the arrays disagree with the declared shape or a label is out of range.
 * Readers call it last so a bug in one of them cannot hand malformed data to training code.
 */
export function assertConsistent(ds: ImageDataset): void {
  const where = `${ds.name}/${ds.split} (${ds.source})`;
  for (const [k, v] of [
    ["count", ds.count],
    ["height", ds.height],
    ["width", ds.width],
    ["channels", ds.channels],
  ] as const) {
    if (!Number.isInteger(v) || v < 0)
      throw new BadExpertError("E_DATA", `${where}: ${k} must be a non-negative integer, got ${v}`);
  }
  if (ds.images.length !== ds.count * imageBytes(ds)) {
    throw new BadExpertError(
      "E_DATA",
      `${where}: images has ${ds.images.length} bytes, expected ${ds.count}*${ds.height}*${ds.width}*${ds.channels}`,
    );
  }
  if (ds.labels.length !== ds.count)
    throw new BadExpertError("E_DATA", `${where}: ${ds.labels.length} labels for ${ds.count} images`);
  const k = ds.classNames.length;
  for (let i = 0; i < ds.labels.length; i++) {
    const y = ds.labels[i] ?? -1;
    if (y < 0 || y >= k)
      throw new BadExpertError("E_DATA", `${where}: label ${y} of image ${i} is outside 0..${k - 1}`);
  }
}

export function parseImageSize(v: number | readonly [number, number] | ImageSize): ImageSize {
  const size: ImageSize =
    typeof v === "number" ? { height: v, width: v } : "height" in v ? v : { height: v[0], width: v[1] };
  for (const d of [size.height, size.width]) {
    if (!Number.isInteger(d) || d < 1 || d > 65535)
      throw new BadExpertError("E_USAGE", `image size must be a positive integer (got ${d})`);
  }
  return size;
}
