// Where the corruptions' random numbers come from: libtorch's generator (so that manualSeed makes
// a corruption reproducible), or, inside withRandomSource, a seeded stream of our own. TeCo scores
// under a stream per call, or per input when it gets the service's per-input seeds, so a served
// image is corrupted the same way whatever batch it lands in.
import { rand, randn, tensor, type Tensor } from "../engine/index.js";
import type { Rng } from "../util/rng.js";

let current: Rng | null = null;

/** Runs `fn` with the corruptions drawing from `rng` (synchronous code only), then restores the previous source. */
export function withRandomSource<T>(rng: Rng, fn: () => T): T {
  const previous = current;
  current = rng;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

function drawn(shape: readonly number[], draw: (r: Rng) => number): Tensor | null {
  const r = current;
  if (!r) return null;
  const count = shape.reduce((a, b) => a * b, 1);
  return tensor(
    Float32Array.from({ length: count }, () => draw(r)),
    { shape: [...shape] },
  );
}

/** Uniform numbers in [0, 1) of the given shape, from the current source. */
export function uniformTensor(shape: readonly number[]): Tensor {
  return drawn(shape, (r) => r.next()) ?? rand([...shape]);
}

/** Standard normal numbers of the given shape, from the current source. */
export function normalTensor(shape: readonly number[]): Tensor {
  return drawn(shape, (r) => r.normal()) ?? randn([...shape]);
}
