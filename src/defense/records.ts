// What the procedures that choose B's and M''s settings record in a bundle: plain types that
// the bundle reader, the reports and the procedures share (a leaf module, so none of them
// imports another through it).

/** How B's unlearning went when it ran until B forgot the clean task (src/defense/expert-extraction.ts). */
export interface UnlearningTrace {
  /** Optimizer steps taken. */
  steps: number;
  /** Adam's rate at the last step. */
  finalLr: number;
  /** B's accuracy on the monitor images when unlearning stopped. */
  monitorAccuracy: number;
  /** M's accuracy on the same images, for reference. */
  modelAccuracy: number;
  /** Whether the accuracy reached forgetAccuracy (false: maxEpochs ran out first). */
  forgotten: boolean;
  seconds: number;
}

export interface AuxiliaryRateRow {
  lr: number;
  /** The clean accuracy of M' on the calibration split when it was judged. */
  calibrationAccuracy: number;
  /** Whether this rate kept the accuracy within tolerance. */
  kept: boolean;
}

export interface AuxiliaryRateSelection {
  lr: number;
  /** M's clean accuracy on the calibration split, the reference. */
  modelAccuracy: number;
  /** Share of M's accuracy above chance that M' had to keep (src/defense/defaults.ts, FINETUNE_RETAINED). */
  retain?: number;
  /** Points of M's accuracy M' could lose (selections that judged by a fixed drop). */
  tolerance?: number;
  /** Epochs of the schedule after which each candidate is judged. */
  probeEpochs: number;
  /** The candidates tried, strongest first; the last row is the chosen rate's. */
  table: AuxiliaryRateRow[];
  /** False when no candidate kept the accuracy: the gentlest one is used. */
  conclusive: boolean;
  seconds: number;
}

/**
 * How B's unlearning rate was set (recorded in bundles, shown by the report). defend writes
 * "until-forgotten" or "given"; the other sources are read from bundles that carry them.
 */
export interface UnlearningRecord {
  lr: number;
  source: "until-forgotten" | "paper" | "default" | "canary" | "canary-inconclusive" | "given";
}
