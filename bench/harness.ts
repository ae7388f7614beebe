// Small helpers shared by the benchmark scripts: timing, a table printer and a JSON tail line.
export function seconds(fn: () => void): number {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Median of repeated timings after `warmup` untimed runs. */
export function medianSeconds(fn: () => void, reps: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts = Array.from({ length: reps }, () => seconds(fn)).sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)] as number;
}

export function printTable(title: string, rows: [string, string][]): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log(title);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
}

export function wantsJson(): boolean {
  return process.argv.includes("--json");
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Prints `help` and exits when --help was given. */
export function helpAndExit(wanted: boolean | undefined, help: string): void {
  if (wanted) {
    console.log(help);
    process.exit(0);
  }
}

/** A usage-error function for one benchmark script: the message, a pointer to --help, exit status 2. */
export function usageFailure(script: string): (msg: string) => never {
  return (msg: string): never => {
    console.error(`${script}: ${msg}\n(see --help)`);
    process.exit(2);
  };
}
