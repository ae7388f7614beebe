// Process-wide engine settings: threads, seeds, devices, version.
import { native } from "./native.js";
import { liveTensorCount, scopeDepth, type MemoryInfo } from "./scope.js";

export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setNumThreads: expected a positive integer, got ${n}`);
  native.setNumThreads(n);
}
/**
 * For long scoring runs (scan, the service): keeps every buffer of 1 MiB or more in its own
 * mapping, given back to the OS when freed, so resident memory stays flat however many batches
 * are scored. glibc's default lets freed activations pile up in the heap (scan of 60,000 images:
 * 0.7-1.7 GB instead of 0.3 GB). Not for training: mapping every large buffer afresh cost ResNet
 * training 30-45% of its speed (docs/performance.md, "Memory of scan"). Returns false where it does not
 * apply (not glibc, or MALLOC_MMAP_THRESHOLD_ set by the user).
 */
export function returnLargeBuffersToTheOs(): boolean {
  return native.setMmapThreshold(1 << 20);
}
/**
 * Sets the threads of OpenBLAS's one process-wide pool, which does libtorch's matrix products
 * here apart from libtorch's per-thread budget (setNumThreads). A service that gives each worker
 * one core sets it to 1, so that no product spills onto another core (or out of a low-priority
 * thread's priority). Returns false where it does not apply (another BLAS, or
 * OPENBLAS_NUM_THREADS set by the user, which wins).
 */
export function setBlasThreads(n: number): boolean {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setBlasThreads: expected a positive integer, got ${n}`);
  return native.setBlasThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
/** Seeds libtorch's generators (CPU and CUDA): same seed, same random tensors. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new RangeError(`manualSeed: expected a non-negative safe integer, got ${seed}`);
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
          'Use device "cpu", or rebuild against a CUDA libtorch with BADEXPERT_LIBTORCH=/path/to/libtorch npm run setup.',
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
