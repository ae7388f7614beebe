// The package's main entry: `import { defend, Detector } from "badexpert"`. Task-level and async;
// the layers below are reachable through the subpath exports (badexpert/engine, badexpert/nn, …).
export { Detector, type Detection, type DetectorSummary, type FrameOptions, type ImageInput } from "./api/detector.js";
export { ImageDecodeError, type ImageProblem } from "./data/image-error.js";
export { BadExpertError, ERROR_CODES, type ErrorCode } from "./util/errors.js";
export { defend, type DefendCallOptions } from "./api/defend.js";
export { defendCheckpoint, type DefendOptions, type DefendResult } from "./jobs/defend.js";
export { evaluateBundle, type EvaluateBundleOptions, type EvaluateBundleResult } from "./jobs/evaluate-defense.js";
export { runTraining, type TrainRunOptions } from "./jobs/train.js";
export { cachedModel, cachedModelPath, type CachedModelSpec } from "./jobs/model-cache.js";
export { BadExpertDetector, type BatchScores, type DetectorInfo } from "./defense/detector.js";
export { loadBundle, loadBundleWithTrust, saveBundle, type BundleTrust, type LoadBundleOptions } from "./defense/bundle.js";
export { loadCheckpoint, readCheckpointMeta, type CheckpointMeta } from "./train/checkpoint.js";
export { createAttack, attackNames } from "./attacks/registry.js";
export { createModel, modelNames } from "./models/registry.js";
export { loadDataset, datasetNames } from "./data/registry.js";
