// What a scoring worker (and the service above it) knows of the detector it holds, whatever its
// kind: built once from the CalibratedDetector the worker opened (or from in-memory BaDExpert
// weights), sent in the worker's ready message; routes, metrics and the window read it.
import type { ParamValue } from "../attacks/attack.js";
import type { BundleTrust } from "../defense/bundle.js";
import type { ScoreRule } from "../defense/scores.js";
import type { Calibration } from "../defense/threshold.js";
import type { CalibratedDetector } from "../detectors/calibrated.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";

export interface ServedInfo {
  /** The detector's kind: "badexpert", or a baseline's registry name (strip, frequency, ...). */
  detector: string;
  /** "badexpert" for a detector with B and M', "baseline" for the others (GET /v1/detector's `kind`). */
  kind: "badexpert" | "baseline";
  /** Whether it can be explained (B's saliency: the dashboard's overlays). */
  explainable: boolean;
  spec: ModelSpec;
  preprocessing: Preprocessing;
  classNames: string[];
  threshold: number;
  targetFpr: number;
  calibration: Calibration;
  /** BaDExpert's score rule; null for a detector without one. */
  rule: ScoreRule | null;
  /** A baseline's resolved parameters; null for BaDExpert (its hyperparameters are in the bundle). */
  params: Record<string, ParamValue> | null;
  /** The checkpoint a baseline was fitted on and its weights' SHA-256; null where the bundle holds M (BaDExpert). */
  checkpoint: { path: string; weightsSha256: string } | null;
  /** Whether the bundle was signed and verified, and the warnings of its load (logged, and shown by GET /v1/detector). */
  trust: BundleTrust;
}

export function servedInfo(d: CalibratedDetector): ServedInfo {
  const withModels = d.badexpert !== null;
  const o = d.origin;
  return {
    detector: d.kind,
    kind: withModels ? "badexpert" : "baseline",
    explainable: withModels,
    spec: d.spec,
    preprocessing: d.preprocessing,
    classNames: d.classNames,
    threshold: d.threshold,
    targetFpr: d.targetFpr,
    calibration: d.calibration,
    rule: d.rule,
    params: withModels ? null : { ...d.params },
    checkpoint:
      o.checkpointSha256 !== null && o.checkpoint !== null
        ? { path: o.checkpoint, weightsSha256: o.checkpointSha256 }
        : null,
    trust: { ...d.trust, warnings: [...d.trust.warnings] },
  };
}

/** Logs each warning of the detector's load (an unsigned or unverified bundle, a thin calibration record) at warn level. */
export function logTrust(log: { warn(o: object, msg: string): void }, info: ServedInfo): void {
  for (const w of info.trust.warnings) log.warn({ event: "bundle_trust", signature: info.trust.signature }, w);
}
