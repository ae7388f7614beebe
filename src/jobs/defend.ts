// The defend job, shared by the CLI, the demo and the benchmarks: load a checkpoint and its
// dataset, take the defender's splits, choose the unlearning rate, fit BaDExpert, save the bundle.
import type { ImageDataset } from "../data/dataset.js";
import { loadDataset } from "../data/registry.js";
import { subset } from "../data/splits.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import type { UnlearnLrSource } from "../defense/creation.js";
import { DEFAULT_FINETUNE, DEFAULT_TARGET_FPR, DEFAULT_UNLEARNING, finetuneAugment, GIVEN_RATE_UNLEARNING, UNLEARN_LABEL_MAPPINGS, type UnlearnLabelMapping } from "../defense/defaults.js";
import { makeExpertAndAuxiliary } from "../defense/procedure.js";
import type { UnlearningTrace } from "../defense/records.js";
import { fitBadExpert, type FitDefenseOptions } from "../defense/fit.js";
import { saveBundle } from "../defense/bundle.js";
import { signingKey, type KeyInput } from "../defense/signature.js";
import { assertWritableDir } from "../util/atomic-dir.js";
import { BASELINE_BUNDLE_DIR, DETECTOR_BUNDLE_DIRS } from "../detectors/bundle.js";
import { defaultSplitSpec, defenseSplits, type DefenseSplitSpec } from "../defense/splits.js";
import { CANARY_KINDS, selectUnlearnLr, type CanaryKind, type CanaryResult } from "../defense/canary.js";
import type { AuxiliaryRateSelection } from "../defense/records.js";
import type { ScoreRule } from "../defense/scores.js";
import { ceilingWarning, type Calibration } from "../defense/threshold.js";
import { checkJobDevice } from "./device.js";
import { OptionError } from "./errors.js";
import { requireDataPath } from "./data-path.js";

export interface DefendOptions {
  checkpoint: string;
  out: string;
  dataset?: string;
  dataPath?: string;
  reserved?: number;
  calibration?: number;
  splitSeed?: number;
  /**
   * B's Adam rate for one epoch (the paper's recipe). Omitted or "auto": B unlearns until it has
   * forgotten the clean task (src/defense/procedure.ts).
   */
  unlearnLr?: number | "auto";
  /** Choose B's fixed rate with these canary backdoors instead (blend, patch, conditional). */
  canaries?: readonly CanaryKind[];
  unlearnEpochs?: number;
  /** The wrong labels B unlearns on (default "shift", the paper's (y + 1) mod C); the canaries use the same. */
  unlearnLabels?: UnlearnLabelMapping;
  /** The SGD rate of M'. Omitted or "auto": the strongest candidate that keeps M''s clean accuracy (src/defense/auxiliary-rate.ts). */
  finetuneLr?: number | "auto";
  finetuneGamma?: number;
  finetuneEpochs?: number;
  rule?: ScoreRule;
  targetFpr?: number;
  seed?: number;
  /** Replace an existing non-empty `out` (otherwise refused before any work). */
  force?: boolean;
  /** Ed25519 private key (KeyObject or PEM path): sign the bundle. */
  signKey?: KeyInput;
  /** Where B, M' and the canaries are finetuned (default "cpu"); checked before any work. */
  device?: string;
  silent?: boolean;
  log?: (line: string) => void;
}

export interface DefendResult {
  bundle: string;
  threshold: number;
  calibration: Calibration;
  options: FitDefenseOptions;
  splits: { reserved: number; calibration: number; evaluation: number };
  /** Where B's rate came from, as the bundle records it. */
  unlearnLrSource: UnlearnLrSource;
  selection: CanaryResult | null;
  finetuneSelection: AuxiliaryRateSelection | null;
  /** How B's unlearning went when it ran until forgotten. */
  unlearning: UnlearningTrace | null;
  seconds: { expert: number; auxiliary: number; calibration: number; selection: number; finetuneSelection: number };
}

