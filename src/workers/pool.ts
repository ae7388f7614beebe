// A generation of scoring workers that all hold the same detector. The owner (the service's
// batcher, or the library's Detector) hands a batch to an idle worker; a worker that dies is
// replaced (its batch has already been answered with an error). A service reload starts a new
// pool and retires the old one once its batches are done.
import type { ServedInfo } from "./served-info.js";
import type { BatchResult, WorkerInit } from "./protocol.js";
import { ScoringWorker } from "./scoring-worker.js";

export interface PoolEvents {
  /** A worker died and is being replaced. */
  onWorkerDeath?: (e: Error) => void;
  /** A replacement could not start (the pool runs with fewer workers). */
  onRespawnFailure?: (e: Error) => void;
  /** A worker became idle again (or a replacement came up): the batcher may dispatch. */
  onIdle?: () => void;
}

export class WorkerPool {
  readonly info: ServedInfo;
  /** libtorch threads each worker reported after setting its budget. */
  readonly threads: number;
  readonly #init: WorkerInit;
  readonly #workers: ScoringWorker[];
  /** Hooks the owner may set after start. */
  readonly events: PoolEvents;
  #closing = false;
  #running = 0;
  #drained: (() => void) | null = null;

  private constructor(
    init: WorkerInit,
    workers: ScoringWorker[],
    info: ServedInfo,
    threads: number,
    events: PoolEvents,
  ) {
    this.#init = init;
    this.#workers = workers;
    this.info = info;
    this.threads = threads;
    this.events = events;
    for (const w of workers) this.#watch(w);
  }

  /** Starts `size` workers in parallel; if any fails to load, stops the others and throws its error. */
  static async start(init: WorkerInit, size: number, events: PoolEvents = {}): Promise<WorkerPool> {
    const started = await Promise.allSettled(Array.from({ length: size }, () => ScoringWorker.start(init)));
    const ok = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failed || ok.length === 0) {
      await Promise.all(ok.map((s) => s.worker.close()));
      throw failed?.reason instanceof Error ? failed.reason : new Error("scoring pool: no worker started");
    }
    const first = ok[0] as (typeof ok)[number];
    return new WorkerPool(
      init,
      ok.map((s) => s.worker),
      first.info,
      first.threads,
      events,
    );
  }

  get size(): number {
    return this.#workers.length;
  }

  /** Workers alive and holding the detector (a dead one is not, until its replacement has loaded it). */
  get alive(): number {
    return this.#workers.filter((w) => w.alive).length;
  }

  /** Workers that can take a batch now. */
  idle(): number {
    if (this.#closing) return 0;
    return this.#workers.filter((w) => w.alive && !w.busy).length;
  }

  /** Runs a batch on an idle worker (call only when idle() > 0). */
  run(count: number, pixels: Uint8Array | Float32Array): Promise<BatchResult> {
    const w = this.#workers.find((x) => x.alive && !x.busy);
    if (!w || this.#closing) return Promise.reject(new Error("scoring pool has no idle worker"));
    this.#running++;
    return w.run(count, pixels).finally(() => {
      this.#running--;
      if (this.#running === 0) this.#drained?.();
      if (!this.#closing) this.events.onIdle?.();
    });
  }

  /** Waits for running batches, then lets every worker free its models; resolves with their leftover tensors. */
  async close(): Promise<number> {
    this.#closing = true;
    if (this.#running > 0) await new Promise<void>((r) => (this.#drained = r));
    const left = await Promise.all(this.#workers.map((w) => w.close()));
    return left.reduce((a, b) => a + b, 0);
  }

  #watch(w: ScoringWorker): void {
    w.onDeath = (e) => {
      this.events.onWorkerDeath?.(e);
      if (this.#closing) return;
      ScoringWorker.start(this.#init).then(
        (s) => {
          const at = this.#workers.indexOf(w);
          if (this.#closing) {
            void s.worker.close();
            return;
          }
          this.#workers.splice(at < 0 ? this.#workers.length : at, 1, s.worker);
          this.#watch(s.worker);
          this.events.onIdle?.();
        },
        (err: unknown) => this.events.onRespawnFailure?.(err instanceof Error ? err : new Error(String(err))),
      );
    };
  }
}
