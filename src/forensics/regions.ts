// Pixel regions of one image plane (row-major H×W): dilation, connected components, bounding
// boxes, and the two localisation measures of the forensics benchmark — the share of a map's
// top pixels inside a mask, and the IoU of box sets.

export interface Box {
  /** First row and column inside the box, and one past the last. */
  top: number;
  left: number;
  bottom: number;
  right: number;
}

export function boxArea(b: Box): number {
  return (b.bottom - b.top) * (b.right - b.left);
}

/** The mask grown by `radius` pixels (8-neighbourhood: a square of side 2·radius + 1 around each pixel). */
export function dilate(mask: ArrayLike<number>, height: number, width: number, radius = 1): Uint8Array {
  const out = new Uint8Array(height * width);
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      if (!mask[r * width + c]) continue;
      for (let dr = -radius; dr <= radius; dr++) {
        for (let dc = -radius; dc <= radius; dc++) {
          const rr = r + dr;
          const cc = c + dc;
          if (rr >= 0 && rr < height && cc >= 0 && cc < width) out[rr * width + cc] = 1;
        }
      }
    }
  }
  return out;
}

/** Indices of the `count` largest values (ties broken by position, so the result is deterministic). */
export function topIndices(map: ArrayLike<number>, count: number): number[] {
  const idx = Array.from({ length: map.length }, (_, i) => i);
  idx.sort((a, b) => (map[b] as number) - (map[a] as number) || a - b);
  return idx.slice(0, Math.max(0, Math.min(count, idx.length)));
}

/**
 * Share of the map's top `fraction` of pixels (at least one) that lie inside `mask` dilated by
 * `radius` pixels: 1 when everything the map points at is the trigger, the mask's own share of
 * the image for a map that points anywhere at random.
 */
export function topShareInMask(
  map: ArrayLike<number>,
  mask: ArrayLike<number>,
  height: number,
  width: number,
  o: { fraction?: number; radius?: number } = {},
): number {
  if (map.length !== height * width || mask.length !== height * width)
    throw new RangeError(
      `topShareInMask: map (${map.length}) and mask (${mask.length}) must both have ${height}x${width} = ${height * width} values`,
    );
  const fraction = o.fraction ?? 0.02;
  if (!(fraction > 0 && fraction <= 1))
    throw new RangeError(`topShareInMask: fraction must be in (0, 1], got ${fraction}`);
  const grown = dilate(mask, height, width, o.radius ?? 1);
  const top = topIndices(map, Math.max(1, Math.round(fraction * height * width)));
  return top.filter((p) => grown[p] === 1).length / top.length;
}

/** Connected components (8-connectivity) of the pixels where `on` is nonzero, as lists of pixel indices. */
export function components(on: ArrayLike<number>, height: number, width: number): number[][] {
  const seen = new Uint8Array(height * width);
  const out: number[][] = [];
  for (let start = 0; start < height * width; start++) {
    if (!on[start] || seen[start]) continue;
    const comp: number[] = [];
    const stack = [start];
    seen[start] = 1;
    while (stack.length > 0) {
      const p = stack.pop() as number;
      comp.push(p);
      const r = Math.floor(p / width);
      const c = p % width;
      for (let dr = -1; dr <= 1; dr++) {
        for (let dc = -1; dc <= 1; dc++) {
          const rr = r + dr;
          const cc = c + dc;
          const q = rr * width + cc;
          if (rr < 0 || rr >= height || cc < 0 || cc >= width || seen[q] || !on[q]) continue;
          seen[q] = 1;
          stack.push(q);
        }
      }
    }
    out.push(comp);
  }
  return out;
}

/** The bounding box of a set of pixel indices. */
export function boxOf(pixels: readonly number[], width: number): Box {
  if (pixels.length === 0) throw new RangeError("boxOf: no pixels");
  let top = Infinity;
  let left = Infinity;
  let bottom = -Infinity;
  let right = -Infinity;
  for (const p of pixels) {
    const r = Math.floor(p / width);
    const c = p % width;
    top = Math.min(top, r);
    left = Math.min(left, c);
    bottom = Math.max(bottom, r + 1);
    right = Math.max(right, c + 1);
  }
  return { top, left, bottom, right };
}

/** One bounding box per connected component of a 0/1 mask (a trigger made of several patches gets several). */
export function maskBoxes(mask: ArrayLike<number>, height: number, width: number): Box[] {
  return components(mask, height, width).map((c) => boxOf(c, width));
}

/** The pixels covered by any of the boxes, as a 0/1 plane. */
export function boxesPlane(boxes: readonly Box[], height: number, width: number): Uint8Array {
  const out = new Uint8Array(height * width);
  for (const b of boxes) for (let r = b.top; r < b.bottom; r++) out.fill(1, r * width + b.left, r * width + b.right);
  return out;
}

/** Intersection over union of the pixels covered by two sets of boxes (0 when both are empty). */
export function boxesIoU(a: readonly Box[], b: readonly Box[], height: number, width: number): number {
  const pa = boxesPlane(a, height, width);
  const pb = boxesPlane(b, height, width);
  let inter = 0;
  let union = 0;
  for (let p = 0; p < pa.length; p++) {
    if (pa[p] && pb[p]) inter++;
    if (pa[p] || pb[p]) union++;
  }
  return union === 0 ? 0 : inter / union;
}
