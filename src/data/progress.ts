// Plain progress lines on stderr: stdout stays clean for JSON output, and lines (not \r redraws) read well in logs.

export interface ProgressSink {
  /** `done` out of the total given at creation. */
  update(done: number): void;
  finish(): void;
}

const SILENT: ProgressSink = { update() {}, finish() {} };

/**
 * Reports every 10% once the work has run for `quietMs`: short loads (cache hits, small files)
 * print nothing at all.
 */
export function progressReporter(
  label: string,
  total: number,
  enabled = true,
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
  quietMs = 1500,
): ProgressSink {
  if (!enabled || total <= 0) return SILENT;
  const start = Date.now();
  let nextDecile = 1;
  let printed = false;
  const seconds = (): string => ((Date.now() - start) / 1000).toFixed(1);
  return {
    update(done: number): void {
      const decile = Math.floor((10 * done) / total);
      if (decile < nextDecile) return;
      nextDecile = decile + 1;
      if (Date.now() - start < quietMs) return;
      printed = true;
      write(`${label}: ${Math.min(100, decile * 10)}% (${seconds()} s)`);
    },
    finish(): void {
      if (printed && nextDecile <= 10) write(`${label}: 100% (${seconds()} s)`);
    },
  };
}
