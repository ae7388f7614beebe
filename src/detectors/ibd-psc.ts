// IBD-PSC (Hou et al., "IBD-PSC: Input-level Backdoor Detection via Parameter-oriented Scaling
// Consistency", ICML 2024). Copies of M whose BatchNorm weights and biases in the LAST layers are
// multiplied by ω = 1.5: amplifying parameters destroys clean predictions but backdoor inputs
// keep their label. As in the authors' code: BN layers are counted from the last; the starting
// depth ξ is the smallest number k of last BN layers whose amplification makes M misclassify
// more than xi = 60% of the reserved clean images; the n = 5 scaled models amplify the last
// ξ+1, ..., ξ+n BN layers (capped at all of them); PSC(x) = mean over the scaled models of their
// softmax probability of M(x)'s label — high for backdoor inputs.
import { inferenceMode, noGrad, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, type Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { numberParam, type ParamTable } from "../attacks/params.js";
import type { ParamValue } from "../attacks/attack.js";
import { cloneModel } from "../defense/fit.js";
import {
  checkBatch,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
} from "./detector.js";
import { logitsOf, predictionOf } from "./model-forward.js";

export const IBD_PSC_PARAMS: ParamTable = {
  n: { type: "integer", default: 5, min: 1, description: "number of parameter-amplified models" },
  xi: {
    type: "number",
    default: 0.6,
    min: 0,
    max: 1,
    description: "clean error rate the amplification must exceed to fix the starting depth",
  },
  scale: {
    type: "number",
    default: 1.5,
    above: 0,
    description: "factor ω applied to the selected BN weights and biases",
  },
};

/** M's BatchNorm2d layers in module order. */
export function batchNormLayers(model: Module): BatchNorm2d[] {
  return model.modules().filter((m): m is BatchNorm2d => m instanceof BatchNorm2d);
}

/** A copy of M with the last `count` BN layers' weight and bias multiplied by `scale`. */
export function amplifiedCopy(ctx: DetectorContext, count: number, scale: number): Module {
  const copy = cloneModel(ctx.model, ctx.spec).eval();
  const bns = batchNormLayers(copy);
  noGrad(() => {
    for (const bn of bns.slice(Math.max(0, bns.length - count))) {
      bn.weight?.mul_(scale);
      bn.bias?.mul_(scale);
    }
  });
  return copy;
}

function errorRate(model: Module, ctx: DetectorContext, ds: ImageDataset): number {
  let wrong = 0;
  for (const batch of new DataLoader(ds, { batchSize: 256 })) {
    const pred = inferenceMode(() => predictionOf(model, ctx.preprocessing, batch.x));
    batch.x.dispose();
    batch.y.dispose();
    pred.forEach((p, i) => {
      if (p !== ds.labels[batch.indices[i] as number]) wrong++;
    });
  }
  return ds.count ? wrong / ds.count : Number.NaN;
}

export class IbdPscDetector implements InputDetector {
  readonly name = "ibd-psc";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly #ctx: DetectorContext;
  /** Distinct amplified models and how many of the n scaled models each stands for. */
  readonly #models: { model: Module; weight: number }[] = [];

  /** From the reserved clean set (choosing the starting depth), or from a saved starting depth. */
  constructor(
    ctx: DetectorContext,
    source: ImageDataset | { startDepth: number },
    params: Readonly<Record<string, ParamValue>>,
  ) {
    this.#ctx = ctx;
    this.params = params;
    const layers = batchNormLayers(ctx.model).length;
    if (layers === 0)
      throw new RangeError(`ibd-psc: M (${ctx.spec.name}) has no BatchNorm2d layer; IBD-PSC amplifies BN parameters`);
    const scale = numberParam(params, "scale");
    const xi = numberParam(params, "xi");
    const errors: { layers: number; error: number }[] = [];
    let start: number | null = null;
    if ("startDepth" in source) {
      if (!Number.isInteger(source.startDepth) || source.startDepth < 1 || source.startDepth > layers) {
        throw new RangeError(
          `ibd-psc: saved startDepth must be an integer in 1..${layers}, got ${JSON.stringify(source.startDepth)}`,
        );
      }
      start = source.startDepth;
    } else if (source.count < 1)
      throw new RangeError("ibd-psc: the reserved clean set is empty; the starting depth is chosen on it");
    // The authors try k = 1 .. L-1 last layers (not all L).
    for (let k = 1; k < layers && start === null && !("startDepth" in source); k++) {
      const m = amplifiedCopy(ctx, k, scale);
      try {
        const e = errorRate(m, ctx, source);
        errors.push({ layers: k, error: e });
        if (e > xi) start = k;
      } finally {
        m.dispose();
      }
    }
    // Where no depth reaches xi (the authors' code then fails), start from the deepest one tried.
    const startDepth = start ?? Math.max(1, layers - 1);
    const counts = new Map<number, number>();
    for (let i = 0; i < numberParam(params, "n"); i++) {
      const c = Math.min(layers, startDepth + i + 1);
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    for (const [count, weight] of counts) this.#models.push({ model: amplifiedCopy(ctx, count, scale), weight });
    this.fitted = {
      batchNormLayers: layers,
      startDepth,
      reachedXi: start !== null,
      cleanErrorByDepth: errors,
      amplifiedLayerCounts: Object.fromEntries(counts),
    };
  }

  scoreBatch(x: Tensor): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const { model, preprocessing } = this.#ctx;
    const total = this.#models.reduce((a, m) => a + m.weight, 0);
    return inferenceMode(() =>
      tidy(() => {
        const p = logitsOf(model, preprocessing, x).argmax(1);
        const idx = p.unsqueeze(1);
        const psc = new Float64Array(x.dim(0));
        for (const { model: m, weight } of this.#models) {
          const conf = tidy(
            () => logitsOf(m, preprocessing, x).softmax(1).gather(1, idx).squeeze(1).data() as Float32Array,
          );
          for (let i = 0; i < psc.length; i++) psc[i] = (psc[i] as number) + (weight * (conf[i] as number)) / total;
        }
        return { pred: p.to({ dtype: "int32" }).data() as Int32Array, score: psc };
      }),
    );
  }

  state(): DetectorState {
    return { json: { startDepth: this.fitted.startDepth }, tensors: new Map() };
  }

  dispose(): void {
    for (const m of this.#models) m.model.dispose();
  }
}
