// Option checks shared by the model constructors and the registry. A model is usually built
// from CLI flags or a config file far from where it would fail, so every message names the
// model, the option, what was expected and what was given.
import { intPair } from "../nn/options.js";

/** A square side length, or [height, width]. */
export type ImageSizeOption = number | readonly [number, number];

/** A rate in [0, 1) (1 would drop everything and divide by zero in the rescaling). */
export function checkDropRate(model: string, name: string, v: number): number {
  if (!(v >= 0 && v < 1)) throw new RangeError(`${model}: ${name} must be in [0, 1), got ${String(v)}`);
  return v;
}

/** Normalises an image-size option to [height, width], each a positive integer. */
export function imageSizePair(model: string, v: ImageSizeOption): [number, number] {
  return intPair(model, "imageSize", v, 1, "a [height, width] pair of them");
}

/** Throws unless both sides are at least `min`; `why` says what needs that size. */
export function checkMinImageSize(model: string, size: readonly [number, number], min: number, why: string): void {
  const [h, w] = size;
  if (h < min || w < min) {
    throw new RangeError(`${model}: imageSize must be at least ${min}x${min} (${why}), got ${h}x${w}`);
  }
}
