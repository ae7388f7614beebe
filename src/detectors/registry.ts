// The input-level detectors the toolkit knows by name: a data table (name → paper, cost, parameter
// table, what its bundles and engines can do, fit, restore) that defend, compare, the CLI, the
// service and the benchmarks read. fitDetector() is the one entry
// point: it resolves and validates the parameters before any work starts; an unknown name lists
// the valid ones.
import type { ImageDataset } from "../data/dataset.js";
import type { ParamValue } from "../attacks/attack.js";
import type { Tensor } from "../engine/index.js";
import type { DetectorContext, DetectorState, InputDetector } from "./detector.js";
import { resolveDetectorParams, type DetectorParamTable } from "./params.js";
import { BadExpertEntry, BADEXPERT_PARAMS } from "./badexpert.js";
import { StripDetector, STRIP_PARAMS } from "./strip.js";
import { ScaleUpDetector, SCALE_UP_PARAMS } from "./scale-up.js";
import { TecoDetector, TECO_PARAMS } from "./teco.js";
import { IbdPscDetector, IBD_PSC_PARAMS } from "./ibd-psc.js";
import { CognitiveDistillationDetector, CD_PARAMS } from "./cognitive-distillation.js";
import { FrequencyDetector, FREQUENCY_PARAMS, frequencyWeights } from "./frequency.js";
import { SentiNetDetector, SENTINET_PARAMS, type Quadratic } from "./sentinet.js";

export interface FitData {
  /** The defender's reserved clean set (what every detector may learn from). */
  reserved: ImageDataset;
  /** The clean calibration split: only BaDExpert reads it while fitting (B's stopping point, M''s rate; as `defend` does). */
  calibration: ImageDataset;
}

export interface DetectorEntry {
  name: string;
  paper: string;
  /** What scoring one input costs, in words. */
  cost: string;
  params: DetectorParamTable;
  /**
   * Randomness while scoring: "seeded" draws from the seed parameter, per call, or per input when
   * scoreBatch gets seeds (the service and scan pass inputSeeds); absent: none.
   */
  randomness?: "seeded";
  /** Its bundles carry an Ed25519 signature when written with a key (BaDExpert's); absent: never signed. */
  signs?: true;
  /** It exports to one ONNX graph, so onnxruntime can score it (export/onnx-detector.ts); absent: libtorch only. */
  onnx?: true;
  /** Its verdicts can be explained (B's saliency: `explain`, the report's "What the detector saw", the dashboard). */
  explains?: true;
  fit(
    ctx: DetectorContext,
    data: FitData,
    params: Record<string, ParamValue>,
    log: (l: string) => void,
  ): Promise<InputDetector>;
  /** Rebuilds a fitted detector from a baseline bundle's saved state (absent: the detector keeps its models in a bundle of its own, BaDExpert's). */
  restore?(ctx: DetectorContext, params: Record<string, ParamValue>, state: DetectorState): InputDetector;
}

