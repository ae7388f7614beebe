// The decoded pixels the service may hold at once, across all requests: a counting semaphore in
// pixels. An image takes its header's pixel count before it is decoded and gives it back once it
// is at the model's size, so however many requests arrive together, full-size decoded images
// never add up past the budget. Waiters are served in arrival order (a large image is not
// starved by a stream of small ones) and give up at the request's deadline, unscored: 503.
import { ServeError } from "./errors.js";

interface Waiter {
  pixels: number;
  grant(): void;
}

export class PixelBudget {
  readonly capacity: number;
  #free: number;
  readonly #waiters: Waiter[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#free = capacity;
  }

  /** Pixels held now by images being decoded. */
  get inUse(): number {
    return this.capacity - this.#free;
  }

  /** Images waiting for pixels. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Resolves with a release function once `pixels` are held; rejects with 503 when they are not
   * free within `timeoutMs`. `pixels` above the capacity is a caller's bug (the request limit is
   * checked first).
   */
  acquire(pixels: number, timeoutMs: number, what: string): Promise<() => void> {
    if (pixels > this.capacity)
      return Promise.reject(new RangeError(`PixelBudget: ${pixels} pixels exceed the capacity of ${this.capacity}`));
    const release = once(() => {
      this.#free += pixels;
      this.#grant();
    });
    if (this.#waiters.length === 0 && pixels <= this.#free) {
      this.#free -= pixels;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        pixels,
        grant: () => {
          clearTimeout(timer);
          resolve(release);
        },
      };
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        // The head may have been what blocked those behind it.
        this.#grant();
        reject(
          new ServeError(
            "E_BUSY",
            "decode_busy",
            `${what}: not decoded within ${timeoutMs} ms: the service's decoding budget (--max-inflight-pixels ${this.capacity}) stayed in use; the input was not checked and must not be treated as clean; retry later`,
            {
              headers: { "retry-after": "1" },
            },
          ),
        );
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  #grant(): void {
    for (let w = this.#waiters[0]; w !== undefined && w.pixels <= this.#free; w = this.#waiters[0]) {
      this.#waiters.shift();
      this.#free -= w.pixels;
      w.grant();
    }
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
