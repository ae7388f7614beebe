// SCALE-UP (Guo et al., "SCALE-UP: An Efficient Black-box Input-level Backdoor Detection via
// Analyzing Scaled Prediction Consistency", ICLR 2023). Pixel values are amplified,
// x_k = clip(k·x, 0, 1) for k in {1, 3, 5, 7, 9, 11} (images in [0, 1]); the scaled prediction
// consistency SPC(x) is the share of k whose prediction equals M(x)'s. Backdoor inputs stay
// consistent under amplification (the trigger survives it), clean ones drift. The data-limited
// variant (default here, since the defender has the reserved clean set) subtracts the mean SPC
// of clean reserved images of the same predicted class, removing per-class offsets.
import { inferenceMode, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { booleanParam, numberListParam, type ParamTable } from "../attacks/params.js";
import type { ParamValue } from "../attacks/attack.js";
import {
  checkBatch,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
} from "./detector.js";
import { logitsOf } from "./model-forward.js";

export const SCALE_UP_PARAMS: ParamTable = {
  scales: {
    type: "numbers",
    default: "1,3,5,7,9,11",
    above: 0,
    description: "amplification factors k (x_k = clip(k·x, 0, 1))",
  },
  dataLimited: {
    type: "boolean",
    default: true,
    description: "subtract the mean SPC of reserved clean images of the same predicted class",
  },
};

/** SPC per input: the share of scaled copies predicted like the original. */
export function scaledConsistency(
  ctx: DetectorContext,
  x: Tensor,
  scales: readonly number[],
): { pred: Int32Array; spc: Float64Array } {
  const { model, preprocessing } = ctx;
  return inferenceMode(() =>
    tidy(() => {
      const p = logitsOf(model, preprocessing, x).argmax(1);
      const same = new Float64Array(x.dim(0));
      for (const k of scales) {
        const agree = tidy(
          () =>
            logitsOf(model, preprocessing, x.mul(k).clamp(0, 1))
              .argmax(1)
              .eq(p)
              .to({ dtype: "float32" })
              .data() as Float32Array,
        );
        for (let i = 0; i < same.length; i++) same[i] = (same[i] as number) + (agree[i] as number);
      }
      return { pred: p.to({ dtype: "int32" }).data() as Int32Array, spc: same.map((v) => v / scales.length) };
    }),
  );
}

export class ScaleUpDetector implements InputDetector {
  readonly name = "scale-up";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly #ctx: DetectorContext;
  readonly #scales: number[];
  /** Mean clean SPC per predicted class (all zero for the data-free variant). */
  readonly #classMean: Float64Array;

  /** From the reserved clean set, or from saved per-class means. */
  constructor(
    ctx: DetectorContext,
    source: ImageDataset | { classMeanSpc: readonly number[] },
    params: Readonly<Record<string, ParamValue>>,
  ) {
    this.#ctx = ctx;
    this.params = params;
    this.#scales = numberListParam(params, "scales");
    const k = ctx.classNames.length;
    this.#classMean = new Float64Array(k);
    if ("classMeanSpc" in source) {
      if (source.classMeanSpc.length !== k || !source.classMeanSpc.every(Number.isFinite)) {
        throw new RangeError(
          `scale-up: saved classMeanSpc must be ${k} finite numbers, got ${JSON.stringify(source.classMeanSpc)}`,
        );
      }
      this.#classMean.set(source.classMeanSpc);
    } else if (booleanParam(params, "dataLimited")) {
      const reserved = source;
      if (reserved.count < 1)
        throw new RangeError("scale-up: dataLimited needs reserved clean images, got an empty set");
      const sum = new Float64Array(k);
      const count = new Float64Array(k);
      for (const batch of new DataLoader(reserved, { batchSize: 256 })) {
        const r = scaledConsistency(ctx, batch.x, this.#scales);
        batch.x.dispose();
        batch.y.dispose();
        r.pred.forEach((c, i) => {
          sum[c] = (sum[c] as number) + (r.spc[i] as number);
          count[c] = (count[c] as number) + 1;
        });
      }
      // A class M never predicts on clean data gets the overall mean.
      const all =
        sum.reduce((a, b) => a + b, 0) /
        Math.max(
          1,
          count.reduce((a, b) => a + b, 0),
        );
      for (let c = 0; c < k; c++)
        this.#classMean[c] = (count[c] as number) > 0 ? (sum[c] as number) / (count[c] as number) : all;
    }
    this.fitted = { classMeanSpc: Array.from(this.#classMean) };
  }

  scoreBatch(x: Tensor): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const r = scaledConsistency(this.#ctx, x, this.#scales);
    return { pred: r.pred, score: r.spc.map((v, i) => v - (this.#classMean[r.pred[i] as number] ?? 0)) };
  }

  state(): DetectorState {
    return { json: { classMeanSpc: Array.from(this.#classMean) }, tensors: new Map() };
  }

  dispose(): void {}
}
