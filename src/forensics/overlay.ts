// Pictures of saliency: a map blended over its image, a map alone and a signed trigger estimate,
// as RGB PNGs of the image's own size (a page scales them up; 28x28 stays 28x28 here). The PNG is
// encoded by pngjs on the calling thread, not by libvips: libvips runs its work on a process-wide
// thread pool, which would take the service's explain worker's CPU out of its low priority.
import pngjs from "pngjs";

/** A "hot" colour scale: black → red → yellow → white for v in [0, 1]. */
export function hotColour(v: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * 3;
  return [Math.min(1, t), Math.min(1, Math.max(0, t - 1)), Math.min(1, Math.max(0, t - 2))];
}

function maxOf(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, a[i] as number);
  return m;
}

function checkPlane(what: string, map: ArrayLike<number>, height: number, width: number): void {
  if (!(Number.isInteger(height) && height > 0 && Number.isInteger(width) && width > 0))
    throw new RangeError(`${what}: height and width must be positive integers, got ${height}x${width}`);
  if (map.length !== height * width)
    throw new RangeError(
      `${what}: the map has ${map.length} values, a ${height}x${width} image needs ${height * width}`,
    );
}

function png(rgb: Uint8Array, height: number, width: number): Promise<Buffer> {
  const image = new pngjs.PNG({ width, height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  image.data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  return Promise.resolve(pngjs.PNG.sync.write(image, { colorType: 2, inputColorType: 2, inputHasAlpha: false }));
}

/**
 * The map (normalised to its maximum) over the image: uint8 pixels HWC with 1 or 3 channels.
 * Hot pixels take the colour of the scale, cold ones show the image in grey.
 */
export function overlayPng(
  pixels: Uint8Array,
  height: number,
  width: number,
  channels: number,
  map: ArrayLike<number>,
  o: { opacity?: number } = {},
): Promise<Buffer> {
  checkPlane("overlayPng", map, height, width);
  if (channels !== 1 && channels !== 3) throw new RangeError(`overlayPng: channels must be 1 or 3, got ${channels}`);
  if (pixels.length !== height * width * channels)
    throw new RangeError(`overlayPng: ${pixels.length} bytes do not hold a ${height}x${width}x${channels} image`);
  const opacity = o.opacity ?? 0.8;
  const max = maxOf(map);
  const out = new Uint8Array(height * width * 3);
  for (let p = 0; p < height * width; p++) {
    const v = max > 0 ? (map[p] as number) / max : 0;
    const a = opacity * v;
    const hot = hotColour(v);
    for (let ch = 0; ch < 3; ch++) {
      const base = (pixels[p * channels + (channels === 1 ? 0 : ch)] as number) / 255;
      out[p * 3 + ch] = Math.round(255 * ((1 - a) * base + a * (hot[ch] as number)));
    }
  }
  return png(out, height, width);
}

/** The map alone on the hot scale (normalised to its maximum). */
export function heatmapPng(map: ArrayLike<number>, height: number, width: number): Promise<Buffer> {
  checkPlane("heatmapPng", map, height, width);
  const max = maxOf(map);
  const out = new Uint8Array(height * width * 3);
  for (let p = 0; p < height * width; p++) {
    const c = hotColour(max > 0 ? (map[p] as number) / max : 0);
    for (let ch = 0; ch < 3; ch++) out[p * 3 + ch] = Math.round(255 * (c[ch] as number));
  }
  return png(out, height, width);
}

/**
 * A signed pattern [C, H, W] (the trigger estimate: flagged minus clean) as a picture: mid grey
 * where it is 0, brighter where flagged inputs are brighter than clean ones, darker where darker;
 * scaled so the largest magnitude reaches white or black.
 */
export function signedPatternPng(
  pattern: Float32Array,
  channels: number,
  height: number,
  width: number,
): Promise<Buffer> {
  const plane = height * width;
  if (pattern.length !== channels * plane)
    throw new RangeError(
      `signedPatternPng: ${pattern.length} values do not hold a ${channels}x${height}x${width} pattern`,
    );
  let max = 0;
  for (const v of pattern) max = Math.max(max, Math.abs(v));
  const out = new Uint8Array(plane * 3);
  for (let p = 0; p < plane; p++) {
    for (let ch = 0; ch < 3; ch++) {
      const v = pattern[(channels === 1 ? 0 : ch) * plane + p] as number;
      out[p * 3 + ch] = Math.round(255 * (0.5 + (max > 0 ? v / max : 0) / 2));
    }
  }
  return png(out, height, width);
}
