// Option checks shared by the model constructors and the registry. A model is usually built
// from CLI flags or a config file far from where it would fail, so every message names the
// model, the option, what was expected and what was given.

/** A square side length, or [height, width]. */
export type ImageSizeOption = number | readonly [number, number];

export function checkPositiveInt(model: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1)
    throw new RangeError(`${model}: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** A rate in [0, 1) (1 would drop everything and divide by zero in the rescaling). */
export function checkDropRate(model: string, name: string, v: number): number {
  if (!(v >= 0 && v < 1)) throw new RangeError(`${model}: ${name} must be in [0, 1), got ${String(v)}`);
  return v;
}

/** Normalises an image-size option to [height, width], each a positive integer. */
export function imageSizePair(model: string, v: ImageSizeOption): [number, number] {
  const p: readonly number[] = typeof v === "number" ? [v, v] : v;
  const [h, w] = p;
  if (
    p.length !== 2 ||
    h === undefined ||
    w === undefined ||
    !Number.isInteger(h) ||
    !Number.isInteger(w) ||
    h < 1 ||
    w < 1
  ) {
    throw new RangeError(
      `${model}: imageSize must be a positive integer or a [height, width] pair of them, got ${JSON.stringify(v)}`,
    );
  }
  return [h, w];
}

/** Throws unless both sides are at least `min`; `why` says what needs that size. */
export function checkMinImageSize(model: string, size: readonly [number, number], min: number, why: string): void {
  const [h, w] = size;
  if (h < min || w < min) {
    throw new RangeError(`${model}: imageSize must be at least ${min}x${min} (${why}), got ${h}x${w}`);
  }
}
