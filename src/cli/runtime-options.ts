// Options every compute command shares: threads, device and --json.
import { availableParallelism } from "node:os";
import { setNumThreads, checkDevice } from "../engine/index.js";
import { UsageError, type OptionSpec } from "./command.js";
import { int, strWithDefault, type Values } from "./args.js";

export const RUNTIME_OPTIONS: Record<string, OptionSpec> = {
  threads: {
    type: "string",
    description: "CPU threads for libtorch, 1..4 × cores (default: all cores, or $BADEXPERT_THREADS)",
    // More threads than cores only adds contention (2,000 threads made a 1.6 s scan take 45 s).
    value: { kind: "int", min: 1, max: 4 * availableParallelism() },
  },
  device: { type: "string", description: "cpu, cuda or cuda:N (CUDA needs a CUDA libtorch build)", default: "cpu" },
  json: { type: "boolean", description: "print a machine-readable result object as the last stdout line" },
};

/** Sets the thread count and checks the device (a CUDA device on a CPU build is one clear error). */
export function applyRuntimeOptions(v: Values): { device: string } {
  const threads = int(v, "threads", RUNTIME_OPTIONS);
  if (threads !== undefined) setNumThreads(threads);
  const device = strWithDefault(v, "device", RUNTIME_OPTIONS);
  try {
    return { device: checkDevice(device) };
  } catch (e) {
    throw new UsageError(`--device: ${e instanceof Error ? e.message : String(e)}`);
  }
}
