// Building BaDExpert for a suspicious model: choose B's unlearning rate, choose M''s finetuning
// rate, fit B and M', calibrate the threshold. The one place these steps are written: `defend`
// (jobs/defend.ts) and the registry's badexpert entry (detectors/badexpert.ts, which `compare`
// fits) both call buildBadExpert with the same nested options.
import type { ImageDataset } from "../data/dataset.js";
import type { Module } from "../nn/index.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { auxiliaryRateCandidates, canaryFinetune, choosesFinetuneLr, choosesUnlearnLr, defenseDefaults, type UnlearnLabelMapping } from "./defaults.js";
import { fitBadExpert, type FitDefenseOptions } from "./fit.js";
import { DEFAULT_CANARY_KINDS, selectUnlearnLr, type CanaryKind, type CanaryResult } from "./canary.js";
import { selectFinetuneLr, type AuxiliaryRateSelection } from "./auxiliary-rate.js";
import type { UnlearnLrSource } from "./creation.js";
import type { BadExpertDetector } from "./detector.js";
import type { ScoreRule } from "./scores.js";

/** B's unlearning. Every field defaults to the architecture's value (defense/defaults.ts). */
export interface UnlearnSettings {
  /** Adam learning rate, or "auto": chosen with canary backdoors of the defender's own (also the default where no fixed rate is known). */
  lr?: number | "auto";
  epochs?: number;
  /** The wrong labels B unlearns on (default "shift", the paper's (y + 1) mod C); the canaries use the same. */
  labels?: UnlearnLabelMapping;
  /** The canaries that choose the rate (default blend and patch); naming them means lr "auto". */
  canaries?: readonly CanaryKind[];
}

/** M''s clean finetuning. Every field defaults to the architecture's value. */
export interface FinetuneSettings {
  /** SGD learning rate, or "auto": the strongest of 1, 2, 5, 10x the reference rate that keeps M''s calibration accuracy (defense/auxiliary-rate.ts). */
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
  /** Where B, M' and the canaries are finetuned (default "cpu"). */
  device?: string;
  silent?: boolean;
  log?: (line: string) => void;
}

export interface BadExpertBuild {
  /** Calibrated; its creation record holds the rates, where B's came from and both selections. */
  detector: BadExpertDetector;
  /** The resolved fitting options. */
  options: FitDefenseOptions;
  unlearnLrSource: UnlearnLrSource;
  selection: CanaryResult | null;
  finetuneSelection: AuxiliaryRateSelection | null;
}

/** The suspicious model's description: architecture, preprocessing, classes, and the dataset its defaults are looked up for. */
export interface BuildMeta {
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  dataset: string;
}

/**
 * What is wrong with `o` for this model and dataset, before any work (the defend job reports it
 * as an OptionError naming the option); null when nothing is.
 */
export function buildOptionProblem(meta: Pick<BuildMeta, "spec" | "dataset">, o: BadExpertBuildOptions): { option: string; message: string } | null {
  const d = defenseDefaults(meta.spec.name, meta.dataset);
  const u = o.unlearn ?? {};
  if (u.canaries !== undefined && !choosesUnlearnLr(d, u.lr, true)) {
    return { option: "unlearn.canaries", message: `the canaries only choose B's unlearning rate, and here it is given (${String(u.lr)}); use unlearn.lr "auto" with them` };
  }
  return null;
}

/**
 * Builds BaDExpert for `model` from the defender's reserved and calibration splits. The canaries
 * choose B's rate where `unlearn.lr` is "auto" or no fixed rate is known for the architecture;
 * M''s rate is chosen where `finetune.lr` is "auto" or the architecture's default says so.
 * Naming canaries with a given rate is refused (they only choose the rate).
 */
export async function buildBadExpert(model: Module, meta: BuildMeta, reserved: ImageDataset, calibration: ImageDataset, o: BadExpertBuildOptions = {}): Promise<BadExpertBuild> {
  const log = o.log ?? ((l: string) => console.error(l));
  const d = defenseDefaults(meta.spec.name, meta.dataset);
  const u = o.unlearn ?? {};
  const f = o.finetune ?? {};
  const device = o.device ?? "cpu";
  const auto = choosesUnlearnLr(d, u.lr, u.canaries !== undefined);
  const problem = buildOptionProblem(meta, o);
  if (problem) throw new RangeError(`${problem.option}: ${problem.message}`);
  const options: FitDefenseOptions = {
    unlearn: {
      ...d.unlearn,
      lr: typeof u.lr === "number" ? u.lr : d.unlearn.lr,
      epochs: u.epochs ?? d.unlearn.epochs,
      ...(u.labels !== undefined ? { labels: u.labels } : {}),
    },
    finetune: { ...d.finetune, lr: typeof f.lr === "number" ? f.lr : d.finetune.lr, gamma: f.gamma ?? d.finetune.gamma, epochs: f.epochs ?? d.finetune.epochs },
    augment: d.augment,
    rule: o.calibration?.rule ?? "triangle",
    targetFpr: o.calibration?.targetFpr ?? d.targetFpr,
    seed: o.seed ?? 0,
    silent: o.silent ?? false,
    device,
  };
  const fitMeta = { spec: meta.spec, preprocessing: meta.preprocessing, classNames: meta.classNames };
  let selection: CanaryResult | null = null;
  if (auto) {
    const kinds = u.canaries ?? DEFAULT_CANARY_KINDS;
    log(`choosing the unlearning rate with canary backdoors of our own (${kinds.join(", ")}; defender-side data only)`);
    // Planted at the reference rate, whatever rate M' gets (DefenseDefaults.referenceFinetuneLr).
    selection = await selectUnlearnLr(model, fitMeta, reserved, calibration, { ...options, finetune: canaryFinetune(d), kinds, log });
    options.unlearn.lr = selection.lr;
    log(`${selection.conclusive ? "selected" : "kept the static"} unlearning lr ${selection.lr} in ${selection.seconds.toFixed(0)} s`);
  }
  const unlearnLrSource: UnlearnLrSource = !auto
    ? typeof u.lr === "number" ? "given" : d.unlearnLrSource === "default" ? "default" : "paper"
    : selection?.conclusive ? "canary" : "canary-inconclusive";
  let finetuneSelection: AuxiliaryRateSelection | null = null;
  let auxiliary: Module | undefined;
  if (choosesFinetuneLr(d, f.lr)) {
    log("choosing the finetuning rate of M': the strongest that keeps its clean accuracy on the calibration split");
    const chosen = await selectFinetuneLr(model, fitMeta, reserved, calibration, { finetune: options.finetune, candidates: auxiliaryRateCandidates(d), augment: options.augment, seed: options.seed, log, device });
    finetuneSelection = chosen.selection;
    auxiliary = chosen.auxiliary;
    options.finetune.lr = chosen.selection.lr;
    log(`selected finetuning lr ${chosen.selection.lr} for M' in ${chosen.selection.seconds.toFixed(0)} s`);
  }
  const detector = await fitBadExpert(model, fitMeta, reserved, calibration, options, auxiliary ? { auxiliary } : {});
  detector.info.creation = {
    ...detector.info.creation,
    unlearnLrSource,
    ...(selection ? { unlearnSelection: selection } : {}),
    ...(finetuneSelection ? { finetuneSelection } : {}),
  };
  return { detector, options, unlearnLrSource, selection, finetuneSelection };
}
