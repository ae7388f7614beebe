// Process-wide engine settings: threads, seeds, devices, version.
import { native } from "./native.js";
import { liveTensorCount, scopeDepth, type MemoryInfo } from "./scope.js";

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/** Seeds libtorch's generators (CPU and CUDA): same seed, same random tensors. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`manualSeed: expected a non-negative safe integer, got ${seed}`);
  native.manualSeed(seed);
}
export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}
export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}
export function libtorchVersion(): string {
  return native.version().libtorch;
}
export function memory(): MemoryInfo {
  return { numTensors: liveTensorCount(), numHandles: native.liveHandles(), scopeDepth: scopeDepth() };
}

/** Validates a device string; a CUDA device without a CUDA build or GPU is one clear error. */
export function checkDevice(device: string): string {
  const m = /^(cpu|cuda)(?::(\d+))?$/.exec(device);
  if (!m) throw new RangeError(`device: expected "cpu", "cuda" or "cuda:N", got ${JSON.stringify(device)}`);
  if (m[1] === "cuda") {
    if (!native.cudaAvailable()) {
      throw new Error(
        `device "${device}": CUDA is not available (this libtorch build has no CUDA support or no GPU is visible). ` +
          "Use device \"cpu\", or rebuild against a CUDA libtorch with BADEXPERT_LIBTORCH=/path/to/libtorch npm run setup.",
      );
    }
    const idx = Number(m[2] ?? 0);
    const count = native.cudaDeviceCount();
    if (idx >= count) throw new RangeError(`device "${device}": only ${count} CUDA device(s) visible`);
  }
  return device;
}
/** "cuda" when available, else "cpu". */
export function defaultDevice(): string {
  return native.cudaAvailable() ? "cuda" : "cpu";
}
