// The dynamic batcher (after Triton's): inputs of concurrent requests wait in one FIFO queue;
// when a worker is idle, up to maxBatch of them go as one batch — at once if the batch is full,
// otherwise once the oldest has waited maxWaitMs. While every worker is busy the queue simply
// grows, so batches fill up by themselves under load. Admission is all-or-nothing per request
// (maxQueue inputs at most), and a request that is not scored in time is rejected, never
// reported clean.
import type { BatchResult } from "../workers/protocol.js";
import { queueFull, scoringFailed, shuttingDown, timedOut, type ServeError } from "./errors.js";

/** What runs batches: the worker pool, or a test double. */
export interface Executor {
  idle(): number;
  run(count: number, pixels: Uint8Array): Promise<BatchResult>;
}

export interface ScoredInput {
  pred: number;
  /** b and a (BaDExpert); null for a baseline detector. */
  expertConfidence: number | null;
  auxiliaryConfidence: number | null;
  /** The detector that scored it: "badexpert" or a baseline's registry name. */
  detector: string;
  /** null when the detector produced a score that is not a finite number. */
  score: number | null;
  threshold: number;
  flagged: boolean;
  /** Why an input is flagged without a valid score (fail closed). */
  reason?: string;
}

export interface BatcherObserver {
  /** A batch went to a worker. */
  batch?(size: number): void;
  /** A batch came back (forward time in ms as the worker measured it). */
  scored?(size: number, forwardMs: number, liveTensors: number): void;
  /** A batch failed (worker error or death); its inputs were answered with 503. */
  failed?(size: number, e: Error): void;
}

interface Item {
  pixels: Uint8Array;
  enqueuedAt: number;
  request: Ticket;
  index: number;
}

interface Ticket {
  results: (ScoredInput | undefined)[];
  left: number;
  done: boolean;
  timer: NodeJS.Timeout;
  resolve(r: ScoredInput[]): void;
  reject(e: ServeError): void;
}

export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  timeoutMs: number;
}

export class Batcher {
  #executor: Executor;
  readonly #o: BatcherOptions;
  readonly #observer: BatcherObserver;
  readonly #queue: Item[] = [];
  #timer: NodeJS.Timeout | null = null;
  #timerAt = 0;
  #running = 0;
  #draining = false;
  #refusing: (() => ServeError) | null = null;
  /** The items of the batches being scored. */
  readonly #batches = new Set<Item[]>();
  #idleWaiters: (() => void)[] = [];

  constructor(executor: Executor, o: BatcherOptions, observer: BatcherObserver = {}) {
    this.#executor = executor;
    this.#o = o;
    this.#observer = observer;
  }

  /** Inputs waiting for a worker. */
  get queueDepth(): number {
    return this.#queue.length;
  }

  /** Batches being scored now. */
  get running(): number {
    return this.#running;
  }

  /** Switches to another executor (a reloaded pool); batches already running finish on the old one. */
  setExecutor(e: Executor): void {
    this.#executor = e;
    this.pump();
  }

