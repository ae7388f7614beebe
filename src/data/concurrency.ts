// Bounded parallelism: sharp runs on libuv's thread pool, so a few calls in flight keep every core busy
// without queueing tens of thousands of decode jobs (and their buffers) at once.

export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i] as T, i);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (let w = 0; w < Math.min(limit, items.length); w++) workers.push(worker());
  await Promise.all(workers);
}

/** A counting gate for producers that cannot be pulled (streams): wait until fewer than `limit` tasks run. */
export class TaskLimiter {
  private running = 0;
  private error: unknown = undefined;
  private failed = false;
  private waiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Starts `task` now; failures are reported by the next `waitForSlot` or `drain`. */
  start(task: () => Promise<void>): void {
    this.running++;
    task()
      .catch((e: unknown) => {
        if (!this.failed) {
          this.failed = true;
          this.error = e;
        }
      })
      .finally(() => {
        this.running--;
        const ws = this.waiters;
        this.waiters = [];
        for (const w of ws) w();
      });
  }

  async waitForSlot(): Promise<void> {
    while (this.running >= this.limit && !this.failed) await new Promise<void>((r) => this.waiters.push(r));
    this.rethrow();
  }

  async drain(): Promise<void> {
    while (this.running > 0) await new Promise<void>((r) => this.waiters.push(r));
    this.rethrow();
  }

  private rethrow(): void {
    if (this.failed) throw this.error;
  }
}
