// The flagged-rate alert: a warning in the log when the sliding-window flagged rate crosses
// --alert-rate (with enough inputs in the window for the rate to mean something), repeated once
// per window while it stays above, and a notice when it falls back. The warning names the class
// that most flagged inputs were predicted as: a backdoor attack concentrates them on its target.
import type { FlagWindow } from "./flag-window.js";

export interface AlertLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info(obj: Record<string, unknown>, msg: string): void;
}

export class RateAlert {
  readonly #window: FlagWindow;
  readonly #rate: number;
  readonly #minInputs: number;
  readonly #classNames: readonly string[];
  readonly #log: AlertLogger;
  #active = false;
  #lastWarn = 0;

  constructor(
    window: FlagWindow,
    o: { rate: number; minInputs: number; classNames: readonly string[]; log: AlertLogger },
  ) {
    this.#window = window;
    this.#rate = o.rate;
    this.#minInputs = o.minInputs;
    this.#classNames = o.classNames;
    this.#log = o.log;
  }

  get active(): boolean {
    return this.#active;
  }

  /** Called after inputs were recorded in the window. */
  check(nowMs = Date.now()): void {
    const s = this.#window.stats(nowMs);
    const above = s.scored >= this.#minInputs && s.rate >= this.#rate;
    if (above && (!this.#active || nowMs - this.#lastWarn >= this.#window.seconds * 1000)) {
      let top = 0;
      for (let c = 1; c < s.flaggedByClass.length; c++)
        if ((s.flaggedByClass[c] as number) > (s.flaggedByClass[top] as number)) top = c;
      const topCount = s.flaggedByClass[top] ?? 0;
      this.#log.warn(
        {
          event: "flagged_rate_alert",
          rate: s.rate,
          alertRate: this.#rate,
          windowSeconds: this.#window.seconds,
          scored: s.scored,
          flagged: s.flagged,
          topClass: this.#classNames[top] ?? String(top),
          topClassShare: s.flagged > 0 ? topCount / s.flagged : 0,
        },
        `flagged rate ${(s.rate * 100).toFixed(1)}% over the last ${this.#window.seconds} s is above --alert-rate ${(this.#rate * 100).toFixed(1)}%; ` +
          `${topCount} of ${s.flagged} flagged inputs were predicted as "${this.#classNames[top] ?? top}" (a backdoor attack in progress concentrates them on its target class)`,
      );
      this.#active = true;
      this.#lastWarn = nowMs;
    } else if (!above && this.#active) {
      this.#active = false;
      this.#log.info(
        { event: "flagged_rate_recovered", rate: s.rate, alertRate: this.#rate, scored: s.scored },
        "flagged rate is back below --alert-rate",
      );
    }
  }
}
