// The defend job, shared by the CLI, the library, the demo and the benchmarks: load a checkpoint
// and its dataset, take the defender's splits, build the detector of the asked kind on them
// (BaDExpert: defense/build.ts; a baseline: its registry entry's fit and the shared calibration),
// and save its bundle (detectors/open.ts).
import type { ParamValue } from "../attacks/attack.js";
import { manualSeed } from "../engine/index.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { DEFAULT_TARGET_FPR, UNLEARN_LABEL_MAPPINGS } from "../defense/defaults.js";
import {
  buildBadExpert,
  type BadExpertBuildOptions,
  type CalibrationSettings,
  type FinetuneSettings,
  type UnlearnSettings,
} from "../defense/build.js";
import type { FitDefenseOptions } from "../defense/fit.js";
import type { UnlearnLrSource } from "../defense/creation.js";
import { signingKey, type KeyInput } from "../defense/signature.js";
import type { AuxiliaryRateSelection, UnlearningTrace } from "../defense/records.js";
import { ceilingWarning, type Calibration } from "../defense/threshold.js";
import { assertWritableDir } from "../util/atomic-dir.js";
import { detectorInfo, fitDetector } from "../detectors/registry.js";
import { resolveDetectorParams } from "../detectors/params.js";
import { calibrateDetector } from "../detectors/calibrate.js";
import { CalibratedDetector, MADE_HERE_TRUST } from "../detectors/calibrated.js";
import { DETECTOR_BUNDLE_DIRS, badexpertDetector, saveDetector } from "../detectors/open.js";
import { checkJobDevice } from "./device.js";
import { OptionError } from "./errors.js";
import { defenderData, minCalibrationCount } from "./defender-data.js";

/** The defender's splits of the dataset's test split (defense/splits.ts). Defaults: see defaultSplitSpec. */
export interface SplitSettings {
  /** Reserved clean images (what the detector learns from). */
  reserved?: number;
  /** Calibration images (the threshold); at least 1/targetFpr. */
  calibration?: number;
  /** Seed of the reserved/calibration/evaluation split (default 0). */
  seed?: number;
}

export interface SigningSettings {
  /** Ed25519 private key (KeyObject or PEM path): detector.json.sig is written over the manifest. */
  key: KeyInput;
}

export interface DefendOptions {
  checkpoint: string;
  out: string;
  /** The kind of detector to build (detectors/registry.ts); default "badexpert". */
  detector?: string;
  /** A baseline's parameters (docs/baselines.md); BaDExpert takes the nested options below instead. */
  params?: Readonly<Record<string, ParamValue>>;
  /** The clean data (default: the checkpoint's dataset, at its recorded location). */
  dataset?: string;
  dataPath?: string;
  splits?: SplitSettings;
  /** B's unlearning (BaDExpert). */
  unlearn?: UnlearnSettings;
  /** M''s clean finetuning (BaDExpert). */
  finetune?: FinetuneSettings;
  /** The threshold: target FPR (every kind; default per dataset, 0.01 for the baselines) and score rule (BaDExpert). */
  calibration?: CalibrationSettings;
  /** Sign the bundle (BaDExpert's bundles; the baselines' are never signed). */
  signing?: SigningSettings;
  /** Seed of the finetuning runs (BaDExpert) or of the fitting (a baseline); default 0. */
  seed?: number;
  /** Replace an existing non-empty `out` (otherwise refused before any work). */
  force?: boolean;
  /** Where B and M' are finetuned (default "cpu"; the baselines fit on the CPU); checked before any work. */
  device?: string;
  silent?: boolean;
  log?: (line: string) => void;
}

/** How BaDExpert was built: its resolved options, where B's rate came from, B's unlearning, M''s selection. */
export interface BadExpertRecord {
  options: FitDefenseOptions;
  unlearnLrSource: UnlearnLrSource;
  finetuneSelection: AuxiliaryRateSelection | null;
  /** How B's unlearning went when it ran until forgotten. */
  unlearning: UnlearningTrace | null;
  seconds: { expert: number; auxiliary: number; calibration: number; finetuneSelection: number };
}

