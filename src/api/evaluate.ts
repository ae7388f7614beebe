// evaluate(): a detector bundle of any kind measured against an attack (or the user's triggered
// inputs) on its held-out evaluation split — CA/ASR before and after, AUROC, TPR/FPR, optionally a
// report. Scoring thousands of images runs on a worker thread of its own, so the caller's event
// loop stays free.
import { evaluateBundle, type EvaluateBundleOptions, type EvaluateBundleResult } from "../jobs/evaluate-defense.js";
import { runJobThread } from "./job-thread.js";

export interface EvaluateOptions extends Omit<EvaluateBundleOptions, "bundle"> {
  /** Where the evaluation runs: "worker" (the default: a thread of its own) or "caller" (this thread). */
  thread?: "worker" | "caller";
}

export async function evaluate(bundle: string, o: EvaluateOptions = {}): Promise<EvaluateBundleResult> {
  const { thread, ...job } = o;
  const options: EvaluateBundleOptions = { ...job, bundle };
  return thread === "caller"
    ? evaluateBundle(options)
    : runJobThread<EvaluateBundleResult>("evaluate", options, undefined);
}
