// Attack parameters as data: each attack declares a table of specs (type, default, range); the
// registry resolves the caller's overrides against it, so every bad value is reported with the
// parameter's name, what was expected and what was given, before any work starts.
import type { AttackParams, ParamValue } from "./attack.js";
import { BadExpertError } from "../util/errors.js";

export interface ParamSpec {
  /** "numbers": a comma-separated list of numbers, kept as a string so params stay JSON scalars. */
  /** "sha256": "" or 64 lowercase hex digits (the digest of an artefact stored next to a checkpoint). */
  type: "number" | "integer" | "boolean" | "numbers" | "integers" | "sha256";
  default: ParamValue;
  /** Inclusive bounds for numbers (and for each list element). */
  min?: number;
  max?: number;
  /** Exclusive lower bound (e.g. a rate or strength that must be positive). */
  above?: number;
  /** Lists only: the empty string (no elements) is allowed, e.g. for a value an attack fills in itself. */
  emptyAllowed?: boolean;
  description: string;
}

export type ParamTable = Readonly<Record<string, ParamSpec>>;

/** An attack parameter that is unknown, malformed or out of range (E_USAGE). */
export class AttackParamError extends BadExpertError {
  override name = "AttackParamError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_USAGE", message, options);
  }
}

/** Reads "16/255" as a fraction as well as plain numbers, since pixel budgets are written that way. */
function parseNumber(v: ParamValue): number {
  if (typeof v === "number") return v;
  if (typeof v !== "string" || v.trim() === "") return Number.NaN;
  const m = /^\s*([^/]+)\/([^/]+)\s*$/.exec(v);
  if (m) return Number(m[1]) / Number(m[2]);
  return Number(v);
}

function rangeText(s: ParamSpec): string {
  const lo = s.above !== undefined ? `> ${s.above}` : s.min !== undefined ? `>= ${s.min}` : "";
  const hi = s.max !== undefined ? `<= ${s.max}` : "";
  return [lo, hi].filter(Boolean).join(" and ");
}

function inRange(s: ParamSpec, n: number): boolean {
  if (!Number.isFinite(n)) return false;
  if (s.min !== undefined && n < s.min) return false;
  if (s.above !== undefined && !(n > s.above)) return false;
  if (s.max !== undefined && n > s.max) return false;
  return true;
}

function convert(attack: string, name: string, s: ParamSpec, v: ParamValue): ParamValue {
  const bad = (expected: string): AttackParamError =>
    new AttackParamError(`attack '${attack}': parameter '${name}' must be ${expected}, got ${JSON.stringify(v)}`);
  const range = rangeText(s);
  switch (s.type) {
    case "boolean": {
      if (typeof v === "boolean") return v;
      if (v === "true" || v === "1") return true;
      if (v === "false" || v === "0") return false;
      throw bad("true or false");
    }
    case "number":
    case "integer": {
      const n = parseNumber(v);
      const what = `${s.type === "integer" ? "an integer" : "a number"}${range ? ` ${range}` : ""}`;
      if (!inRange(s, n) || (s.type === "integer" && !Number.isInteger(n))) throw bad(what);
      return n;
    }
    case "sha256": {
      if (typeof v === "string" && (v === "" || /^[0-9a-f]{64}$/.test(v))) return v;
      throw bad('"" or a SHA-256 digest (64 lowercase hex digits)');
    }
    case "numbers":
    case "integers": {
      if (s.emptyAllowed === true && (v === "" || (typeof v === "string" && v.trim() === ""))) return "";
      const parts =
        typeof v === "number"
          ? [v]
          : typeof v === "string"
            ? v.split(",").map((p) => parseNumber(p.trim()))
            : [Number.NaN];
      const ints = s.type === "integers";
      const what = `a comma-separated list of ${ints ? "integers" : "numbers"}${range ? `, each ${range}` : ""}`;
      if (parts.length === 0 || parts.some((n) => !inRange(s, n) || (ints && !Number.isInteger(n)))) throw bad(what);
      return parts.join(",");
    }
  }
}

/**
 * Applies `overrides` to the table's defaults (then to `datasetDefaults`, which overrides plain
 * defaults but not the caller). Unknown names and bad values throw AttackParamError.
 */
export function resolveParams(
  attack: string,
  table: ParamTable,
  overrides: Readonly<Record<string, ParamValue>>,
  datasetDefaults: Readonly<Record<string, ParamValue>> = {},
): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [name, s] of Object.entries(table)) out[name] = convert(attack, name, s, s.default);
  for (const [name, v] of [...Object.entries(datasetDefaults), ...Object.entries(overrides)]) {
    const s = table[name];
    if (!s)
      throw new AttackParamError(
        `attack '${attack}': unknown parameter '${name}'; valid: ${Object.keys(table).join(", ")}`,
      );
    out[name] = convert(attack, name, s, v);
  }
  return out;
}

/**
 * Parses the CLI form "key=value,key=value". A comma followed by text without "=" continues the
 * previous value, so lists read naturally: "trainAlphas=0.5,0.2,rate=0.01".
 */
export function parseParamOverrides(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let last: string | undefined;
  for (const raw of text.split(",")) {
    const part = raw.trim();
    if (part === "") continue;
    const eq = part.indexOf("=");
    if (eq < 0) {
      if (last === undefined) throw new AttackParamError(`attack parameters: expected key=value, got '${part}'`);
      out[last] = `${out[last] ?? ""},${part}`;
      continue;
    }
    last = part.slice(0, eq).trim();
    if (last === "") throw new AttackParamError(`attack parameters: missing name before '=' in '${part}'`);
    out[last] = part.slice(eq + 1).trim();
  }
  return out;
}

// Typed reads of resolved params; a mismatch means an attack read a name its table lacks (a bug).
export function numberParam(p: AttackParams, name: string): number {
  const v = p[name];
  if (typeof v !== "number")
    throw new TypeError(`attack parameter '${name}' is not a resolved number (got ${JSON.stringify(v)})`);
  return v;
}

export function booleanParam(p: AttackParams, name: string): boolean {
  const v = p[name];
  if (typeof v !== "boolean")
    throw new TypeError(`attack parameter '${name}' is not a resolved boolean (got ${JSON.stringify(v)})`);
  return v;
}

export function stringParam(p: AttackParams, name: string): string {
  const v = p[name];
  if (typeof v !== "string")
    throw new TypeError(`attack parameter '${name}' is not a resolved string (got ${JSON.stringify(v)})`);
  return v;
}

export function numberListParam(p: AttackParams, name: string): number[] {
  const v = p[name];
  if (typeof v !== "string")
    throw new TypeError(`attack parameter '${name}' is not a resolved list (got ${JSON.stringify(v)})`);
  return v === "" ? [] : v.split(",").map(Number);
}

/** The parameters every attack shares. */
export const TARGET_CLASS: ParamSpec = {
  type: "integer",
  default: 0,
  min: 0,
  description: "class the backdoor maps triggered inputs to",
};
export function rateParam(def: number, what = "fraction of the training set poisoned"): ParamSpec {
  return { type: "number", default: def, min: 0, max: 1, description: what };
}
export const PATTERN_SEED: ParamSpec = {
  type: "integer",
  default: 0,
  min: 0,
  description:
    "seed of the generated trigger pattern (independent of the poisoning seed, so training and test triggers match)",
};
