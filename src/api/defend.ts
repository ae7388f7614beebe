// defend(): the whole BaDExpert job as one call — a checkpoint in, a calibrated detector bundle
// written to `out` and loaded back, ready to score.
import { defendCheckpoint, type DefendOptions, type DefendResult } from "../jobs/defend.js";
import { Detector } from "./detector.js";

export type DefendCallOptions = Omit<DefendOptions, "checkpoint">;

/**
 * Builds the detector for the model in `checkpoint` (a directory from `badexpert train` or
 * `badexpert import`) from the clean data its manifest names (or `dataset`/`dataPath`), saves the
 * bundle to `out` and returns it loaded, with the job's record (splits, rates, timings).
 */
export async function defend(checkpoint: string, o: DefendCallOptions): Promise<{ detector: Detector; result: DefendResult }> {
  const result = await defendCheckpoint({ ...o, checkpoint });
  return { detector: await Detector.load(result.bundle), result };
}
