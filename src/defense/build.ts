// Building BaDExpert for a suspicious model: make B and M' with the model-agnostic procedure
// (defense/procedure.ts), fit them, calibrate the threshold. The one place these steps are written: `defend`
// (jobs/defend.ts) and the registry's badexpert entry (detectors/badexpert.ts, which `compare`
// fits) both call buildBadExpert with the same nested options.
import type { ImageDataset } from "../data/dataset.js";
import type { Module } from "../nn/index.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { DEFAULT_TARGET_FPR, finetuneAugment, type UnlearnLabelMapping } from "./defaults.js";
import { makeExpertAndAuxiliary } from "./procedure.js";
import { fitBadExpert, type FitDefenseOptions } from "./fit.js";
import type { AuxiliaryRateSelection, UnlearningTrace } from "./records.js";
import type { UnlearnLrSource } from "./creation.js";
import type { BadExpertDetector } from "./detector.js";
import type { ScoreRule } from "./scores.js";

/** B's unlearning. */
export interface UnlearnSettings {
  /** Adam learning rate for one epoch (the paper's recipe). Omitted or "auto": B unlearns until it has forgotten the clean task. */
  lr?: number | "auto";
  /** B's epochs at a given rate, or the cap on the passes of the unlearning until forgotten. */
  epochs?: number;
  /** The wrong labels B unlearns on (default "shift", the paper's (y + 1) mod C). */
  labels?: UnlearnLabelMapping;
}

/** M''s clean finetuning. */
export interface FinetuneSettings {
  /** SGD learning rate. Omitted or "auto": the strongest candidate that keeps M''s clean accuracy (defense/auxiliary-rate.ts). */
  lr?: number | "auto";
  gamma?: number;
  epochs?: number;
}

/** The threshold: the score rule and the false-positive rate it is calibrated at on clean inputs. */
export interface CalibrationSettings {
  rule?: ScoreRule;
  targetFpr?: number;
}

export interface BadExpertBuildOptions {
  unlearn?: UnlearnSettings;
  finetune?: FinetuneSettings;
  calibration?: CalibrationSettings;
  /** Seed of the finetuning runs (default 0). */
  seed?: number;
  /** Where B and M' are finetuned (default "cpu"). */
  device?: string;
  silent?: boolean;
  log?: (line: string) => void;
}

export interface BadExpertBuild {
  /** Calibrated; its creation record holds the rates, where B's came from, B's unlearning and M''s selection. */
  detector: BadExpertDetector;
  /** The resolved fitting options. */
  options: FitDefenseOptions;
  unlearnLrSource: UnlearnLrSource;
  finetuneSelection: AuxiliaryRateSelection | null;
  /** How B's unlearning went when it ran until forgotten. */
  unlearning: UnlearningTrace | null;
}

/** The suspicious model's description: architecture, preprocessing, classes, and the dataset (its augmentation). */
export interface BuildMeta {
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  dataset: string;
}

/**
 * Builds BaDExpert for `model` from the defender's reserved and calibration splits. B unlearns
 * until it has forgotten the clean task unless its rate is given; M''s rate is chosen unless given.
 */
export async function buildBadExpert(
  model: Module,
  meta: BuildMeta,
  reserved: ImageDataset,
  calibration: ImageDataset,
  o: BadExpertBuildOptions = {},
): Promise<BadExpertBuild> {
  const log = o.log ?? ((l: string) => console.error(l));
  const u = o.unlearn ?? {};
  const f = o.finetune ?? {};
  const device = o.device ?? "cpu";
  const seed = o.seed ?? 0;
  const silent = o.silent ?? false;
  const augment = finetuneAugment(meta.dataset);
  const fitMeta = { spec: meta.spec, preprocessing: meta.preprocessing, classNames: meta.classNames };
  const made = await makeExpertAndAuxiliary(model, fitMeta, reserved, calibration, {
    ...(typeof u.lr === "number" ? { unlearnLr: u.lr } : {}),
    ...(u.epochs !== undefined ? { unlearnEpochs: u.epochs } : {}),
    ...(u.labels !== undefined ? { unlearnLabels: u.labels } : {}),
    ...(typeof f.lr === "number" ? { finetuneLr: f.lr } : {}),
    ...(f.gamma !== undefined ? { finetuneGamma: f.gamma } : {}),
    ...(f.epochs !== undefined ? { finetuneEpochs: f.epochs } : {}),
    augment,
    seed,
    silent,
    device,
    log,
  });
  const options: FitDefenseOptions = {
    unlearn: made.unlearn,
    finetune: made.finetune,
    augment,
    rule: o.calibration?.rule ?? "triangle",
    targetFpr: o.calibration?.targetFpr ?? DEFAULT_TARGET_FPR,
    seed,
    silent,
    device,
  };
  const unlearnLrSource: UnlearnLrSource = typeof u.lr === "number" ? "given" : "until-forgotten";
  const { unlearning, finetuneSelection } = made;
  const detector = await fitBadExpert(model, fitMeta, reserved, calibration, options, {
    ...(made.expert ? { expert: made.expert } : {}),
    ...(made.auxiliary ? { auxiliary: made.auxiliary } : {}),
  });
  detector.info.creation = {
    ...detector.info.creation,
    unlearnLrSource,
    ...(unlearning ? { unlearning } : {}),
    ...(finetuneSelection ? { finetuneSelection } : {}),
  };
  return { detector, options, unlearnLrSource, finetuneSelection, unlearning };
}
