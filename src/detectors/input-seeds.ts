// Seeds derived from what an input is, not from when it is scored: the first four bytes of the
// SHA-256 of each image's float32 pixels — keyed (HMAC-SHA256) with the bundle's secret when it has
// one. A stochastic detector (STRIP, SentiNet) given these seeds scores an image the same way
// whether it arrives alone, inside any batch, or after any number of earlier calls — what a
// service needs, where batches are formed by arrival time. The key keeps the draws unpredictable:
// without it, an attacker who knew the clean pool could compute which clean images STRIP will
// superimpose on a given input and shape the trigger against exactly those.
import { createHash, createHmac } from "node:crypto";
import { tidy, type Tensor } from "../engine/index.js";

/** One unsigned 32-bit seed per image of x ([N, ...] float32), from the image's bytes (and the key, when given). */
export function inputSeeds(x: Tensor, key: Uint8Array | null = null): Uint32Array {
  if (x.dtype !== "float32") throw new RangeError(`inputSeeds: x must be float32 images, got dtype ${x.dtype}`);
  const n = x.dim(0);
  const data = tidy(() => x.contiguous().data() as Float32Array);
  const per = n === 0 ? 0 : data.length / n;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const row = new Uint8Array(data.buffer, data.byteOffset + i * per * 4, per * 4);
    const h = key ? createHmac("sha256", key) : createHash("sha256");
    out[i] = h.update(row).digest().readUInt32LE(0);
  }
  return out;
}
