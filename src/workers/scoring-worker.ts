// The owner's handle on one scoring worker thread (the service's HTTP thread, or the library's
// Detector): start it (it loads the detector), send it one batch at a time, and turn every way it
// can fail — a load error, an exception in a forward pass, the thread dying — into a rejected
// promise, so no input is ever left unanswered.
import { Worker } from "node:worker_threads";
import type { ServedInfo } from "./served-info.js";
import type { SaliencyMethod } from "../forensics/saliency.js";
import type { BatchResult, ExplainResult, FromWorker, ToWorker, WorkerInit } from "./protocol.js";

const WORKER_URL = new URL("./scoring-thread.js", import.meta.url);

interface Pending {
  id: number;
  /** Takes the worker's answer ("scored" or "explained") for this request. */
  resolve: (m: FromWorker) => void;
  reject: (e: Error) => void;
}

/**
 * The array itself when it spans its whole buffer, else a copy: transferring a view's buffer would
 * detach memory the view does not own (a request body's slice, or Node's shared Buffer pool, which
 * every later Buffer allocation then fails on).
 */
function owned<T extends Uint8Array | Float32Array | Int32Array>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : (a.slice() as T);
}

export class ScoringWorker {
  readonly #worker: Worker;
  #pending: Pending | null = null;
  #nextId = 1;
  #dead: Error | null = null;
  #closed: ((liveTensors: number) => void) | null = null;
  /** Called once when the thread dies unexpectedly (not after close()). */
  onDeath: ((e: Error) => void) | null = null;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /** Starts a worker and waits until its detector is loaded. */
  static start(
    init: WorkerInit,
  ): Promise<{ worker: ScoringWorker; info: ServedInfo; threads: number; backgroundError?: string }> {
    const w = new ScoringWorker(new Worker(WORKER_URL, { workerData: init }));
    return new Promise((resolve, reject) => {
      let started = false;
      w.#worker.on("message", (m: FromWorker) => {
        if (m.type === "ready") {
          started = true;
          resolve({
            worker: w,
            info: m.info,
            threads: m.threads,
            ...(m.backgroundError !== undefined ? { backgroundError: m.backgroundError } : {}),
          });
        } else if (m.type === "failed") {
          reject(new Error(`scoring worker could not load the detector: ${m.message}`));
          void w.#worker.terminate();
        } else {
          w.#onMessage(m);
        }
      });
      w.#worker.on("error", (e) => w.#die(new Error(`scoring worker crashed: ${e.message}`), started ? null : reject));
      w.#worker.on("exit", (code) =>
        w.#die(new Error(`scoring worker exited (code ${code})`), started ? null : reject),
      );
    });
  }

  get busy(): boolean {
    return this.#pending !== null;
  }

  get alive(): boolean {
    return this.#dead === null;
  }

  /**
   * Scores one batch; the caller never sends a second before this one settles. The pixels are
   * copied before their buffer is transferred: callers keep views into them (the flagged-input
   * feed, the audit log), which a transfer would detach.
   */
  run(count: number, pixels: Uint8Array | Float32Array): Promise<BatchResult> {
    // A true copy even of a Node Buffer, whose own slice() is a view.
    const own = pixels instanceof Float32Array ? pixels.slice() : Uint8Array.prototype.slice.call(pixels);
    return this.#request((id) => ({ type: "score", id, count, pixels: own }), [own.buffer as ArrayBuffer], "scored");
  }

  /** Saliency overlays of flagged images (M's predictions `preds`); one request at a time, like run(). */
  explain(count: number, pixels: Uint8Array, preds: Int32Array, method: SaliencyMethod): Promise<ExplainResult> {
    const [ownPixels, ownPreds] = [owned(pixels), owned(preds)];
    return this.#request(
      (id) => ({ type: "explain", id, count, pixels: ownPixels, preds: ownPreds, method }),
      [ownPixels.buffer as ArrayBuffer, ownPreds.buffer as ArrayBuffer],
      "explained",
    );
  }

  #request<K extends "scored" | "explained">(
    make: (id: number) => ToWorker,
    transfer: ArrayBuffer[],
    answer: K,
  ): Promise<Extract<FromWorker, { type: K }>> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (this.#pending)
      return Promise.reject(new Error("scoring worker is busy (a request was sent before the last one was answered)"));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const take = (m: FromWorker): void => {
        if (m.type === answer) resolve(m as Extract<FromWorker, { type: K }>);
        else reject(new Error(`scoring worker answered '${m.type}' to a request for '${answer}'`));
      };
      this.#pending = { id, resolve: take, reject };
      this.#worker.postMessage(make(id), transfer);
    });
  }

  /** Lets the worker free its models and end; resolves with the tensors it still held (0). */
  close(): Promise<number> {
    if (this.#dead) return Promise.resolve(0);
    return new Promise((resolve) => {
      this.#closed = resolve;
      const msg: ToWorker = { type: "close" };
      this.#worker.postMessage(msg);
    });
  }

  #onMessage(m: FromWorker): void {
    if (m.type === "closed") {
      this.#dead = new Error("scoring worker was closed");
      this.#closed?.(m.liveTensors);
      this.#closed = null;
      return;
    }
    if (m.type !== "scored" && m.type !== "explained" && m.type !== "error") return;
    const p = this.#pending;
    if (!p || p.id !== m.id) return;
    this.#pending = null;
    if (m.type === "error") p.reject(new Error(`scoring failed: ${m.message}`));
    else p.resolve(m);
  }

  #die(e: Error, rejectStart: ((e: Error) => void) | null): void {
    const expected = this.#dead !== null;
    if (!expected) this.#dead = e;
    rejectStart?.(e);
    this.#pending?.reject(e);
    this.#pending = null;
    this.#closed?.(0);
    this.#closed = null;
    if (!expected && !rejectStart) this.onDeath?.(e);
  }
}
