// The recent flagged inputs with their saliency overlays, for the dashboard. The HTTP thread only
// hands over the decoded pixels of a flagged input (O(1), never awaited by the request); a
// dedicated explain worker thread, separate from the scoring pool, computes B's saliency and the
// overlay one input at a time. So unflagged traffic never waits for an overlay, and a burst of
// flagged inputs can only fill a bounded queue (the excess is counted as dropped, never queued
// without limit). Results land in a ring buffer of the last `keep` flagged inputs. The explain
// worker runs at the lowest CPU priority (Linux), so overlays use only CPU time that scoring leaves
// idle: an attacker who sends many triggered inputs slows the dashboard, never the filter.
import type { SaliencyMethod } from "../forensics/saliency.js";
import type { WorkerInit } from "../workers/protocol.js";
import { ScoringWorker } from "../workers/scoring-worker.js";

/** What the service knows of a flagged input when it answers. */
export interface FlaggedMeta {
  time: string;
  requestId: string;
  route: string;
  pred: number;
  class: string;
  score: number | null;
}

export interface FlaggedInput extends FlaggedMeta {
  /** The decoded image at the model's size, uint8 HWC. */
  pixels: Uint8Array;
}

export interface FlaggedEntry extends FlaggedMeta {
  /** Increasing number of the flagged input since the server started. */
  seq: number;
  /** The saliency overlay as a data: URL (PNG at the model's input size), null if it failed. */
  overlay: string | null;
  /** Where B looks most, as [row, column] of the model's input. */
  peak: [number, number] | null;
  error?: string;
}

export interface FeedStats {
  keep: number;
  method: SaliencyMethod;
  /** Flagged inputs offered since start, explained, dropped because the queue was full, and failed. */
  offered: number;
  explained: number;
  dropped: number;
  failed: number;
  queued: number;
  /** Time of the last explanation in the worker (saliency + PNG), ms. */
  lastExplainMs: number | null;
  /** Whether the explain worker runs at the lowest CPU priority (false where the OS refused; see `backgroundError`). */
  background: boolean;
  backgroundError?: string;
}

export interface FeedOptions {
  keep: number;
  method: SaliencyMethod;
  /** Flagged inputs waiting for the explain worker beyond which new ones are dropped. */
  maxQueue: number;
  width: number;
  onError?: (e: Error) => void;
}

interface ExplainWorker {
  worker: ScoringWorker;
  backgroundError?: string;
}

/** The explain worker: one libtorch thread (saliency needs B's gradients), at the lowest CPU priority. */
async function startExplainWorker(init: WorkerInit): Promise<ExplainWorker> {
  const { worker, backgroundError } = await ScoringWorker.start({
    ...init,
    threads: 1,
    engine: "libtorch",
    background: true,
  });
  return backgroundError === undefined ? { worker } : { worker, backgroundError };
}

export class FlaggedFeed {
  readonly #o: FeedOptions;
  readonly #ring: FlaggedEntry[] = [];
  readonly #queue: (FlaggedInput & { seq: number })[] = [];
  #worker: ScoringWorker | null;
  #init: WorkerInit;
  #busy: Promise<void> | null = null;
  #closed = false;
  #seq = 0;
  #stats = { offered: 0, explained: 0, dropped: 0, failed: 0, lastExplainMs: null as number | null };
  #backgroundError: string | undefined;

  private constructor(started: ExplainWorker, init: WorkerInit, o: FeedOptions) {
    this.#worker = started.worker;
    this.#backgroundError = started.backgroundError;
    this.#init = init;
    this.#o = o;
    this.#watch(started.worker);
  }

  /** Starts the explain worker (one libtorch thread) with the scoring pool's detector source. */
  static async start(init: WorkerInit, o: FeedOptions): Promise<FlaggedFeed> {
    return new FlaggedFeed(await startExplainWorker(init), init, o);
  }

