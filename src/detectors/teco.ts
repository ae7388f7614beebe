// TeCo (Liu et al., "Detecting Backdoors During the Inference Stage Based on Corruption
// Robustness Consistency", CVPR 2023). For each corruption type, the lowest severity (1..5) at
// which M's prediction differs from its prediction on the clean input — 6 when it never changes,
// as the authors' code records it; the score is the (population) standard deviation of those
// severities across corruption types. Clean inputs lose their label at similar severities under
// every corruption; a trigger is robust to some corruptions and fragile to others, so backdoor
// inputs deviate more. The authors' code corrupts each image cumulatively (severity k is applied
// to the severity-(k-1) result); the paper describes, and this file does, each severity applied
// to the original image.
import { inferenceMode, tidy, type Tensor } from "../engine/index.js";
import { stringParam, type DetectorParamTable } from "./params.js";
import type { ParamValue } from "../attacks/attack.js";
import { checkBatch, type DetectorContext, type DetectorState, type InputDetector, type RawScores } from "./detector.js";
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

  constructor(ctx: DetectorContext, params: Readonly<Record<string, ParamValue>>) {
    this.#ctx = ctx;
    const corruptionNames = stringParam(params, "corruptions").split(",");
    this.#corruptions = corruptionNames.map((name) => {
      const c = CORRUPTIONS[name];
      if (!c) throw new RangeError(`teco: unknown corruption '${name}'; valid: ${Object.keys(CORRUPTIONS).join(", ")}`);
      return [name, c];
    });
    if (this.#corruptions.length < 2) throw new RangeError(`teco: needs at least 2 corruption types for a deviation, got ${this.#corruptions.length}`);
    this.params = params;
    this.fitted = { corruptions: corruptionNames };
  }

  scoreBatch(x: Tensor): RawScores {
    checkBatch(this.name, x, this.#ctx.preprocessing);
    const { model, preprocessing } = this.#ctx;
    return inferenceMode(() => {
      const pred = predictionOf(model, preprocessing, x);
      const flips = this.#corruptions.map(([, corrupt]) => {
        const bySeverity: Int32Array[] = [];
        for (let s = 1; s <= TECO_SEVERITIES; s++) bySeverity.push(tidy(() => predictionOf(model, preprocessing, corrupt(x, s))));
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
