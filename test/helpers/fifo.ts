// Helpers for tests that hand a reader a FIFO: a bound on the wait (a hang fails the test instead
// of stalling the run) and a writer that releases a reader still blocked on the pipe.
import { closeSync, constants, openSync } from "node:fs";

/** Opens and closes the FIFO for writing, so a reader blocked on it sees end of file. */
export function releaseFifo(fifo: string): void {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // no reader waiting
  }
}

/** Rejects when `p` takes longer than `ms`: a hang is a failure, not a stuck test. */
export async function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms)),
  );
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