  /** Queues a flagged input for explanation; returns at once (drops it when the queue is full). */
  offer(input: FlaggedInput): void {
    if (this.#closed) return;
    this.#stats.offered++;
    const seq = ++this.#seq;
    if (this.#queue.length >= this.#o.maxQueue) {
      this.#stats.dropped++;
      return;
    }
    this.#queue.push({ ...input, seq });
    this.#pump();
  }

  /** Where worker failures are reported (the server's log). */
  setErrorHandler(fn: (e: Error) => void): void {
    this.#o.onError = fn;
  }

  /** Newest first. */
  recent(limit = this.#o.keep): FlaggedEntry[] {
    return this.#ring.slice(-limit).reverse();
  }

  get stats(): FeedStats {
    const priority =
      this.#backgroundError === undefined
        ? { background: true }
        : { background: false, backgroundError: this.#backgroundError };
    return { keep: this.#o.keep, method: this.#o.method, ...this.#stats, queued: this.#queue.length, ...priority };
  }

  /** Resolves when the queue is empty and nothing is being explained (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#busy) await this.#busy;
  }

  /** A reload: explanations continue with a worker holding the new detector. */
  async replace(init: WorkerInit): Promise<void> {
    const started = await startExplainWorker(init);
    const { worker } = started;
    if (this.#closed) {
      await worker.close();
      return;
    }
    // No new explanation starts on the old worker (pump needs a worker); the running one finishes.
    const old = this.#worker;
    this.#worker = null;
    await this.idle();
    this.#init = init;
    this.#worker = worker;
    this.#backgroundError = started.backgroundError;
    this.#watch(worker);
    await old?.close();
    this.#pump();
  }

  /** Stops taking inputs, finishes the one being explained, frees the worker; resolves with its leftover tensors. */
  async close(): Promise<number> {
    this.#closed = true;
    this.#queue.length = 0;
    await this.#busy;
    const left = (await this.#worker?.close()) ?? 0;
    this.#worker = null;
    return left;
  }

  #watch(w: ScoringWorker): void {
    w.onDeath = (e) => {
      this.#o.onError?.(e);
      if (this.#worker !== w || this.#closed) return;
      this.#worker = null;
      // One replacement; if it fails too, the feed stays off (scoring is unaffected).
      startExplainWorker(this.#init).then(
        ({ worker, backgroundError }) => {
          if (this.#closed) return void worker.close();
          this.#worker = worker;
          this.#backgroundError = backgroundError;
          this.#watch(worker);
          this.#pump();
        },
        (err: unknown) => this.#o.onError?.(err instanceof Error ? err : new Error(String(err))),
      );
    };
  }

  #pump(): void {
    if (this.#busy || this.#closed) return;
    const w = this.#worker;
    const next = this.#queue.shift();
    if (!w || !next) {
      if (next) this.#queue.unshift(next);
      return;
    }
    const preds = Int32Array.of(next.pred);
    const pixels = Uint8Array.prototype.slice.call(next.pixels);
    this.#busy = w
      .explain(1, pixels, preds, this.#o.method)
      .then(
        (r) => {
          this.#stats.explained++;
          this.#stats.lastExplainMs = r.explainMs;
          const png = r.overlays[0] ?? new Uint8Array(0);
          const peak = r.peaks[0] ?? 0;
          this.#push(next, {
            overlay: `data:image/png;base64,${Buffer.from(png).toString("base64")}`,
            peak: [Math.floor(peak / this.#o.width), peak % this.#o.width],
          });
        },
        (e: unknown) => {
          this.#stats.failed++;
          const err = e instanceof Error ? e : new Error(String(e));
          this.#o.onError?.(err);
          this.#push(next, { overlay: null, peak: null, error: err.message });
        },
      )
      .finally(() => {
        this.#busy = null;
        this.#pump();
      });
  }

  #push(input: FlaggedInput & { seq: number }, made: Pick<FlaggedEntry, "overlay" | "peak" | "error">): void {
    const { seq, time, requestId, route, pred, score } = input;
    this.#ring.push({ seq, time, requestId, route, pred, class: input.class, score, ...made });
    if (this.#ring.length > this.#o.keep) this.#ring.splice(0, this.#ring.length - this.#o.keep);
  }
}
