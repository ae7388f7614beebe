// A small seeded PRNG for data order and augmentation parameters. It is independent of
// libtorch's generator, so shuffling stays reproducible whatever the model does with its RNG
// (dropout, init). SplitMix32-style mixing of a 32-bit counter: fast and well distributed.
export class Rng {
  #state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`Rng: seed must be an integer, got ${seed}`);
    this.#state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.#state = (this.#state + 0x9e3779b9) >>> 0;
    let z = this.#state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [low, high). */
  int(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low));
  }

  /** Uniform real in [low, high). */
  uniform(low: number, high: number): number {
    return low + this.next() * (high - low);
  }

  /** Standard normal (Box–Muller on two uniforms; the first is taken from (0, 1] so its log is finite). */
  normal(): number {
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    return r * Math.cos(2 * Math.PI * this.next());
  }

  /** A new generator derived from this seed and a label (e.g. an epoch number). */
  static derive(seed: number, ...labels: number[]): Rng {
    let s = seed >>> 0;
    for (const l of labels) s = (Math.imul(s ^ (l >>> 0), 0x9e3779b1) + 0x7f4a7c15) >>> 0;
    return new Rng(s);
  }

  /** Fisher–Yates shuffle of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = p[i] as number;
      p[i] = p[j] as number;
      p[j] = t;
    }
    return p;
  }
}
