// Choosing the finetuning rate of M' with only what a defender has. M' is M finetuned on the
// reserved clean set with correct labels; the triangle rule needs it to have *forgotten* the
// backdoor (a' low on triggered inputs) while still solving the clean task (a' high on clean
// inputs). Finetuning at a large rate is itself a known backdoor-removal defence, and a rate too
// strong wrecks M' (the clean task gone, or the weights diverged), so the rule takes the strongest
// candidate rate whose M' keeps most of M's clean accuracy on the calibration split (data M' never
// trains on): a strong M' that loses a few points forgets the backdoor better than a gentle one
// that keeps them all, and its threshold is calibrated on its own scores.
// The right rate differs by orders of magnitude between architectures (SGD at 0.1 suits a
// batch-normalised CNN and wrecks a LayerNorm transformer), so the candidates span that range and
// are tried from the strongest down. A candidate is judged early in its schedule, once the
// full-rate epochs have done their damage and the accuracy has settled; the first that passes runs
// on to the end of the schedule and is kept, so the chosen M' costs no second run. No poisoned
// data is used.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import type { Preprocessing, ModelSpec } from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import type { FinetuneOptions } from "./defaults.js";
import { finetuneAuxiliary } from "./fit.js";
import type { AuxiliaryRateRow, AuxiliaryRateSelection } from "./records.js";

export interface AuxiliaryRateOptions {
  finetune: FinetuneOptions;
  augment: AugmentOptions;
  seed: number;
  /** Candidate SGD rates (tried from the largest down). */
  candidates: readonly number[];
  /** Share of M's accuracy above chance (1 / classes) that M' must keep, in (0, 1]. */
  retain: number;
  /** Epochs of the schedule after which a candidate is judged (at most finetune.epochs). */
  probeEpochs: number;
  silent?: boolean;
  log?: (line: string) => void;
  device?: string;
}

/**
 * Finetunes M' at the candidate rates, strongest first, judging each after `probeEpochs`; returns
 * the first M' whose calibration accuracy keeps `retain` of M's accuracy above chance
 * (acc' ≥ 1/C + retain · (acc − 1/C)), finetuned to the end of its
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
  if (!(o.retain > 0 && o.retain <= 1))
    throw new RangeError(`selectFinetuneLr: retain must be in (0, 1], got ${o.retain}`);
  if (!(Number.isInteger(o.probeEpochs) && o.probeEpochs >= 1 && o.probeEpochs <= o.finetune.epochs)) {
    throw new RangeError(
      `selectFinetuneLr: probeEpochs must be an integer in [1, ${o.finetune.epochs}], got ${o.probeEpochs}`,
    );
  }
  const norm = { normalization: meta.preprocessing, ...(o.device && o.device !== "cpu" ? { device: o.device } : {}) };
  const modelAccuracy = evaluateModel(model, calibration, { normalization: meta.preprocessing }).accuracy;
  const chance = 1 / meta.spec.numClasses;
  const floor = chance + o.retain * (modelAccuracy - chance);
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
        log(
          `  M' at finetuning lr ${lr}: calibration accuracy ${(100 * calibrationAccuracy).toFixed(2)}% after ${epoch} epochs (M: ${(100 * modelAccuracy).toFixed(2)}%, floor ${(100 * floor).toFixed(2)}%)${row.kept ? "" : ", too costly"}`,
        );
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
      return {
        selection: {
          lr,
          modelAccuracy,
          retain: o.retain,
          probeEpochs: o.probeEpochs,
          table,
          conclusive: judged.kept,
          seconds: (Date.now() - t0) / 1000,
        },
        auxiliary: aux,
      };
    }
    aux.dispose();
  }
  throw new Error("selectFinetuneLr: unreachable");
}
