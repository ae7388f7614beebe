// Flagged inputs over a sliding window, overall and per predicted class. A backdoor attack in
// progress shows up as a rising flagged rate concentrated on the attack's target class, which
// a lifetime counter hides behind hours of clean traffic. One-second buckets in a ring: O(1)
// per input, O(window × classes) per read (a read is a /metrics scrape or an alert check).

export interface WindowStats {
  scored: number;
  flagged: number;
  /** flagged / scored (0 when nothing was scored in the window). */
  rate: number;
  /** Flagged inputs per predicted class in the window. */
  flaggedByClass: number[];
}

export class FlagWindow {
  readonly seconds: number;
  readonly #classes: number;
  readonly #second: Float64Array;
  readonly #scored: Float64Array;
  readonly #flagged: Float64Array;
  readonly #byClass: Float64Array;

  constructor(seconds: number, classes: number) {
    if (!Number.isInteger(seconds) || seconds < 1)
      throw new RangeError(`FlagWindow: seconds must be a positive integer, got ${seconds}`);
    this.seconds = seconds;
    this.#classes = classes;
    this.#second = new Float64Array(seconds).fill(-1);
    this.#scored = new Float64Array(seconds);
    this.#flagged = new Float64Array(seconds);
    this.#byClass = new Float64Array(seconds * classes);
  }

  #bucket(nowMs: number): number {
    const sec = Math.floor(nowMs / 1000);
    const i = sec % this.seconds;
    if (this.#second[i] !== sec) {
      this.#second[i] = sec;
      this.#scored[i] = 0;
      this.#flagged[i] = 0;
      this.#byClass.fill(0, i * this.#classes, (i + 1) * this.#classes);
    }
    return i;
  }

  record(pred: number, flagged: boolean, nowMs = Date.now()): void {
    const i = this.#bucket(nowMs);
    this.#scored[i] = (this.#scored[i] as number) + 1;
    if (!flagged) return;
    this.#flagged[i] = (this.#flagged[i] as number) + 1;
    if (pred >= 0 && pred < this.#classes) {
      const j = i * this.#classes + pred;
      this.#byClass[j] = (this.#byClass[j] as number) + 1;
    }
  }

  stats(nowMs = Date.now()): WindowStats {
    const sec = Math.floor(nowMs / 1000);
    let scored = 0;
    let flagged = 0;
    const flaggedByClass = new Array<number>(this.#classes).fill(0);
    for (let i = 0; i < this.seconds; i++) {
      const s = this.#second[i] as number;
      if (s < 0 || s <= sec - this.seconds || s > sec) continue;
      scored += this.#scored[i] as number;
      flagged += this.#flagged[i] as number;
      for (let c = 0; c < this.#classes; c++)
        flaggedByClass[c] = (flaggedByClass[c] as number) + (this.#byClass[i * this.#classes + c] as number);
    }
    return { scored, flagged, rate: scored > 0 ? flagged / scored : 0, flaggedByClass };
  }
}
