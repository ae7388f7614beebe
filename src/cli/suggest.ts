// "Did you mean ...?" for a mistyped command or option: the known names closest to what was typed
// by Damerau–Levenshtein distance (optimal string alignment: a swap of two neighbours is one edit),
// and only those close enough to be a typo of it, so an unrelated word suggests nothing.

/** Edits (insert, delete, substitute, swap neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    const row = d[i] as number[];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      row[j] = best;
    }
  }
  return at(a.length, b.length);
}

/** Largest distance still taken for a typo of `known`: one edit per three of its characters, at least one. */
function tolerance(known: string): number {
  return Math.max(1, Math.floor(known.length / 3));
}

/** The known names nearest to `typed` (ties kept, at most three, in table order); [] when none is close. */
export function closest(typed: string, known: readonly string[]): string[] {
  // The distance is at least the difference in length: a far longer word (even megabytes of it) is never compared.
  const scored = known
    .filter((k) => Math.abs(typed.length - k.length) <= tolerance(k))
    .map((k) => ({ k, d: editDistance(typed.toLowerCase(), k.toLowerCase()) }))
    .filter(({ k, d }) => d <= tolerance(k));
  if (scored.length === 0) return [];
  const best = Math.min(...scored.map((s) => s.d));
  return scored
    .filter((s) => s.d === best)
    .map((s) => s.k)
    .slice(0, 3);
}

/** " (did you mean X?)", " (did you mean X or Y?)", or "" when nothing is close. */
export function didYouMean(typed: string, known: readonly string[], show: (name: string) => string): string {
  const hits = closest(typed, known).map(show);
  if (hits.length === 0) return "";
  const list = hits.length === 1 ? hits[0] : `${hits.slice(0, -1).join(", ")} or ${hits.at(-1) ?? ""}`;
  return ` (did you mean ${list}?)`;
}