export async function testSplit(name: string, path: string | undefined, imageSize: [number, number], channels: number): Promise<ImageDataset> {
  requireDataPath(name, path);
  return loadDataset(name, { split: "test", ...(path ? { path } : {}), imageSize, channels: channels === 1 ? 1 : 3 });
}

/**
 * The threshold at false-positive rate f is a quantile of the calibration scores: with fewer than
 * 1/f clean images it is just the largest score seen, and the achieved FPR is anyone's guess.
 */
export function minCalibrationCount(targetFpr: number): number {
  return Math.ceil(1 / targetFpr - 1e-9);
}

function checkCalibrationSize(count: number, targetFpr: number, given: boolean): void {
  const need = minCalibrationCount(targetFpr);
  if (count < need) {
    throw new OptionError(
      "calibration",
      `${count} ${given ? "" : "(default) "}calibration images cannot calibrate a threshold at FPR ${targetFpr}: it needs at least 1/FPR = ${need} ` +
        "(give more with --calibration, or a larger --fpr)",
    );
  }
}

export async function defendCheckpoint(o: DefendOptions): Promise<DefendResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  // Refused before minutes of finetuning, not after.
  await assertWritableDir(o.out, { kinds: DETECTOR_BUNDLE_DIRS, replace: o.force === true, forceHint: "--force", argument: "--out" });
  if (o.signKey !== undefined) await signingKey(o.signKey);
  const device = o.device ?? "cpu";
  checkJobDevice(device);
  if (o.targetFpr !== undefined && !(o.targetFpr > 0 && o.targetFpr < 1)) throw new OptionError("targetFpr", `expected a number in (0, 1), got ${o.targetFpr}`);
  if (o.unlearnLabels !== undefined && !UNLEARN_LABEL_MAPPINGS.includes(o.unlearnLabels)) {
    throw new OptionError("unlearnLabels", `expected one of ${UNLEARN_LABEL_MAPPINGS.join(", ")}, got ${JSON.stringify(o.unlearnLabels)}`);
  }
  if (o.canaries !== undefined && (o.canaries.length === 0 || o.canaries.some((k) => !CANARY_KINDS.includes(k)) || new Set(o.canaries).size !== o.canaries.length)) {
    throw new OptionError("canaries", `expected distinct names from ${CANARY_KINDS.join(", ")}, got ${JSON.stringify(o.canaries)}`);
  }
  const { model, meta } = await loadCheckpoint(o.checkpoint);
  try {
    const name = o.dataset ?? meta.dataset.name;
    const path = o.dataPath ?? (name === meta.dataset.name ? meta.dataset.path : undefined);
    const test = await testSplit(name, path, meta.preprocessing.imageSize, meta.preprocessing.channels);
    if (test.classNames.length !== meta.model.numClasses) {
      throw new RangeError(`dataset ${name} has ${test.classNames.length} classes but the model has ${meta.model.numClasses}`);
    }
    const def = defaultSplitSpec(meta.dataset.trainCount, test.count, o.splitSeed ?? 0);
    const spec: DefenseSplitSpec = { ...def, reserved: o.reserved ?? def.reserved, calibration: o.calibration ?? def.calibration };
    const targetFpr = o.targetFpr ?? DEFAULT_TARGET_FPR;
    checkCalibrationSize(spec.calibration, targetFpr, o.calibration !== undefined);
    const splits = defenseSplits(test.count, spec);
    const augment = finetuneAugment(name);
    const reserved = subset(test, splits.reserved);
    const calibration = subset(test, splits.calibration);
    log(`reserved ${reserved.count}, calibration ${calibration.count}, evaluation ${splits.evaluation.length} images of ${name}/test`);
    const fitMeta = { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames };
    const seed = o.seed ?? 0;
    let selection: CanaryResult | null = null;
    let unlearnLr = typeof o.unlearnLr === "number" ? o.unlearnLr : undefined;
    if (o.canaries !== undefined && unlearnLr !== undefined) {
      throw new OptionError("canaries", `the canaries only choose B's unlearning rate, and here it is given (${unlearnLr}); leave the rate out with them`);
    }
    if (o.canaries !== undefined) {
      log(`choosing the unlearning rate with canary backdoors of our own (${o.canaries.join(", ")}; defender-side data only)`);
      const unlearn = { ...GIVEN_RATE_UNLEARNING, lr: DEFAULT_UNLEARNING.startLr, ...(o.unlearnLabels !== undefined ? { labels: o.unlearnLabels } : {}) };
      const finetune = { ...DEFAULT_FINETUNE, lr: 0.01 };
      selection = await selectUnlearnLr(model, fitMeta, reserved, calibration, { unlearn, finetune, augment, seed, silent: o.silent ?? false, device, kinds: o.canaries, log });
      unlearnLr = selection.lr;
      log(`${selection.conclusive ? "selected" : "kept the static"} unlearning lr ${selection.lr} in ${selection.seconds.toFixed(0)} s`);
    }
    const made = await makeExpertAndAuxiliary(model, fitMeta, reserved, calibration, {
      ...(unlearnLr !== undefined ? { unlearnLr } : {}),
      ...(o.unlearnEpochs !== undefined ? { unlearnEpochs: o.unlearnEpochs } : {}),
      ...(o.unlearnLabels !== undefined ? { unlearnLabels: o.unlearnLabels } : {}),
      ...(typeof o.finetuneLr === "number" ? { finetuneLr: o.finetuneLr } : {}),
      ...(o.finetuneGamma !== undefined ? { finetuneGamma: o.finetuneGamma } : {}),
      ...(o.finetuneEpochs !== undefined ? { finetuneEpochs: o.finetuneEpochs } : {}),
      augment,
      seed,
      silent: o.silent ?? false,
      device,
      log,
    });
    const options: FitDefenseOptions = { unlearn: made.unlearn, finetune: made.finetune, augment, rule: o.rule ?? "triangle", targetFpr, seed, silent: o.silent ?? false, device };
    const unlearnLrSource: UnlearnLrSource = typeof o.unlearnLr === "number" ? "given" : selection ? (selection.conclusive ? "canary" : "canary-inconclusive") : "until-forgotten";
    const finetuneSelection = made.finetuneSelection;
    const unlearning = made.unlearning;
    const detector = await fitBadExpert(model, fitMeta, reserved, calibration, options, { ...(made.expert ? { expert: made.expert } : {}), ...(made.auxiliary ? { auxiliary: made.auxiliary } : {}) });
    try {
      const ceiling = ceilingWarning(detector.info.calibration);
      if (ceiling !== null) log(`warning: ${ceiling}`);
      detector.info.creation = {
        ...detector.info.creation,
        checkpoint: o.checkpoint,
        dataset: { name, ...(path ? { path } : {}) },
        splits: spec,
        modelMetrics: meta.metrics,
        modelTraining: { attack: meta.training.attack ?? null },
        unlearnLrSource,
        ...(selection ? { unlearnSelection: selection } : {}),
        ...(unlearning ? { unlearning } : {}),
        ...(finetuneSelection ? { finetuneSelection } : {}),
      };
      await saveBundle(o.out, detector, {
        replace: o.force === true,
        alsoReplaces: [BASELINE_BUNDLE_DIR],
        forceHint: "--force",
        argument: "--out",
        ...(o.signKey !== undefined ? { signKey: o.signKey } : {}),
      });
      const seconds = detector.info.creation.seconds ?? { expert: 0, auxiliary: 0, calibration: 0 };
      return {
        bundle: o.out,
        threshold: detector.threshold,
        calibration: detector.info.calibration,
        options,
        unlearnLrSource,
        splits: { reserved: reserved.count, calibration: calibration.count, evaluation: splits.evaluation.length },
        selection,
        finetuneSelection,
        unlearning,
        seconds: { ...seconds, selection: selection?.seconds ?? 0, finetuneSelection: finetuneSelection?.seconds ?? 0 },
      };
    } finally {
      detector.dispose();
    }
  } finally {
    model.dispose();
  }
}
