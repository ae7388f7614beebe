// A trigger as plain arrays at the image's size: a pattern (values in [0, 1] per channel) and a
// mask (1 where the trigger replaces the image). Attacks draw their generated patterns into a
// canvas once and paste it onto batches with two tensor ops, so the trigger is exactly the
// same for every image and every call, and attacks keep no tensors alive between calls.
import { tensor, tidy, type Tensor, formatShape } from "../engine/index.js";

export interface CanvasShape {
  channels: number;
  height: number;
  width: number;
}

/** How many pixels one trigger cell takes: 1 up to 32-pixel images, then growing with the shorter side. */
export function triggerScale(height: number, width: number): number {
  return Math.max(1, Math.round(Math.min(height, width) / 32));
}

export class TriggerCanvas {
  readonly channels: number;
  readonly height: number;
  readonly width: number;
  /** [C, H, W] */
  readonly pattern: Float32Array;
  /** [H, W], 0 or 1 */
  readonly mask: Float32Array;

  constructor(shape: CanvasShape) {
    this.channels = shape.channels;
    this.height = shape.height;
    this.width = shape.width;
    this.pattern = new Float32Array(shape.channels * shape.height * shape.width);
    this.mask = new Float32Array(shape.height * shape.width);
  }

  /**
   * Draws a rectangle of cells at (top, left): cell (i, j) covers scale×scale pixels and gets
   * colour(i, j) (one value per channel, or null to leave it transparent). Throws if the
   * rectangle leaves the image, naming what did not fit.
   */
  drawCells(
    what: string,
    top: number,
    left: number,
    rows: number,
    cols: number,
    scale: number,
    colour: (i: number, j: number) => readonly number[] | null,
  ): void {
    const h = rows * scale;
    const w = cols * scale;
    if (top < 0 || left < 0 || top + h > this.height || left + w > this.width) {
      throw new RangeError(
        `${what}: a ${h}x${w} trigger at row ${top}, column ${left} does not fit a ${this.height}x${this.width} image`,
      );
    }
    const plane = this.height * this.width;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const c = colour(i, j);
        if (c === null) continue;
        if (c.length !== this.channels)
          throw new RangeError(`${what}: colour has ${c.length} values for ${this.channels} channels`);
        for (let di = 0; di < scale; di++) {
          for (let dj = 0; dj < scale; dj++) {
            const p = (top + i * scale + di) * this.width + left + j * scale + dj;
            this.mask[p] = 1;
            for (let ch = 0; ch < this.channels; ch++) this.pattern[ch * plane + p] = c[ch] as number;
          }
        }
      }
    }
  }

  /** Pixel indices (row * width + col) under the mask. */
  maskedPixels(): number[] {
    const out: number[] = [];
    for (let p = 0; p < this.mask.length; p++) if (this.mask[p] === 1) out.push(p);
    return out;
  }
}

/** Checks that x is [N, C, H, W] of the size the trigger was built for. */
export function checkImages(what: string, x: Tensor, shape: CanvasShape): void {
  const s = x.shape;
  if (s.length !== 4 || s[1] !== shape.channels || s[2] !== shape.height || s[3] !== shape.width) {
    throw new RangeError(
      `${what}: expected images [N, ${shape.channels}, ${shape.height}, ${shape.width}] (the size the attack was built for), got ${formatShape(s)}`,
    );
  }
}

/**
 * x·(1 − α·m) + α·m·P: with α = 1 the masked pixels become the pattern exactly and the others
 * stay exactly as they were; α < 1 blends the trigger in at that opacity.
 */
export function pasteTrigger(x: Tensor, canvas: TriggerCanvas, alpha = 1): Tensor {
  return tidy(() => {
    const { channels: c, height: h, width: w } = canvas;
    const m = tensor(canvas.mask, { shape: [1, 1, h, w] }).mul(alpha);
    const p = tensor(canvas.pattern, { shape: [1, c, h, w] });
    return x.mul(m.rsub(1)).add(p.mul(m));
  });
}
