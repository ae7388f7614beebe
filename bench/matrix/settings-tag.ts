// A set of named settings written as "k=v" pairs sorted by name: how a matrix cell's defense
// overrides are named in its file name (cells.ts) and labelled in the rendered tables (tables.ts), which
// must agree so that a row can be traced back to its file.

/** "canaries=blend+patch,finetuneLr=0.05" with separator ","; undefined values are left out, lists are joined by "+"; "" when none. */
export function settingsTag(settings: object | undefined, separator: string): string {
  return Object.entries(settings ?? {})
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : String(v)}`)
    .join(separator);
}
