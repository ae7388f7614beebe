// The one procedure that makes B and M' for any model: each rate is either given by the user or
// chosen from the model's own behaviour on the defender's clean data — B unlearns until it has
// forgotten the clean task (expert-extraction.ts), M' takes the strongest rate that keeps its
// clean accuracy (auxiliary-rate.ts). Nothing depends on the architecture or the dataset.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import { subset } from "../data/splits.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import {
  DEFAULT_FINETUNE,
  DEFAULT_UNLEARNING,
  FINETUNE_PROBE_EPOCHS,
  FINETUNE_RATE_CANDIDATES,
  FINETUNE_RETAINED,
  GIVEN_RATE_UNLEARNING,
  UNLEARNING_MONITOR_IMAGES,
  type FinetuneOptions,
  type UnlearnLabelMapping,
  type UnlearnOptions,
} from "./defaults.js";
import { extractExpertUntilForgotten } from "./expert-extraction.js";
import type { UnlearningTrace } from "./records.js";
import { selectFinetuneLr } from "./auxiliary-rate.js";
import type { AuxiliaryRateSelection } from "./records.js";

export interface ProcedureOptions {
  /** B's Adam rate for one epoch; omitted: unlearn until forgotten. */
  unlearnLr?: number;
  /** Passes over the reserved set: B's epochs at a given rate, or the cap of the unlearning. */
  unlearnEpochs?: number;
  unlearnLabels?: UnlearnLabelMapping;
  /** M''s SGD rate; omitted: the strongest candidate that keeps the clean accuracy. */
  finetuneLr?: number;
  finetuneGamma?: number;
  finetuneEpochs?: number;
  augment: AugmentOptions;
  seed: number;
  silent?: boolean;
  device?: string;
  log: (line: string) => void;
}

export interface ProcedureResult {
  /** B when the procedure made it (the caller owns it); undefined when its rate was given. */
  expert?: Module;
  /** M' when the procedure made it (the caller owns it); undefined when its rate was given. */
  auxiliary?: Module;
  /** The settings B and M' were (or are to be) made with, as the bundle records them. */
  unlearn: UnlearnOptions;
  finetune: FinetuneOptions;
  unlearning: UnlearningTrace | null;
  finetuneSelection: AuxiliaryRateSelection | null;
}

/**
 * Makes what the options leave to the procedure: B (unlearned until forgotten) and M' (its rate
 * chosen). The calibration split's first images watch B; the whole split judges M'.
 */
export async function makeExpertAndAuxiliary(
  model: Module,
  meta: { spec: ModelSpec; preprocessing: Preprocessing },
  reserved: ImageDataset,
  calibration: ImageDataset,
  o: ProcedureOptions,
): Promise<ProcedureResult> {
  const labels = o.unlearnLabels !== undefined ? { labels: o.unlearnLabels } : {};
  const finetune: FinetuneOptions = {
    ...DEFAULT_FINETUNE,
    lr: o.finetuneLr ?? (FINETUNE_RATE_CANDIDATES[0] as number),
    gamma: o.finetuneGamma ?? DEFAULT_FINETUNE.gamma,
    epochs: o.finetuneEpochs ?? DEFAULT_FINETUNE.epochs,
  };
  let unlearn: UnlearnOptions = {
    ...GIVEN_RATE_UNLEARNING,
    lr: o.unlearnLr ?? DEFAULT_UNLEARNING.startLr,
    epochs: o.unlearnEpochs ?? GIVEN_RATE_UNLEARNING.epochs,
    ...labels,
  };
  let expert: Module | undefined;
  let unlearning: UnlearningTrace | null = null;
  if (o.unlearnLr === undefined) {
    o.log(
      `B: unlearning until its clean accuracy on held-out images falls to ${(100 * DEFAULT_UNLEARNING.forgetAccuracy).toFixed(0)}%`,
    );
    const monitor = subset(
      calibration,
      Int32Array.from({ length: Math.min(UNLEARNING_MONITOR_IMAGES, calibration.count) }, (_, i) => i),
    );
    const made = await extractExpertUntilForgotten(model, meta.spec, reserved, monitor, {
      unlearn: {
        ...DEFAULT_UNLEARNING,
        ...labels,
        ...(o.unlearnEpochs !== undefined ? { maxEpochs: o.unlearnEpochs } : {}),
      },
      augment: o.augment,
      normalization: meta.preprocessing,
      seed: o.seed,
      silent: o.silent ?? false,
      ...(o.device !== undefined ? { device: o.device } : {}),
    });
    expert = made.expert;
    unlearning = made.trace;
    const stepsPerEpoch = Math.ceil(reserved.count / DEFAULT_UNLEARNING.batchSize);
    unlearn = {
      lr: made.trace.finalLr,
      epochs: Math.max(1, Math.ceil(made.trace.steps / stepsPerEpoch)),
      batchSize: DEFAULT_UNLEARNING.batchSize,
      ...labels,
    };
    const line =
      `B: ${made.trace.steps} steps, rate up to ${made.trace.finalLr.toExponential(1)}, clean accuracy ` +
      `${(100 * made.trace.modelAccuracy).toFixed(1)}% -> ${(100 * made.trace.monitorAccuracy).toFixed(1)}% in ${made.trace.seconds.toFixed(0)} s`;
    o.log(
      made.trace.forgotten
        ? line
        : `warning: ${line}: B did not forget the clean task within ${DEFAULT_UNLEARNING.maxEpochs} passes; its scores separate less`,
    );
  }
  let auxiliary: Module | undefined;
  let finetuneSelection: AuxiliaryRateSelection | null = null;
  if (o.finetuneLr === undefined) {
    o.log(
      `M': the strongest SGD rate of ${FINETUNE_RATE_CANDIDATES.join(", ")} that keeps ${100 * FINETUNE_RETAINED}% of M's clean accuracy above chance`,
    );
    try {
      const chosen = await selectFinetuneLr(model, meta, reserved, calibration, {
        finetune,
        candidates: FINETUNE_RATE_CANDIDATES,
        retain: FINETUNE_RETAINED,
        probeEpochs: Math.min(FINETUNE_PROBE_EPOCHS, finetune.epochs),
        augment: o.augment,
        seed: o.seed,
        log: o.log,
        silent: o.silent ?? false,
        ...(o.device !== undefined ? { device: o.device } : {}),
      });
      finetuneSelection = chosen.selection;
      auxiliary = chosen.auxiliary;
      finetune.lr = chosen.selection.lr;
      o.log(
        `M': ${chosen.selection.conclusive ? "chose" : "no rate kept the accuracy; kept the gentlest,"} rate ${chosen.selection.lr} in ${chosen.selection.seconds.toFixed(0)} s`,
      );
    } catch (e) {
      expert?.dispose();
      throw e;
    }
  }
  return {
    ...(expert ? { expert } : {}),
    ...(auxiliary ? { auxiliary } : {}),
    unlearn,
    finetune,
    unlearning,
    finetuneSelection,
  };
}