export interface DefendResult {
  bundle: string;
  /** The kind built ("badexpert", "strip", ...). */
  detector: string;
  threshold: number;
  calibration: Calibration;
  splits: { reserved: number; calibration: number; evaluation: number };
  /** The resolved parameters and what fitting found (chosen layers, rates, ...). */
  params: Record<string, ParamValue>;
  fitted: Record<string, unknown>;
  /** BaDExpert's build record; null for the other kinds. */
  badexpert: BadExpertRecord | null;
  seconds: { fit: number; calibration: number };
}

function checkCalibrationSize(count: number, targetFpr: number, given: boolean): void {
  const need = minCalibrationCount(targetFpr);
  if (count < need) {
    throw new OptionError(
      "splits.calibration",
      `${count} ${given ? "" : "(default) "}calibration images cannot calibrate a threshold at FPR ${targetFpr}: it needs at least 1/FPR = ${need} ` +
        "(give more with --calibration, or a larger --fpr)",
    );
  }
}

/** Options that only BaDExpert reads, refused for another kind rather than ignored. */
function refuseBadExpertOnly(kind: string, o: DefendOptions): void {
  const given = (
    [
      ["unlearn", o.unlearn],
      ["finetune", o.finetune],
      ["calibration.rule", o.calibration?.rule],
      ["signing", o.signing],
    ] as const
  )
    .filter(([, v]) => v !== undefined)
    .map(([k]) => k);
  if (given.length > 0)
    throw new OptionError(
      given[0] as string,
      `only for the badexpert detector; ${kind} takes its parameters in params (docs/baselines.md)${kind !== "badexpert" && given.includes("signing") ? ", and its bundles are not signed" : ""}`,
    );
  if ((o.device ?? "cpu") !== "cpu")
    throw new OptionError("device", `"${o.device}": baseline detectors are fitted on the CPU`);
}

/** Checks the options that need no file, before anything is read or fitted. */
function checkOptions(kind: string, o: DefendOptions): void {
  try {
    detectorInfo(kind);
  } catch (e) {
    throw new OptionError("detector", (e as Error).message);
  }
  const fpr = o.calibration?.targetFpr;
  if (fpr !== undefined && !(fpr > 0 && fpr < 1))
    throw new OptionError("calibration.targetFpr", `expected a number in (0, 1), got ${fpr}`);
  if (kind !== "badexpert") {
    refuseBadExpertOnly(kind, o);
    try {
      resolveDetectorParams(kind, detectorInfo(kind).params, o.params ?? {});
    } catch (e) {
      throw new OptionError("params", (e as Error).message);
    }
    return;
  }
  if (o.params !== undefined && Object.keys(o.params).length > 0)
    throw new OptionError("params", "only for baseline detectors; BaDExpert takes unlearn, finetune and calibration");
  const labels = o.unlearn?.labels;
  if (labels !== undefined && !UNLEARN_LABEL_MAPPINGS.includes(labels))
    throw new OptionError(
      "unlearn.labels",
      `expected one of ${UNLEARN_LABEL_MAPPINGS.join(", ")}, got ${JSON.stringify(labels)}`,
    );
}

