// What the procedures that choose B's and M''s settings record in a bundle: plain types that
// the bundle reader, the reports and the procedures share (a leaf module, so none of them
// imports another through it).
import type { ParamValue } from "../attacks/attack.js";

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

/** How B's unlearning rate was set (recorded in bundles, shown by the report). */
export interface UnlearningRecord {
  lr: number;
  source: "until-forgotten" | "paper" | "default" | "canary" | "canary-inconclusive" | "given";
  canaries?: {
    kind: string;
    attackSuccessRate: number;
    table: { lr: number; auroc: number; expertCleanAccuracy: number }[];
  }[];
}

/**
 * "blend" and "patch": the two trigger families of real attacks, a full-image blend and a small
 * patch. "conditional": the patch on one source class only, with cover classes that carry it and keep
 * their labels (TaCT's plan, the defender's trigger). A conditional backdoor is tangled with its
 * source class's features, so unlearning the clean task can take it away at rates that keep an
 * unconditional canary (measured on ResNet-20 TaCT); this canary is there to notice that.
 */
export type CanaryKind = "blend" | "patch" | "conditional";

export const CANARY_KINDS: readonly CanaryKind[] = ["blend", "patch", "conditional"];

export interface CanaryRow {
  lr: number;
  /** AUROC of B alone between clean calibration inputs and their canary-triggered copies. */
  auroc: number;
  expertCleanAccuracy: number;
}

export interface CanaryRecord {
  kind: CanaryKind;
  planting: CanaryPlanting;
  attack: { name: string; params: Record<string, ParamValue> };
  /** Share of the reserved set carrying the canary while it is planted. */
  poisonedFraction: number;
  /** The planted canary's strength in the copy of M, on the calibration split. */
  attackSuccessRate: number;
  cleanAccuracy: number;
  table: CanaryRow[];
  seconds: number;
}

/**
 * Which clean images the canary is planted with. "reserved" (the default): the reserved set B
 * is then unlearned on. "disjoint": half of the calibration split (the other half measures), so
 * that — like a real backdoor, learned from the attacker's training data — the canary is planted
 * on images B never sees while it unlearns. Measured, "disjoint" canaries are
 * weaker and die at gentler rates than real backdoors, so they point to rates that are too gentle.
 */
export type CanaryPlanting = "reserved" | "disjoint";

/**
 * How canary tables become one rate. Every rule first combines the canaries per rate (the mean
 * or the worst AUROC), then:
 * - "peak": the best combined AUROC; near-ties (within `tolerance`) go to the gentler rate;
 * - "peak-strong": the same, near-ties go to the stronger rate;
 * - "strongest-above": the strongest rate whose combined AUROC is at least `level` (a freshly
 *   planted canary is at most as robust as a real backdoor, so any rate that keeps the canary
 *   should keep the backdoor; the strongest one removes the most clean behaviour from B).
 *   When no rate reaches the level the canaries are inconclusive and the answer is null.
 */
export interface SelectionRule {
  pick: "peak" | "peak-strong" | "strongest-above";
  combine: "mean" | "min";
  tolerance?: number;
  level?: number;
}

export interface CanaryResult {
  lr: number;
  /**
   * With conditional canaries: the rate at which B separated them best. A conditional canary
   * never reaches the unconditional canaries' level (B is unsure of a backdoor that needs its
   * source class; measured 0.81 at best on Fashion-MNIST), so it does not vote in the rule; it
   * caps the rate instead: lr is the smaller of the rule's choice (or the static default) and this.
   */
  conditionalPeak?: number;
  /**
   * False when no candidate kept every canary at the rule's level (on CIFAR-10 the blend canary
   * never reached 0.98): lr is then the architecture's static default, not the canaries' choice.
   */
  conclusive: boolean;
  rule: SelectionRule;
  canaries: CanaryRecord[];
  seconds: number;
}
