// TeCo (Liu et al., "Detecting Backdoors During the Inference Stage Based on Corruption
// Robustness Consistency", CVPR 2023). For each corruption type, the lowest severity (1..5) at
// which M's prediction differs from its prediction on the clean input — 6 when it never changes,
// as the authors' code records it; the score is the (population) standard deviation of those
// severities across corruption types. Clean inputs lose their label at similar severities under
// every corruption; a trigger is robust to some corruptions and fragile to others, so backdoor
// inputs deviate more. The authors' code corrupts each image cumulatively (severity k is applied
// to the severity-(k-1) result); the paper describes, and this file does, each severity applied
// to the original image. The corruptions' randomness (noise, blur angles, warps) comes from a
// seeded stream: one per call, or one per input when scoreBatch gets seeds (the service's
// per-input seeds; each input is then corrupted and scored on its own, batch-independent).
import { cat, inferenceMode, tidy, type Tensor } from "../engine/index.js";
import { numberParam } from "../attacks/params.js";
import { Rng } from "../util/rng.js";
import { withRandomSource } from "./random-source.js";
import { stringParam, type DetectorParamTable } from "./params.js";
import type { ParamValue } from "../attacks/attack.js";
import {
  checkBatch,
  checkSeeds,
  type DetectorContext,
  type DetectorState,
  type InputDetector,
  type RawScores,
  type ScoreOptions,
} from "./detector.js";
import { predictionOf } from "./model-forward.js";
import { CORRUPTIONS, type Corruption } from "./corruptions.js";

export const TECO_SEVERITIES = 5;

export const TECO_PARAMS: DetectorParamTable = {
  corruptions: {
    type: "names",
    default: Object.keys(CORRUPTIONS).join(","),
    choices: Object.keys(CORRUPTIONS),
    description: "corruption types (ImageNet-C names; all 15 of the reference by default)",
  },
  seed: {
    type: "integer",
    default: 0,
    min: 0,
    description:
      "seed of the corruptions' random draws (each batch derives its own stream; with per-input seeds, each input its own)",
  },
};

/** The first severity (1-based) at which each input's prediction changed; TECO_SEVERITIES + 1 if never. */
export function firstFlipSeverity(original: Int32Array, bySeverity: readonly Int32Array[]): Int32Array {
  const out = new Int32Array(original.length).fill(bySeverity.length + 1);
  for (let i = 0; i < original.length; i++) {
    for (let s = 0; s < bySeverity.length; s++) {
      if ((bySeverity[s] as Int32Array)[i] !== original[i]) {
        out[i] = s + 1;
        break;
      }
    }
  }
  return out;
}

/** Population standard deviation across corruption types of each input's flip severity. */
export function severityDeviation(flips: readonly Int32Array[]): Float64Array {
  const n = flips[0]?.length ?? 0;
  const out = new Float64Array(n);
  const k = flips.length;
  for (let i = 0; i < n; i++) {
    // Sum first, then divide: the severities are integers, so equal ones give exactly 0.
    let sum = 0;
    for (const f of flips) sum += f[i] as number;
    const mean = sum / k;
    let v = 0;
    for (const f of flips) v += ((f[i] as number) - mean) ** 2 / k;
    out[i] = Math.sqrt(v);
  }
  return out;
}

export class TecoDetector implements InputDetector {
  readonly name = "teco";
  readonly params: Readonly<Record<string, ParamValue>>;
  readonly fitted: Readonly<Record<string, unknown>>;
  readonly #ctx: DetectorContext;
  readonly #corruptions: [string, Corruption][];
  #calls = 0;

  constructor(ctx: DetectorContext, params: Readonly<Record<string, ParamValue>>) {
    this.#ctx = ctx;
    const corruptionNames = stringParam(params, "corruptions").split(",");
    this.#corruptions = corruptionNames.map((name) => {
      const c = CORRUPTIONS[name];
      if (!c) throw new RangeError(`teco: unknown corruption '${name}'; valid: ${Object.keys(CORRUPTIONS).join(", ")}`);
      return [name, c];
    });
    if (this.#corruptions.length < 2)
      throw new RangeError(`teco: needs at least 2 corruption types for a deviation, got ${this.#corruptions.length}`);
    this.params = params;
    this.fitted = { corruptions: corruptionNames };
  }

  scoreBatch(x: Tensor, o?: ScoreOptions): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const seeds = checkSeeds(this.name, o, x.dim(0));
    const seed = numberParam(this.params, "seed");
    const { model, preprocessing } = this.#ctx;
    return inferenceMode(() => {
      const pred = predictionOf(model, preprocessing, x);
      const batchStream = Rng.derive(seed, 0, this.#calls++);
      // One corrupted copy per input (drawn from that input's stream) when seeded per input, else one stream for the batch.
      // Per input, each (corruption k, severity s) draws from its own stream, labelled k·6 + s.
      const corrupted = (corrupt: Corruption, k: number, s: number): Tensor =>
        seeds
          ? tidy(() =>
              cat(
                Array.from({ length: x.dim(0) }, (_, i) =>
                  withRandomSource(Rng.derive(seed, 1, seeds[i] as number, k * (TECO_SEVERITIES + 1) + s), () =>
                    corrupt(x.narrow(0, i, 1), s),
                  ),
                ),
                0,
              ),
            )
          : withRandomSource(batchStream, () => corrupt(x, s));
      const flips = this.#corruptions.map(([, corrupt], k) => {
        const bySeverity: Int32Array[] = [];
        for (let s = 1; s <= TECO_SEVERITIES; s++)
          bySeverity.push(tidy(() => predictionOf(model, preprocessing, corrupted(corrupt, k, s))));
        return firstFlipSeverity(pred, bySeverity);
      });
      return { pred, score: severityDeviation(flips) };
    });
  }

  state(): DetectorState {
    return { json: {}, tensors: new Map() };
  }

  dispose(): void {}
}
