// What each of the detector's three models does on its own, for diagnosing a result: clean
// accuracy on the evaluation split, and the share of the triggered copies sent to the attack's
// target. A good B has low clean accuracy and keeps the backdoor (high share); a good M' keeps
// the clean task and has forgotten it (low share). When BaDExpert misses an attack, these say
// which of the two failed (on ResNet-20 TaCT it was B; on the compact CNN's Adaptive-Patch, M').
import type { ImageDataset } from "../data/dataset.js";
import type { Module } from "../nn/index.js";
import { evaluateModel } from "../train/evaluate.js";
import type { BadExpertDetector } from "./detector.js";

export interface PartFigures {
  cleanAccuracy: number;
  /** Share of the triggered inputs classified as the attack's target (for M: the attack success rate). */
  toTarget: number;
}

export interface DetectorParts {
  model: PartFigures;
  expert: PartFigures;
  auxiliary: PartFigures;
}

/** `triggered`: the attack's poisoned test set (labels = the targets), as evaluateDefense builds it. */
export function detectorParts(det: BadExpertDetector, clean: ImageDataset, triggered: ImageDataset): DetectorParts {
  const normalization = det.info.preprocessing;
  const figures = (m: Module): PartFigures => ({
    cleanAccuracy: evaluateModel(m, clean, { normalization }).accuracy,
    toTarget: evaluateModel(m, triggered, { normalization }).accuracy,
  });
  return { model: figures(det.model), expert: figures(det.expert), auxiliary: figures(det.auxiliary) };
}
