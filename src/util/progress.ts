// Progress reporting for long jobs: a redrawn bar with rate and ETA on a terminal, plain lines
// (at most one every few seconds, plus the last) when stderr is not a terminal. Always stderr,
// so stdout stays clean for --json output.
export interface ProgressOptions {
  /** Force plain lines (default: when stderr is not a TTY). */
  plain?: boolean;
  /** Minimum seconds between plain lines. */
  plainInterval?: number;
  stream?: NodeJS.WriteStream;
  /** Suppress all output. */
  silent?: boolean;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(r).padStart(2, "0")}s` : `${r}s`;
}

export class Progress {
  readonly #label: string;
  readonly #total: number;
  readonly #stream: NodeJS.WriteStream;
  readonly #plain: boolean;
  readonly #interval: number;
  readonly #silent: boolean;
  readonly #start = Date.now();
  #done = 0;
  #lastDraw = 0;
  #status = "";

  constructor(label: string, total: number, o: ProgressOptions = {}) {
    this.#label = label;
    this.#total = Math.max(0, total);
    this.#stream = o.stream ?? process.stderr;
    this.#plain = o.plain ?? !this.#stream.isTTY;
    this.#interval = (o.plainInterval ?? 5) * 1000;
    this.#silent = o.silent ?? false;
  }

  /** Advances by `n` units; `status` is shown after the bar (e.g. "loss 0.41 acc 87.2%"). */
  tick(n = 1, status?: string): void {
    this.#done = Math.min(this.#total, this.#done + n);
    if (status !== undefined) this.#status = status;
    const now = Date.now();
    const last = this.#done === this.#total;
    if (last || now - this.#lastDraw >= (this.#plain ? this.#interval : 100)) {
      this.#lastDraw = now;
      this.#draw(last);
    }
  }

  /** Ends the bar (newline on a terminal) with an optional final status. */
  finish(status?: string): void {
    if (status !== undefined) this.#status = status;
    this.#draw(true);
  }

  line(): string {
    const elapsed = (Date.now() - this.#start) / 1000;
    const rate = elapsed > 0 ? this.#done / elapsed : 0;
    const eta = rate > 0 ? (this.#total - this.#done) / rate : Number.NaN;
    const pct = this.#total > 0 ? (100 * this.#done) / this.#total : 100;
    const rateText = rate >= 10 ? rate.toFixed(0) : rate.toFixed(2);
    return `${this.#label} ${this.#done}/${this.#total} (${pct.toFixed(0)}%) ${rateText}/s elapsed ${formatDuration(elapsed)} ETA ${formatDuration(eta)}${this.#status ? ` ${this.#status}` : ""}`;
  }

  #draw(final: boolean): void {
    if (this.#silent) return;
    if (this.#plain) {
      this.#stream.write(`${this.line()}\n`);
      return;
    }
    const width = 24;
    const filled = this.#total > 0 ? Math.round((width * this.#done) / this.#total) : width;
    const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
    this.#stream.write(`\r\x1b[2K${bar} ${this.line()}${final ? "\n" : ""}`);
  }
}
