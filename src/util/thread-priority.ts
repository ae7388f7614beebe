// Lowering the scheduling priority of the calling thread alone. Linux schedules threads as tasks
// with their own nice value, and setpriority(PRIO_PROCESS, tid) (Node's os.setPriority) changes
// only that task; the thread's id is the last part of /proc/thread-self. Elsewhere there is no
// per-thread equivalent through Node, so the call reports that it did nothing.
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";

/** The lowest priority (nice 19): the thread runs on CPU time that nice-0 threads leave idle. */
export const BACKGROUND_NICE = 19;

/**
 * Sets this thread's nice value to `nice` (default: the lowest priority). Returns null when done,
 * or why it could not be (not Linux, no /proc, not permitted), for the caller to report.
 */
export function lowerThreadPriority(nice = BACKGROUND_NICE): string | null {
  if (process.platform !== "linux") return `per-thread priority is only set on Linux (this is ${process.platform})`;
  let tid: number;
  try {
    tid = Number(readlinkSync("/proc/thread-self").split("/").at(-1));
  } catch (e) {
    return `no /proc/thread-self (${(e as Error).message})`;
  }
  if (!Number.isInteger(tid) || tid <= 0) return "could not read this thread's id from /proc/thread-self";
  try {
    setPriority(tid, nice);
  } catch (e) {
    return `setpriority failed (${(e as Error).message})`;
  }
  return null;
}
