// The evaluate-defense job's options and result, in a module of their own: the job
// (evaluate-defense.ts) and its callers read them without importing the job.
import type { ParamValue } from "../attacks/attack.js";
import type { DefenseEvaluation } from "../defense/evaluate.js";
import type { ScoreRule } from "../defense/scores.js";
import type { KeyInput } from "../defense/signature.js";
import type { SaliencyMethod } from "../forensics/saliency.js";
import type { ReportScores } from "../report/report.js";
import type { AsrMeaning, TriggerImageOption } from "./triggered-inputs.js";

export interface EvaluateBundleOptions {
  bundle: string;
  /** Default: the attack recorded in the model's checkpoint. */
  attack?: string;
  attackParams?: Record<string, ParamValue>;
  /** Instead of an attack: the user's triggered inputs, a folder with labels.csv or an .npz (data/triggered-set.ts). */
  triggered?: string;
  /** Instead of an attack: a trigger image stamped on the evaluation split (data/trigger-image.ts). */
  trigger?: TriggerImageOption;
  /** The class the trigger is meant to reach, for `trigger` or a triggered set that records none; without one ASR counts misclassified inputs. */
  target?: number;
  rule?: ScoreRule;
  targetFpr?: number;
  dataPath?: string;
  report?: string;
  progress?: boolean;
  /** Ed25519 public key (KeyObject or PEM path): refuse unsigned or badly signed bundles. */
  verifyKey?: KeyInput;
  /** Where scoring runs; only "cpu" for now (the detector scores on the CPU), checked before any work. */
  device?: string;
  /** With a report: flagged poisoned inputs explained for its "What the detector saw" section (default 48; 0: no section). */
  explainInputs?: number;
  explainMethod?: SaliencyMethod;
  /** Use only N images of the evaluation split (0 or absent: all); STRIP costs ~100 passes per input. */
  evaluationLimit?: number;
  /** Also measure M, B and M' each on their own (src/defense/parts.ts): two more passes per model. */
  parts?: boolean;
}

export interface EvaluateBundleResult extends Omit<DefenseEvaluation, "clean" | "poisoned"> {
  /** The detector's kind ("badexpert", "strip", ...). */
  detector: string;
  /** Per-input scores; b and a where the detector has B and M'. */
  clean: ReportScores;
  poisoned: ReportScores;
  attack: { name: string; params: Record<string, ParamValue> };
  /** BaDExpert's score rule; null for a detector without one. */
  rule: ScoreRule | null;
  threshold: number;
  targetFpr: number;
  dataset: string;
  model: string;
  reportFiles: { html: string; markdown: string } | null;
  /**
   * What ASR counts: triggered inputs sent to their target, or, where no target is known, triggered
   * inputs whose prediction differs from their true label.
   */
  asrMeaning: AsrMeaning;
  /** Triggered inputs left out because their true class is their target (they cannot show the attack). */
  leftOut: number;
}