function jsonNumber(state: DetectorState, key: string): number {
  const v = state.json[key];
  if (typeof v !== "number")
    throw new RangeError(`detector bundle: state.${key} must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function jsonNumbers(state: DetectorState, key: string, length?: number): number[] {
  const v = state.json[key];
  if (
    !Array.isArray(v) ||
    (length !== undefined && v.length !== length) ||
    !v.every((x): x is number => typeof x === "number")
  ) {
    throw new RangeError(
      `detector bundle: state.${key} must be a list of ${length ?? "any number of"} numbers, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

function savedTensor(state: DetectorState, key: string): Tensor {
  const t = state.tensors.get(key);
  if (!t)
    throw new RangeError(
      `detector bundle: the state has no tensor '${key}' (has: ${[...state.tensors.keys()].join(", ") || "none"})`,
    );
  return t;
}

const REGISTRY: readonly DetectorEntry[] = [
  {
    name: "badexpert",
    paper: "Xie et al., ICLR 2024",
    cost: "3 forward passes (M, B, M'); fitting finetunes B and M' (M' at up to 5 rates)",
    params: BADEXPERT_PARAMS,
    signs: true,
    onnx: true,
    explains: true,
    fit: (ctx, d, p, log) => BadExpertEntry.fit(ctx, d.reserved, d.calibration, p, log),
  },
  {
    name: "strip",
    paper: "Gao et al., ACSAC 2019",
    cost: "1 + n forward passes (n = 100)",
    params: STRIP_PARAMS,
    randomness: "seeded",
    fit: async (ctx, d, p) => new StripDetector(ctx, d.reserved, p),
    restore: (ctx, p, st) => new StripDetector(ctx, { pool: savedTensor(st, "pool") }, p),
  },
  {
    name: "scale-up",
    paper: "Guo et al., ICLR 2023",
    cost: "1 + |scales| forward passes (7)",
    params: SCALE_UP_PARAMS,
    fit: async (ctx, d, p) => new ScaleUpDetector(ctx, d.reserved, p),
    restore: (ctx, p, st) => new ScaleUpDetector(ctx, { classMeanSpc: jsonNumbers(st, "classMeanSpc") }, p),
  },
  {
    name: "teco",
    paper: "Liu et al., CVPR 2023",
    cost: "1 + 5 forward passes per corruption type (76 with all 15)",
    params: TECO_PARAMS,
    randomness: "seeded",
    fit: async (ctx, _d, p) => new TecoDetector(ctx, p),
    restore: (ctx, p) => new TecoDetector(ctx, p),
  },
  {
    name: "ibd-psc",
    paper: "Hou et al., ICML 2024",
    cost: "1 + n forward passes of BN-amplified copies (n = 5, fewer when copies coincide)",
    params: IBD_PSC_PARAMS,
    fit: async (ctx, d, p) => new IbdPscDetector(ctx, d.reserved, p),
    restore: (ctx, p, st) => new IbdPscDetector(ctx, { startDepth: jsonNumber(st, "startDepth") }, p),
  },
  {
    name: "cd",
    paper: "Huang et al., ICLR 2023 (Cognitive Distillation)",
    cost: "1 pass + `steps` (100) forward and backward passes of a mask optimisation",
    params: CD_PARAMS,
    randomness: "seeded",
    fit: async (ctx, _d, p) => new CognitiveDistillationDetector(ctx, p),
    restore: (ctx, p) => new CognitiveDistillationDetector(ctx, p),
  },
  {
    name: "frequency",
    paper: "Zeng et al., ICCV 2021 (frequency perspective)",
    cost: "1 pass of M + 1 pass of a small CNN on the image's 2-D DCT; fitting trains that CNN on the reserved set",
    params: FREQUENCY_PARAMS,
    fit: async (ctx, d, p) => new FrequencyDetector(ctx, d.reserved, p),
    restore: (ctx, p, st) => {
      const det = new FrequencyDetector(ctx, { weights: frequencyWeights(st.tensors) }, p);
      // The weights were copied into the network: the loaded tensors are not needed after this.
      for (const t of st.tensors.values()) t.dispose();
      return det;
    },
  },
  {
    name: "sentinet",
    paper: "Chou et al., IEEE S&P Workshops 2020 (SentiNet)",
    cost: "1 pass + a Grad-CAM backward pass + 2n passes (n = 100 clean images with the region, and with noise, pasted)",
    params: SENTINET_PARAMS,
    randomness: "seeded",
    fit: async (ctx, d, p) => new SentiNetDetector(ctx, d.reserved, p),
    restore: (ctx, p, st) =>
      new SentiNetDetector(
        ctx,
        { pool: savedTensor(st, "pool"), boundary: jsonNumbers(st, "boundary", 3) as Quadratic },
        p,
      ),
  },
];

export function detectorNames(): string[] {
  return REGISTRY.map((e) => e.name);
}

export function detectorInfo(name: string): DetectorEntry {
  const e = REGISTRY.find((d) => d.name === name);
  if (!e) throw new RangeError(`unknown detector '${name}'; valid names: ${detectorNames().join(", ")}`);
  return e;
}

/** "all" or a comma-separated list of names, each checked (an unknown one lists the valid names). */
export function parseDetectorList(text: string): string[] {
  if (text.trim() === "all") return detectorNames();
  const list = text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new RangeError(
      `detectors: expected 'all' or a comma-separated list of ${detectorNames().join(", ")}, got '${text}'`,
    );
  for (const n of list) detectorInfo(n);
  return [...new Set(list)];
}

/** Resolves `overrides` against the detector's table, then fits it. */
export async function fitDetector(
  name: string,
  ctx: DetectorContext,
  data: FitData,
  overrides: Readonly<Record<string, ParamValue>> = {},
  log: (l: string) => void = () => {},
): Promise<InputDetector> {
  const e = detectorInfo(name);
  const params = resolveDetectorParams(name, e.params, overrides);
  return e.fit(ctx, data, params, log);
}
