// Choosing the finetuning rate of M' with only what a defender has. M' is M finetuned on the reserved
// clean set with correct labels; the triangle rule needs it to have *forgotten* the backdoor
// (a' low on triggered inputs) while still solving the clean task (a' high on clean inputs).
// Measured (BENCHMARKS.md, "BaDExpert: the finetuning rate of M' chosen by the defender"), a gentle rate leaves conditional
// backdoors such as TaCT's whole in M', and a rate too strong costs M' the clean task. Finetuning
// at a large rate is itself a known backdoor-removal defence, so the rule takes the strongest
// candidate rate whose M' stays within `tolerance` of M's clean accuracy on the calibration split
// (data M' never trained on). No poisoned data is used.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import type { Preprocessing, ModelSpec } from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import type { FinetuneOptions } from "./defaults.js";
import { finetuneAuxiliary } from "./fit.js";

/** Candidate rates as multiples of the architecture's reference finetuning rate (DefenseDefaults.referenceFinetuneLr). */
export const AUXILIARY_RATE_FACTORS: readonly number[] = [1, 2, 5, 10];
/**
 * Largest drop of the calibration accuracy of M' below M's that a rate may cost (a fraction: 0.04 = 4
 * points). M' may lose some clean accuracy: the threshold is calibrated on its own scores. Chosen
 * on three development models (TaCT, Adaptive-Patch, WaNet; `npm run bench:auxiliary`,
 * BENCHMARKS.md): the rate that helps TaCT and Adaptive-Patch (0.05) costs them 1.75 and 3.1
 * points, and WaNet 3.35 points at no loss of AUROC; 10x costs 5–9 points and helped only TaCT.
 */
export const DEFAULT_AUXILIARY_TOLERANCE = 0.04;

export interface AuxiliaryRateRow {
  lr: number;
  /** The clean accuracy of M' on the calibration split. */
  calibrationAccuracy: number;
}

export interface AuxiliaryRateSelection {
  lr: number;
  /** M's clean accuracy on the calibration split, the reference. */
  modelAccuracy: number;
  tolerance: number;
  table: AuxiliaryRateRow[];
  seconds: number;
}

/**
 * The strongest rate whose M' keeps calibration accuracy ≥ M's − tolerance. When none does (M'
 * loses accuracy even at the gentlest rate), the gentlest rate: it is the paper's setting and
 * costs the clean task least.
 */
export function chooseFinetuneLr(table: readonly AuxiliaryRateRow[], modelAccuracy: number, tolerance: number = DEFAULT_AUXILIARY_TOLERANCE): number {
  if (table.length === 0) throw new RangeError("chooseFinetuneLr: no candidate rates");
  if (!(tolerance >= 0 && tolerance < 1)) throw new RangeError(`chooseFinetuneLr: tolerance must be in [0, 1), got ${tolerance}`);
  const rows = [...table].sort((a, b) => a.lr - b.lr);
  const kept = rows.filter((r) => r.calibrationAccuracy >= modelAccuracy - tolerance);
  return (kept.length > 0 ? kept[kept.length - 1] : rows[0])?.lr as number;
}

export interface AuxiliaryRateOptions {
  finetune: FinetuneOptions;
  augment: AugmentOptions;
  seed: number;
  /**
   * Candidate rates. Callers take them from the defaults (auxiliaryRateCandidates in
   * ./defaults.ts: AUXILIARY_RATE_FACTORS times the reference rate, not M''s default rate).
   */
  candidates: readonly number[];
  tolerance?: number;
  silent?: boolean;
  log?: (line: string) => void;
  device?: string;
}

/**
 * Finetunes M' at every candidate rate and keeps the one the rule picks. Returns that M' (the
 * caller owns it; the others are disposed), so the detector does not finetune it a second time.
 */
export async function selectFinetuneLr(
  model: Module,
  meta: { spec: ModelSpec; preprocessing: Preprocessing },
  reserved: ImageDataset,
  calibration: ImageDataset,
  o: AuxiliaryRateOptions,
): Promise<{ selection: AuxiliaryRateSelection; auxiliary: Module }> {
  const t0 = Date.now();
  const log = o.log ?? ((l: string) => console.error(l));
  const tolerance = o.tolerance ?? DEFAULT_AUXILIARY_TOLERANCE;
  const candidates = [...o.candidates].sort((a, b) => a - b);
  if (candidates.length === 0 || candidates.some((lr) => !(lr > 0 && Number.isFinite(lr)))) {
    throw new RangeError(`selectFinetuneLr: candidates must be positive numbers, got ${JSON.stringify(candidates)}`);
  }
  const norm = { normalization: meta.preprocessing };
  const modelAccuracy = evaluateModel(model, calibration, norm).accuracy;
  const fitted = new Map<number, Module>();
  const table: AuxiliaryRateRow[] = [];
  try {
    for (const lr of candidates) {
      const aux = await finetuneAuxiliary(model, meta.spec, reserved, {
        finetune: { ...o.finetune, lr }, augment: o.augment, normalization: meta.preprocessing, seed: o.seed, silent: o.silent ?? true,
        ...(o.device ? { device: o.device } : {}),
      });
      fitted.set(lr, aux);
      const calibrationAccuracy = evaluateModel(aux, calibration, norm).accuracy;
      table.push({ lr, calibrationAccuracy });
      log(`  M' at finetuning lr ${lr}: calibration accuracy ${(100 * calibrationAccuracy).toFixed(2)}% (M: ${(100 * modelAccuracy).toFixed(2)}%)`);
    }
    const lr = chooseFinetuneLr(table, modelAccuracy, tolerance);
    const auxiliary = fitted.get(lr) as Module;
    fitted.delete(lr);
    return { selection: { lr, modelAccuracy, tolerance, table, seconds: (Date.now() - t0) / 1000 }, auxiliary };
  } finally {
    for (const m of fitted.values()) m.dispose();
  }
}
