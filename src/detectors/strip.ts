// STRIP (Gao et al., "STRIP: A Defence Against Trojan Attacks on Deep Neural Networks", ACSAC
// 2019). Each input is superimposed with N clean images drawn at random from the defender's
// reserved set — the original adds the two images at full weight and saturates (cv2.addWeighted
// with weights 1 and 1), here clip(x + x_c, 0, 1) in [0, 1] units — and the Shannon entropy (bits)
// of M's softmax is averaged over the N copies. A trigger keeps M's prediction fixed whatever is
// superimposed, so backdoor inputs have LOW entropy: the score is −entropy.
import { inferenceMode, keep, tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { imagesToTensor } from "../data/batch.js";
import { numberParam, type ParamTable } from "../attacks/params.js";
import type { ParamValue } from "../attacks/attack.js";
import { Rng } from "../util/rng.js";
import {
  checkBatch,
  checkSeeds,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
  type ScoreOptions,
} from "./detector.js";
import { logitsOf } from "./model-forward.js";

/** Superimposed images per forward pass when several copies of a small batch go together. */
const COPY_IMAGES_PER_PASS = 256;

export const STRIP_PARAMS: ParamTable = {
  n: {
    type: "integer",
    default: 100,
    min: 1,
    description: "clean images superimposed on each input (the paper's N = 100; toolboxes often use 20-50)",
  },
  poolSize: {
    type: "integer",
    default: 0,
    min: 0,
    description: "clean images kept from the reserved set to draw from (0: all of it)",
  },
  seed: {
    type: "integer",
    default: 0,
    min: 0,
    description: "seed of the draws (each batch derives its own stream; with per-input seeds, each input its own)",
  },
};

/** Mean Shannon entropy in bits of softmax(logits) per row of [N, K] logits (0 for a one-hot prediction). */
export function entropyBits(logits: Tensor): Tensor {
  return tidy(() => {
    const logp = logits.logSoftmax(1);
    // p·log p computed from log-probabilities stays finite (0 · −inf never appears).
    return logp.exp().mul(logp).sum(1).neg().div(Math.LN2);
  });
}

export class StripDetector implements InputDetector {
  readonly name = "strip";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly #ctx: DetectorContext;
  readonly #pool: Tensor;
  #calls = 0;

  /** From the reserved clean set, or from a saved pool (which the detector then owns). */
  constructor(
    ctx: DetectorContext,
    source: ImageDataset | { pool: Tensor },
    params: Readonly<Record<string, ParamValue>>,
  ) {
    this.#ctx = ctx;
    this.params = params;
    if ("pool" in source) {
      checkBatch("strip (saved pool)", source.pool, ctx.preprocessing);
      this.#pool = source.pool;
      this.fitted = { poolSize: source.pool.dim(0) };
      return;
    }
    const reserved = source;
    if (reserved.count < 1)
      throw new RangeError("strip: the reserved clean set is empty; STRIP needs clean images to superimpose");
    const want = numberParam(params, "poolSize");
    const count = want === 0 ? reserved.count : Math.min(want, reserved.count);
    const idx = new Rng(numberParam(params, "seed")).permutation(reserved.count).subarray(0, count);
    const bytes = new Uint8Array(count * reserved.height * reserved.width * reserved.channels);
    const size = reserved.height * reserved.width * reserved.channels;
    for (let k = 0; k < count; k++)
      bytes.set(reserved.images.subarray((idx[k] as number) * size, ((idx[k] as number) + 1) * size), k * size);
    this.#pool = keep(imagesToTensor(bytes, count, reserved.height, reserved.width, reserved.channels));
    this.fitted = { poolSize: count };
  }

  scoreBatch(x: Tensor, o?: ScoreOptions): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const n = numberParam(this.params, "n");
    const b = x.dim(0);
    const seeds = checkSeeds(this.name, o, b);
    const seed = numberParam(this.params, "seed");
    // Per-input seeds: input i draws its N clean images from its own stream (batch-independent);
    // otherwise one stream per call, drawn in input order.
    const streams = seeds ? Array.from({ length: b }, (_, i) => Rng.derive(seed, 1, seeds[i] as number)) : null;
    const rng = streams ? null : Rng.derive(seed, this.#calls++);
    const poolCount = this.#pool.dim(0);
    const { model, preprocessing } = this.#ctx;
    return inferenceMode(() =>
      tidy(() => {
        const pred = logitsOf(model, preprocessing, x).argmax(1).to({ dtype: "int32" }).data() as Int32Array;
        let sum: Tensor = tensor(new Float32Array(b));
        // Several copies per forward pass when the batch is small (a service's batch of 1 makes one
        // pass of n images, not n passes of one), at most COPY_IMAGES_PER_PASS images at a time.
        // The draws keep their order (copy by copy, input by input), so the scores are the same.
        const copies = Math.max(1, Math.floor(COPY_IMAGES_PER_PASS / b));
        for (let j = 0; j < n; j += copies) {
          const c = Math.min(copies, n - j);
          const draw = BigInt64Array.from({ length: c * b }, (_, k) =>
            BigInt((rng ?? (streams?.[k % b] as Rng)).int(0, poolCount)),
          );
          // One tidy per group of copies, so a batch holds at most that many superimposed images.
          const h = tidy(() => {
            const xs = c === 1 ? x : x.repeat([c, 1, 1, 1]);
            return entropyBits(
              logitsOf(model, preprocessing, xs.add(this.#pool.indexSelect(0, tensor(draw))).clamp(0, 1)),
            )
              .reshape([c, b])
              .sum(0);
          });
          const next = sum.add(h);
          sum.dispose();
          h.dispose();
          sum = next;
        }
        const entropy = sum.div(n).data() as Float32Array;
        return { pred, score: Float64Array.from(entropy, (h) => -h) };
      }),
    );
  }

  state(): DetectorState {
    return { json: {}, tensors: new Map([["pool", this.#pool]]) };
  }

  dispose(): void {
    this.#pool.dispose();
  }
}
