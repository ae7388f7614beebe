// The device a scoring job runs on. The detector scores on the CPU (its models stay there after
// finetuning), so a CUDA device is refused with one clear message instead of being ignored: a
// user who asked for a GPU must not silently get the CPU.
import { checkDevice } from "../engine/index.js";
import { OptionError } from "./errors.js";

/** A valid, available device (a CUDA device on a CPU build is an OptionError naming "device"). */
export function checkJobDevice(device: string): string {
  try {
    return checkDevice(device);
  } catch (e) {
    throw new OptionError("device", e instanceof Error ? e.message : String(e));
  }
}

export function checkScoringDevice(device: string): void {
  checkJobDevice(device);
  if (device !== "cpu") {
    throw new OptionError(
      "device",
      `"${device}": scoring with a detector runs on the CPU only in this version; use --device cpu (defend can finetune on ${device})`,
    );
  }
}
