// Options every compute command shares: threads and device.
import { setNumThreads, checkDevice } from "../engine/index.js";
import type { OptionSpec } from "./command.js";
import { int, str } from "./args.js";

export const RUNTIME_OPTIONS: Record<string, OptionSpec> = {
  threads: { type: "string", description: "CPU threads for libtorch (default: all cores, or $BADEXPERT_THREADS)" },
  device: { type: "string", description: "cpu, cuda or cuda:N (CUDA needs a CUDA libtorch build)", default: "cpu" },
  json: { type: "boolean", description: "print a machine-readable result object as the last stdout line" },
};

export function applyRuntimeOptions(v: Record<string, string | boolean | undefined>): { device: string } {
  const threads = int(v, "threads", { min: 1 });
  if (threads !== undefined) setNumThreads(threads);
  return { device: checkDevice(str(v, "device") ?? "cpu") };
}
