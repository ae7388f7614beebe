// Choosing the finetuning rate of M' with only what a defender has. M' is M finetuned on the
// reserved clean set with correct labels; the triangle rule needs it to have *forgotten* the
// backdoor (a' low on triggered inputs) while still solving the clean task (a' high on clean
// inputs). Finetuning at a large rate is itself a known backdoor-removal defence, and a rate too
// strong costs M' the clean task, so the rule takes the strongest candidate rate whose M' stays
// within `tolerance` of M's clean accuracy on the calibration split (data M' never trains on).
// The right rate differs by orders of magnitude between architectures (SGD at 0.1 suits a
// batch-normalised CNN and wrecks a LayerNorm transformer), so the candidates span that range and
// are tried from the strongest down. A candidate is judged after the schedule's first, full-rate
// epochs, where the damage is done; the first that passes runs on to the end of the schedule and
// is kept, so the chosen M' costs no second run. No poisoned data is used.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import type { Preprocessing, ModelSpec } from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import type { FinetuneOptions } from "./defaults.js";
import { finetuneAuxiliary } from "./fit.js";

export interface AuxiliaryRateRow {
  lr: number;
  /** The clean accuracy of M' on the calibration split when it was judged. */
  calibrationAccuracy: number;
  /** Whether this rate kept the accuracy within tolerance. */
  kept: boolean;
}

export interface AuxiliaryRateSelection {
  lr: number;
  /** M's clean accuracy on the calibration split, the reference. */
  modelAccuracy: number;
  tolerance: number;
  /** Epochs of the schedule after which each candidate is judged. */
  probeEpochs: number;
  /** The candidates tried, strongest first; the last row is the chosen rate's. */
  table: AuxiliaryRateRow[];
  /** False when no candidate kept the accuracy: the gentlest one is used. */
  conclusive: boolean;
  seconds: number;
}

export interface AuxiliaryRateOptions {
  finetune: FinetuneOptions;
  augment: AugmentOptions;
  seed: number;
  /** Candidate SGD rates (tried from the largest down). */
  candidates: readonly number[];
  /** Largest drop below M's calibration accuracy that a rate may cost (a fraction: 0.04 = 4 points). */
  tolerance: number;
  /** Epochs of the schedule after which a candidate is judged (at most finetune.epochs). */
  probeEpochs: number;
  silent?: boolean;
  log?: (line: string) => void;
  device?: string;
}

/**
 * Finetunes M' at the candidate rates, strongest first, judging each after `probeEpochs`; returns
 * the first M' that keeps calibration accuracy ≥ M's − tolerance, finetuned to the end of its
 * schedule (the caller owns it). When none does, the gentlest candidate's M' (it is never cut
 * short, so it is always there to fall back on).
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
  const candidates = [...o.candidates].sort((a, b) => b - a);
  if (candidates.length === 0 || candidates.some((lr) => !(lr > 0 && Number.isFinite(lr)))) {
    throw new RangeError(`selectFinetuneLr: candidates must be positive numbers, got ${JSON.stringify(o.candidates)}`);
  }
  if (!(o.tolerance >= 0 && o.tolerance < 1)) throw new RangeError(`selectFinetuneLr: tolerance must be in [0, 1), got ${o.tolerance}`);
  if (!(Number.isInteger(o.probeEpochs) && o.probeEpochs >= 1 && o.probeEpochs <= o.finetune.epochs)) {
    throw new RangeError(`selectFinetuneLr: probeEpochs must be an integer in [1, ${o.finetune.epochs}], got ${o.probeEpochs}`);
  }
  const norm = { normalization: meta.preprocessing, ...(o.device && o.device !== "cpu" ? { device: o.device } : {}) };
  const modelAccuracy = evaluateModel(model, calibration, { normalization: meta.preprocessing }).accuracy;
  const floor = modelAccuracy - o.tolerance;
  const table: AuxiliaryRateRow[] = [];
  for (const [i, lr] of candidates.entries()) {
    const last = i === candidates.length - 1;
    let row: AuxiliaryRateRow | undefined;
    const aux = await finetuneAuxiliary(model, meta.spec, reserved, {
      finetune: { ...o.finetune, lr },
      augment: o.augment,
      normalization: meta.preprocessing,
      seed: o.seed,
      silent: o.silent ?? true,
      ...(o.device ? { device: o.device } : {}),
      judge: (copy, epoch) => {
        if (epoch !== o.probeEpochs) return false;
        const calibrationAccuracy = evaluateModel(copy, calibration, norm).accuracy;
        copy.train();
        row = { lr, calibrationAccuracy, kept: calibrationAccuracy >= floor };
        log(`  M' at finetuning lr ${lr}: calibration accuracy ${(100 * calibrationAccuracy).toFixed(2)}% after ${epoch} epochs (M: ${(100 * modelAccuracy).toFixed(2)}%)${row.kept ? "" : ", too costly"}`);
        return !row.kept && !last;
      },
    });
    const judged = row as AuxiliaryRateRow | undefined;
    if (judged === undefined) {
      aux.dispose();
      throw new Error(`selectFinetuneLr: M' at rate ${lr} ended before epoch ${o.probeEpochs}`);
    }
    table.push(judged);
    if (judged.kept || last) {
      return { selection: { lr, modelAccuracy, tolerance: o.tolerance, probeEpochs: o.probeEpochs, table, conclusive: judged.kept, seconds: (Date.now() - t0) / 1000 }, auxiliary: aux };
    }
    aux.dispose();
  }
  throw new Error("selectFinetuneLr: unreachable");
}
