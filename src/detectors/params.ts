// Detector parameters as data, like the attacks': numbers, integers, booleans and number lists
// are resolved by attacks/params.ts (one validator for the project); detectors add "names", a
// comma-separated subset of a fixed list (TeCo's corruption types).
import type { ParamValue } from "../attacks/attack.js";
import { BadExpertError } from "../util/errors.js";
import { AttackParamError, parseParamOverrides, resolveParams, type ParamSpec } from "../attacks/params.js";

export interface NamesSpec {
  type: "names";
  default: string;
  choices: readonly string[];
  description: string;
}

export type DetectorParamSpec = ParamSpec | NamesSpec;
export type DetectorParamTable = Readonly<Record<string, DetectorParamSpec>>;

/** A detector parameter that is unknown, malformed or out of range (E_USAGE). */
export class DetectorParamError extends BadExpertError {
  override name = "DetectorParamError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_USAGE", message, options);
  }
}

function isNames(s: DetectorParamSpec): s is NamesSpec {
  return s.type === "names";
}

function names(detector: string, key: string, s: NamesSpec, v: ParamValue): string {
  const list = String(v)
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const bad = list.filter((p) => !s.choices.includes(p));
  if (typeof v !== "string" || list.length === 0 || bad.length > 0) {
    throw new DetectorParamError(
      `detector '${detector}': parameter '${key}' must be a comma-separated list of ${s.choices.join(", ")}, got ${JSON.stringify(v)}`,
    );
  }
  return list.join(",");
}

/** The table's defaults with `overrides` applied; unknown names and bad values throw, naming both. */
export function resolveDetectorParams(
  detector: string,
  table: DetectorParamTable,
  overrides: Readonly<Record<string, ParamValue>>,
): Record<string, ParamValue> {
  const plain: Record<string, ParamSpec> = {};
  for (const [k, s] of Object.entries(table)) if (!isNames(s)) plain[k] = s;
  const plainOverrides: Record<string, ParamValue> = {};
  const out: Record<string, ParamValue> = {};
  for (const [k, s] of Object.entries(table)) if (isNames(s)) out[k] = names(detector, k, s, s.default);
  for (const [k, v] of Object.entries(overrides)) {
    const s = table[k];
    if (!s)
      throw new DetectorParamError(
        `detector '${detector}': unknown parameter '${k}'; valid: ${Object.keys(table).join(", ") || "(none)"}`,
      );
    if (isNames(s)) out[k] = names(detector, k, s, v);
    else plainOverrides[k] = v;
  }
  try {
    return { ...resolveParams(detector, plain, plainOverrides), ...out };
  } catch (e) {
    if (e instanceof AttackParamError) throw new DetectorParamError(e.message.replace(/^attack '/, "detector '"));
    throw e;
  }
}

export function stringParam(p: Readonly<Record<string, ParamValue>>, name: string): string {
  const v = p[name];
  if (typeof v !== "string")
    throw new TypeError(`detector parameter '${name}' is not a resolved string (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * Parses "strip:n=50;teco:corruptions=contrast,brightness" into per-detector overrides (within a
 * detector, attacks/params.ts's "k=v,k=v" form, where a comma without "=" continues a list).
 */
export function parseDetectorParams(text: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const part of text
    .split(";")
    .map((p) => p.trim())
    .filter(Boolean)) {
    const colon = part.indexOf(":");
    if (colon <= 0)
      throw new DetectorParamError(
        `detector parameters: expected detector:key=value[,key=value] separated by ';', got '${part}'`,
      );
    const name = part.slice(0, colon).trim();
    try {
      out[name] = { ...(out[name] ?? {}), ...parseParamOverrides(part.slice(colon + 1)) };
    } catch (e) {
      if (e instanceof AttackParamError)
        throw new DetectorParamError(
          `detector parameters of '${name}': ${e.message.replace(/^attack parameters: /, "")}`,
        );
      throw e;
    }
  }
  return out;
}