export async function defendCheckpoint(o: DefendOptions): Promise<DefendResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const kind = o.detector ?? "badexpert";
  checkOptions(kind, o);
  // Refused before minutes of finetuning, not after.
  await assertWritableDir(o.out, {
    kinds: DETECTOR_BUNDLE_DIRS,
    replace: o.force === true,
    forceHint: "--force",
    argument: "--out",
  });
  if (o.signing !== undefined) await signingKey(o.signing.key);
  const device = o.device ?? "cpu";
  checkJobDevice(device);
  const { model, meta } = await loadCheckpoint(o.checkpoint);
  try {
    const name = o.dataset ?? meta.dataset.name;
    const path = o.dataPath ?? (name === meta.dataset.name ? meta.dataset.path : undefined);
    const build: BadExpertBuildOptions = {
      ...(o.unlearn ? { unlearn: o.unlearn } : {}),
      ...(o.finetune ? { finetune: o.finetune } : {}),
      ...(o.calibration ? { calibration: o.calibration } : {}),
      seed: o.seed ?? 0,
      device,
      silent: o.silent ?? false,
      log,
    };
    const { spec, splits, reserved, calibration } = await defenderData(meta, {
      ...(o.dataset ? { dataset: o.dataset } : {}),
      ...(o.dataPath ? { dataPath: o.dataPath } : {}),
      ...o.splits,
      ...(o.splits?.seed !== undefined ? { splitSeed: o.splits.seed } : {}),
    });
    const targetFpr = o.calibration?.targetFpr ?? (kind === "badexpert" ? undefined : 0.01);
    const origin = {
      dataset: { name, ...(path ? { path } : {}) },
      splits: spec,
      checkpoint: o.checkpoint,
      attack: meta.training.attack ?? null,
    };
    log(
      `reserved ${reserved.count}, calibration ${calibration.count}, evaluation ${splits.evaluation.length} images of ${name}/test`,
    );
    const t0 = process.hrtime.bigint();
    let det: CalibratedDetector;
    let record: BadExpertRecord | null = null;
    let calibrationSeconds: number;
    if (kind === "badexpert") {
      const meta0 = { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames, dataset: name };
      checkCalibrationSize(
        spec.calibration,
        build.calibration?.targetFpr ?? DEFAULT_TARGET_FPR,
        o.splits?.calibration !== undefined,
      );
      const b = await buildBadExpert(model, meta0, reserved, calibration, build);
      const d = b.detector;
      const ceiling = ceilingWarning(d.info.calibration);
      if (ceiling !== null) log(`warning: ${ceiling}`);
      d.info.creation = {
        ...d.info.creation,
        checkpoint: o.checkpoint,
        dataset: origin.dataset,
        splits: spec,
        modelMetrics: meta.metrics,
        modelTraining: { attack: meta.training.attack ?? null },
      };
      det = badexpertDetector(d);
      const s = d.info.creation.seconds ?? { expert: 0, auxiliary: 0, calibration: 0 };
      calibrationSeconds = s.calibration;
      record = {
        options: b.options,
        unlearnLrSource: b.unlearnLrSource,
        finetuneSelection: b.finetuneSelection,
        unlearning: b.unlearning,
        seconds: { ...s, finetuneSelection: b.finetuneSelection?.seconds ?? 0 },
      };
    } else {
      const fpr = targetFpr as number;
      checkCalibrationSize(spec.calibration, fpr, o.splits?.calibration !== undefined);
      manualSeed(o.seed ?? 0);
      const entry = detectorInfo(kind);
      const ctx = {
        model: model.eval(),
        spec: meta.model,
        preprocessing: meta.preprocessing,
        classNames: meta.classNames,
        dataset: name,
      };
      const fitted = await fitDetector(kind, ctx, { reserved, calibration }, o.params ?? {}, log);
      try {
        const cal = calibrateDetector(fitted, calibration, fpr, { progressLabel: `${kind}: calibration` });
        calibrationSeconds = cal.scores.seconds;
        // The checkpoint's model stays the caller's (disposed below): the detector owns only what it fitted.
        det = new CalibratedDetector({
          kind,
          scorer: fitted,
          spec: meta.model,
          preprocessing: meta.preprocessing,
          classNames: meta.classNames,
          calibration: cal.calibration,
          origin: { ...origin, checkpointSha256: null },
          seeded: entry.randomness === "seeded",
          inputSeedKey: null,
          trust: MADE_HERE_TRUST,
          release: () => fitted.dispose(),
        });
      } catch (e) {
        fitted.dispose();
        throw e;
      }
    }
    const fit = Number(process.hrtime.bigint() - t0) / 1e9 - calibrationSeconds;
    try {
      await saveDetector(o.out, det, {
        replace: o.force === true,
        forceHint: "--force",
        argument: "--out",
        ...(o.signing !== undefined ? { signKey: o.signing.key } : {}),
      });
      return {
        bundle: o.out,
        detector: kind,
        threshold: det.threshold,
        calibration: det.calibration,
        splits: { reserved: reserved.count, calibration: calibration.count, evaluation: splits.evaluation.length },
        params: { ...det.params },
        fitted: { ...det.scorer.fitted },
        badexpert: record,
        seconds: { fit, calibration: calibrationSeconds },
      };
    } finally {
      det.dispose();
    }
  } finally {
    model.dispose();
  }
}