  /**
   * Queues the images of one request (uint8 NHWC at the model's size) and resolves with one
   * result per image, in order. Rejects with 503 when the queue cannot take them all, 504 when
   * they are not scored within timeoutMs, 503 when scoring fails.
   */
  submit(images: readonly Uint8Array[]): Promise<ScoredInput[]> {
    if (this.#refusing) return Promise.reject(this.#refusing());
    if (this.#queue.length + images.length > this.#o.maxQueue)
      return Promise.reject(queueFull(this.#queue.length, images.length, this.#o.maxQueue));
    if (images.length === 0) return Promise.resolve([]);
    return new Promise<ScoredInput[]>((resolve, reject) => {
      const ticket: Ticket = {
        results: new Array<ScoredInput | undefined>(images.length),
        left: images.length,
        done: false,
        resolve,
        reject,
        timer: setTimeout(() => {
          const queued = this.#dropQueued(ticket);
          this.#settle(
            ticket,
            timedOut(
              this.#o.timeoutMs,
              queued > 0 ? `${queued} of its inputs were still queued` : "a worker was still scoring it",
            ),
          );
        }, this.#o.timeoutMs),
      };
      const now = performance.now();
      for (const [index, pixels] of images.entries())
        this.#queue.push({ pixels, enqueuedAt: now, request: ticket, index });
      this.pump();
    });
  }

  /** Dispatches as many batches as idle workers and the batching rule allow. */
  pump(): void {
    while (this.#queue.length > 0 && this.#executor.idle() > 0) {
      const full = this.#queue.length >= this.#o.maxBatch;
      const waited = performance.now() - (this.#queue[0] as Item).enqueuedAt;
      if (!full && !this.#draining && waited < this.#o.maxWaitMs) {
        this.#wakeAt(this.#o.maxWaitMs - waited);
        return;
      }
      this.#dispatch(this.#queue.splice(0, this.#o.maxBatch));
    }
  }

  /**
   * Shutdown: from now on a batch goes as soon as a worker is idle, without waiting for
   * companions. Requests still come in (the server stops taking new ones at its door; those it
   * already took must be scored). Resolves when nothing is queued or running.
   */
  drain(): Promise<void> {
    this.#draining = true;
    this.pump();
    if (this.#queue.length === 0 && this.#running === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  /**
   * The end of a shutdown's grace period: every request queued or being scored is rejected with
   * `error()` (their inputs were not checked), and so is every later one. A running batch's
   * result, when it comes, is dropped.
   */
  abort(error: () => ServeError = shuttingDown): void {
    this.#refusing = error;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const tickets = new Set([...this.#queue, ...[...this.#batches].flat()].map((it) => it.request));
    this.#queue.length = 0;
    for (const t of tickets) this.#settle(t, error());
    this.#checkIdle();
  }

  #wakeAt(ms: number): void {
    const at = performance.now() + ms;
    if (this.#timer && this.#timerAt <= at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = null;
        this.pump();
      },
      Math.max(0, Math.ceil(ms)),
    );
  }

  #dispatch(items: Item[]): void {
    const per = (items[0] as Item).pixels.length;
    const pixels = new Uint8Array(items.length * per);
    for (const [k, it] of items.entries()) {
      if (it.pixels.length !== per) {
        // Cannot happen while every image is decoded to the model's size; refuse rather than misalign.
        for (const x of items)
          this.#settle(
            x.request,
            scoringFailed(`internal error: a batch mixed images of ${per} and ${it.pixels.length} bytes`),
          );
        return;
      }
      pixels.set(it.pixels, k * per);
    }
    this.#running++;
    this.#batches.add(items);
    this.#observer.batch?.(items.length);
    this.#executor
      .run(items.length, pixels)
      .then(
        (r) => {
          this.#observer.scored?.(items.length, r.forwardMs, r.liveTensors);
          this.#deliver(items, r);
        },
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          this.#observer.failed?.(items.length, err);
          for (const it of items) this.#settle(it.request, scoringFailed(err.message));
        },
      )
      .finally(() => {
        this.#running--;
        this.#batches.delete(items);
        this.pump();
        this.#checkIdle();
      });
  }

  #deliver(items: Item[], r: BatchResult): void {
    const n = items.length;
    if (
      r.pred.length !== n ||
      r.score.length !== n ||
      r.flagged.length !== n ||
      (r.expertConfidence !== null && r.expertConfidence.length !== n) ||
      (r.auxiliaryConfidence !== null && r.auxiliaryConfidence.length !== n)
    ) {
      for (const it of items)
        this.#settle(
          it.request,
          scoringFailed(`internal error: a batch of ${n} came back with ${r.pred.length} results`),
        );
      return;
    }
    for (const [k, it] of items.entries()) {
      const t = it.request;
      if (t.done) continue;
      const score = r.score[k] as number;
      const finite = Number.isFinite(score);
      t.results[it.index] = {
        pred: r.pred[k] as number,
        expertConfidence: r.expertConfidence ? (r.expertConfidence[k] as number) : null,
        auxiliaryConfidence: r.auxiliaryConfidence ? (r.auxiliaryConfidence[k] as number) : null,
        detector: r.detector,
        score: finite ? score : null,
        threshold: r.threshold,
        // Fail closed: an input without a finite score is treated as suspicious, whatever the flag says.
        flagged: !finite || r.flagged[k] === 1,
        ...(finite ? {} : { reason: `the detector's score is not a finite number (${String(score)})` }),
      };
      if (--t.left === 0) this.#settle(t, null);
    }
  }

  #checkIdle(): void {
    if (this.#queue.length === 0 && this.#running === 0) for (const r of this.#idleWaiters.splice(0)) r();
  }

  #dropQueued(t: Ticket): number {
    let dropped = 0;
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      if ((this.#queue[i] as Item).request === t) {
        this.#queue.splice(i, 1);
        dropped++;
      }
    }
    return dropped;
  }

  #settle(t: Ticket, e: ServeError | null): void {
    if (t.done) return;
    t.done = true;
    clearTimeout(t.timer);
    if (e) {
      this.#dropQueued(t);
      t.reject(e);
      this.#checkIdle();
    } else {
      t.resolve(t.results as ScoredInput[]);
    }
  }
}
