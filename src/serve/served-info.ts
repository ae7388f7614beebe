// What the service knows of the detector its workers hold, whichever kind it is: BaDExpert (from
// its bundle or in-memory weights) or a baseline from the registry (a baseline detector bundle).
// Workers send it once loaded; routes, metrics and the window read it.
import type { ParamValue } from "../attacks/attack.js";
import type { BundleTrust } from "../defense/bundle.js";
import type { DetectorInfo } from "../defense/detector.js";
import type { ScoreRule } from "../defense/scores.js";
import type { Calibration } from "../defense/threshold.js";
import type { LoadedDetector } from "../detectors/bundle.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";

export interface ServedInfo {
  /** "badexpert", or the baseline's registry name (strip, frequency, ...). */
  detector: string;
  kind: "badexpert" | "baseline";
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  threshold: number;
  targetFpr: number;
  calibration: Calibration;
  /** BaDExpert's score rule; null for a baseline. */
  rule: ScoreRule | null;
  /** A baseline's resolved parameters; null for BaDExpert (its hyperparameters are in the bundle). */
  params: Record<string, ParamValue> | null;
  /** The checkpoint a baseline was fitted on and its weights' SHA-256; null for BaDExpert (its bundle holds M). */
  checkpoint: { path: string; weightsSha256: string } | null;
  /** Whether the bundle was signed and verified, and the warnings of its load (logged, and shown by GET /v1/detector). */
  trust: BundleTrust;
}

export function badexpertServedInfo(i: DetectorInfo, trust: BundleTrust): ServedInfo {
  return { detector: "badexpert", kind: "badexpert", spec: i.spec, preprocessing: i.preprocessing, classNames: i.classNames, threshold: i.threshold, targetFpr: i.targetFpr, calibration: i.calibration, rule: i.rule, params: null, checkpoint: null, trust };
}

export function baselineServedInfo(l: LoadedDetector): ServedInfo {
  const c = l.context;
  return {
    detector: l.detector.name,
    kind: "baseline",
    spec: c.spec,
    preprocessing: c.preprocessing,
    classNames: c.classNames,
    threshold: l.threshold,
    targetFpr: l.calibration.targetFpr,
    calibration: l.calibration,
    rule: null,
    params: { ...l.detector.params },
    checkpoint: { path: l.checkpoint, weightsSha256: l.weightsSha256 },
    trust: { signature: "unsigned", key: null, warnings: [...l.warnings] },
  };
}

/** Logs each warning of the detector's load (an unsigned or unverified bundle, a thin calibration record) at warn level. */
export function logTrust(log: { warn(o: object, msg: string): void }, info: ServedInfo): void {
  for (const w of info.trust.warnings) log.warn({ event: "bundle_trust", signature: info.trust.signature }, w);
}
