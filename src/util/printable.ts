// Names that come from files (tensor names, manifest keys) end up in error messages and log lines.
// Printed raw, a name holding a newline or an ANSI escape can forge an output line or repaint the
// terminal, so every such name is quoted with all control and direction-changing characters escaped.

// C0 and C1 controls, DEL, line/paragraph separators and the bidirectional overrides/isolates
// (which reorder what a terminal shows). JSON.stringify already escapes C0 and quotes.
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** Longest quoted text kept in a message; a megabyte-long name would bury the error. */
const MAX_CHARS = 200;

/** `s` as a double-quoted, escaped string that is safe to print, shortened when very long. */
export function printable(s: string, maxChars = MAX_CHARS): string {
  const shown = s.length > maxChars ? s.slice(0, maxChars) : s;
  const quoted = JSON.stringify(shown).replace(
    UNSAFE,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
  return s.length > maxChars ? `${quoted}… (${s.length} characters)` : quoted;
}

/** Any JSON-like value, printed with the same escaping (for "found X" parts of messages). */
export function printableValue(v: unknown, maxChars = MAX_CHARS): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  const shown = text.length > maxChars ? `${text.slice(0, maxChars)}… (${text.length} characters)` : text;
  return shown.replace(UNSAFE, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`);
}

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** Free text that may quote a file (e.g. a JSON.parse message) with control characters escaped, shortened when long. */
export function escapeControls(text: string, maxChars = 2 * MAX_CHARS): string {
  const shown = text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  return shown.replace(CONTROLS, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`);
}
