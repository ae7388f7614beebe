// defend(): the whole job as one call — a checkpoint in, a calibrated detector of any kind written
// to `out` and opened, ready to score. The job (minutes of finetuning for BaDExpert) runs on a
// worker thread of its own, so the caller's event loop stays free.
import { defendCheckpoint, type DefendOptions, type DefendResult } from "../jobs/defend.js";
import { Detector, type LoadOptions } from "./detector.js";
import { runJobThread } from "./job-thread.js";

export interface DefendCallOptions extends Omit<DefendOptions, "checkpoint"> {
  /** Where the job and the returned detector run: "worker" (the default: threads of their own) or "caller" (this thread). */
  thread?: "worker" | "caller";
  /** How the written bundle is opened (engine, threads, verification key, warnings). */
  open?: Omit<LoadOptions, "thread">;
}

/**
 * Builds the detector (BaDExpert by default; `detector` names another kind) for the model in
 * `checkpoint` (a directory from `badexpert train` or `badexpert import`) from the clean data its
 * manifest names (or `dataset`/`dataPath`), saves the bundle to `out` and returns it opened, with
 * the job's record (splits, rates, timings).
 */
export async function defend(
  checkpoint: string,
  o: DefendCallOptions,
): Promise<{ detector: Detector; result: DefendResult }> {
  const { thread, open, ...job } = o;
  const options: DefendOptions = { ...job, checkpoint };
  const result =
    thread === "caller" ? await defendCheckpoint(options) : await runJobThread<DefendResult>("defend", options, o.log);
  return {
    detector: await Detector.load(result.bundle, { ...open, ...(thread !== undefined ? { thread } : {}) }),
    result,
  };
}
