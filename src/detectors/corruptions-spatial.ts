// ImageNet-C's pixel-moving corruptions (glass blur, elastic transform) with the CIFAR-10-C
// constants, on [N, C, H, W] tensors in [0, 1]; draws from libtorch's generator.
import { F, tensor, tidy } from "../engine/index.js";
import { depthwise, gaussianKernel, level, uniforms, type Corruption } from "./corruption-kernels.js";

/** skimage's gaussian (truncate 4) of every channel; the identity for sigma 0. */
function blur(x: Parameters<Corruption>[0], sigma: number): ReturnType<Corruption> {
  const r = Math.ceil(4 * sigma);
  return r === 0 ? x.alias() : depthwise(x, gaussianKernel(sigma, 2 * r + 1), 2 * r + 1);
}

// Gaussian blur (sigma), rounded down to 8 bits as the reference's np.uint8; then, `iterations`
// times, every pixel from the bottom-right inwards (rows and columns H−δ … δ+1, 0-based) swaps with
// the pixel at a random offset in [−δ, δ) on each axis (numpy's randint(−δ, δ)); blurred again.
export const glassBlur: Corruption = (x, s) => {
  const [sigma, delta, iterations] = level<[number, number, number]>(
    [
      [0.05, 1, 1],
      [0.25, 1, 1],
      [0.4, 1, 1],
      [0.25, 1, 2],
      [0.4, 1, 2],
    ],
    s,
    "glass_blur",
  );
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const px = tidy(() => blur(x, sigma).mul(255).floor().clamp(0, 255).div(255).contiguous().data() as Float32Array);
  const plane = h * w;
  const rows = Math.max(0, h - 2 * delta);
  const cols = Math.max(0, w - 2 * delta);
  for (let i = 0; i < n; i++) {
    const u = uniforms(2 * iterations * rows * cols);
    let k = 0;
    for (let it = 0; it < iterations; it++) {
      for (let r = h - delta; r > delta; r--) {
        for (let q = w - delta; q > delta; q--) {
          const dx = Math.floor((u[k++] as number) * 2 * delta) - delta;
          const dy = Math.floor((u[k++] as number) * 2 * delta) - delta;
          const a = r * w + q;
          const b = (r + dy) * w + (q + dx);
          for (let ch = 0; ch < c; ch++) {
            const base = i * c * plane + ch * plane;
            const t = px[base + a] as number;
            px[base + a] = px[base + b] as number;
            px[base + b] = t;
          }
        }
      }
    }
  }
  return tidy(() => blur(tensor(px, { shape: [n, c, h, w] }), sigma).clamp(0, 1));
};

/** The affine map [a, b, c, d, e, f] (x' = a x + b y + c, y' = d x + e y + f) taking the 3 points `from` to `to` (OpenCV's getAffineTransform). */
export function affineFromPoints(from: readonly [number, number][], to: readonly [number, number][]): number[] {
  const [[x1, y1], [x2, y2], [x3, y3]] = from as [[number, number], [number, number], [number, number]];
  const det = x1 * (y2 - y3) - y1 * (x2 - x3) + (x2 * y3 - x3 * y2);
  if (Math.abs(det) < 1e-12) throw new RangeError("affineFromPoints: the three points are collinear");
  // Rows of the inverse of [[x1, y1, 1], [x2, y2, 1], [x3, y3, 1]] applied to each target coordinate.
  const inv = [
    [(y2 - y3) / det, (y3 - y1) / det, (y1 - y2) / det],
    [(x3 - x2) / det, (x1 - x3) / det, (x2 - x1) / det],
    [(x2 * y3 - x3 * y2) / det, (x3 * y1 - x1 * y3) / det, (x1 * y2 - x2 * y1) / det],
  ];
  const solve = (v: number[]) => inv.map((row) => row.reduce((a, m, j) => a + m * (v[j] as number), 0));
  return [...solve(to.map((p) => p[0])), ...solve(to.map((p) => p[1]))];
}

// A random affine warp (three points around the centre moved by up to `shift` pixels) followed by
// a smooth random displacement field (uniform noise, Gaussian-filtered with sigma, truncate 3,
// times alpha), bilinear with reflected borders. The reference samples twice (warpAffine, then
// map_coordinates); here both are composed into one bilinear sampling. Constants are fractions of
// the image side (the reference's IMSIZE = 32).
export const elasticTransform: Corruption = (x, s) => {
  const [alphaF, sigmaF, shiftF] = level<[number, number, number]>(
    [
      [0, 0, 0.08],
      [0.05, 0.2, 0.07],
      [0.08, 0.06, 0.06],
      [0.1, 0.04, 0.05],
      [0.1, 0.03, 0.03],
    ],
    s,
    "elastic_transform",
  );
  const [n, , h, w] = x.shape as [number, number, number, number];
  const side = Math.min(h, w);
  const [alpha, sigma, shift] = [alphaF * side, sigmaF * side, shiftF * side];
  const centre: [number, number] = [Math.floor(h / 2), Math.floor(w / 2)];
  const sq = Math.floor(side / 3);
  const pts: [number, number][] = [
    [centre[0] + sq, centre[1] + sq],
    [centre[0] + sq, centre[1] - sq],
    [centre[0] - sq, centre[1] - sq],
  ];
  const grid = new Float32Array(n * h * w * 2);
  const r = Math.floor(3 * sigma + 0.5);
  for (let i = 0; i < n; i++) {
    const u = uniforms(6);
    const moved = pts.map(
      ([a, b], j) =>
        [a + (2 * (u[2 * j] as number) - 1) * shift, b + (2 * (u[2 * j + 1] as number) - 1) * shift] as [
          number,
          number,
        ],
    );
    // warpAffine(M) samples the source at M⁻¹(p): the map from the moved points back to the originals.
    const [a, b, cc, d, e, f] = affineFromPoints(moved, pts) as [number, number, number, number, number, number];
    const field = tidy(() => {
      const noise = tensor(uniforms(2 * h * w), { shape: [1, 2, h, w] })
        .mul(2)
        .sub(1);
      const smooth = r === 0 ? noise : depthwise(noise, gaussianKernel(sigma, 2 * r + 1), 2 * r + 1);
      return smooth.mul(alpha).contiguous().data() as Float32Array;
    });
    for (let row = 0; row < h; row++) {
      for (let col = 0; col < w; col++) {
        const px = col + (field[row * w + col] as number);
        const py = row + (field[h * w + row * w + col] as number);
        const sx = a * px + b * py + cc;
        const sy = d * px + e * py + f;
        const g = ((i * h + row) * w + col) * 2;
        grid[g] = w > 1 ? (2 * sx) / (w - 1) - 1 : 0;
        grid[g + 1] = h > 1 ? (2 * sy) / (h - 1) - 1 : 0;
      }
    }
  }
  return tidy(() =>
    F.gridSample(x, tensor(grid, { shape: [n, h, w, 2] }), {
      mode: "bilinear",
      paddingMode: "reflection",
      alignCorners: true,
    }).clamp(0, 1),
  );
};
