// The orthonormal 2-D DCT-II on tensors, as matrix products: the Frequency detector reads images
// through it, and TeCo's JPEG corruption quantises 8x8 blocks of it.
import { tensor, tidy, type Tensor } from "../engine/index.js";

/** The orthonormal DCT-II matrix [n, n]: row k is α_k cos(π (2i + 1) k / 2n), α_0 = √(1/n), α_k = √(2/n). */
export function dctMatrix(n: number): Float32Array {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`dctMatrix: n must be a positive integer, got ${n}`);
  const d = new Float32Array(n * n);
  for (let k = 0; k < n; k++) {
    const a = Math.sqrt((k === 0 ? 1 : 2) / n);
    for (let i = 0; i < n; i++) d[k * n + i] = a * Math.cos((Math.PI * (2 * i + 1) * k) / (2 * n));
  }
  return d;
}

function dctTensor(n: number): Tensor {
  return tensor(dctMatrix(n), { shape: [n, n] });
}

/** 2-D orthonormal DCT-II of each channel of [N, C, H, W] (scipy's dct(dct(x.T, norm='ortho').T, norm='ortho')). */
export function dct2(x: Tensor): Tensor {
  return tidy(() =>
    dctTensor(x.dim(2))
      .matmul(x)
      .matmul(dctTensor(x.dim(3)).transpose(0, 1)),
  );
}

/** The inverse of dct2 (the matrices are orthogonal, so their transposes). */
export function idct2(y: Tensor): Tensor {
  return tidy(() =>
    dctTensor(y.dim(2))
      .transpose(0, 1)
      .matmul(y)
      .matmul(dctTensor(y.dim(3))),
  );
}
