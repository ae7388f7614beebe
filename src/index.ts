// The package's main entry: `import { defend, Detector } from "badexpert"`. Task-level and async,
// for every kind of detector (BaDExpert and the baselines); the forward passes run off the
// caller's thread. The documented API and its types only (docs/library.md): the layers below are
// reachable through the subpath exports (badexpert/engine, badexpert/nn, …, badexpert/serve).
export {
  Detector,
  type DecodedImage,
  type Detection,
  type DetectorSummary,
  type FrameOptions,
  type ImageInput,
  type LoadOptions,
  type Outcome,
} from "./api/detector.js";
export { BadExpertError, ERROR_CODES, type ErrorCode } from "./util/errors.js";
export { defend, type DefendCallOptions } from "./api/defend.js";
export { evaluate, type EvaluateOptions } from "./api/evaluate.js";
export type { BadExpertRecord, DefendResult, SigningSettings, SplitSettings } from "./jobs/defend.js";
export type { CalibrationSettings, FinetuneSettings, UnlearnSettings } from "./defense/build.js";
export type { EvaluateBundleResult as EvaluateResult } from "./jobs/evaluate-defense.js";
export type { BundleTrust } from "./defense/bundle.js";
export type { Calibration } from "./defense/threshold.js";
export type { DefenseMetrics } from "./defense/metrics.js";
export { detectorNames } from "./detectors/registry.js";
export { OptionError } from "./jobs/errors.js";
export { ImageDecodeError, type ImageProblem } from "./data/image-error.js";
