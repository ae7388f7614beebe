// Typed reads of parsed CLI values with messages naming the option, the expected and the actual.
import { UsageError } from "./command.js";

type Values = Record<string, string | boolean | undefined>;

export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

export function requireStr(v: Values, name: string, hint = ""): string {
  const x = str(v, name);
  if (x === undefined || x === "") throw new UsageError(`--${name} is required${hint ? ` (${hint})` : ""}`);
  return x;
}

export function int(v: Values, name: string, o: { min?: number } = {}): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const n = Number(x);
  const min = o.min ?? 0;
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer >= ${min}, got '${x}'`);
  return n;
}

export function num(v: Values, name: string, o: { positive?: boolean } = {}): number | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const n = Number(x);
  if (!Number.isFinite(n) || (o.positive && !(n > 0))) throw new UsageError(`--${name}: expected a ${o.positive ? "positive " : ""}number, got '${x}'`);
  return n;
}

export function choice<T extends string>(v: Values, name: string, allowed: readonly T[]): T | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(x)) throw new UsageError(`--${name}: expected one of ${allowed.join(", ")}, got '${x}'`);
  return x as T;
}

export function intList(v: Values, name: string): number[] | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const parts = x.split(",").map((p) => Number(p.trim()));
  if (parts.some((p) => !Number.isInteger(p) || p < 0)) throw new UsageError(`--${name}: expected comma-separated non-negative integers, got '${x}'`);
  return parts;
}

/** Prints the result object as the last stdout line when --json is set. */
export function emitJson(v: Values, result: unknown): void {
  if (v.json) console.log(JSON.stringify(result));
}
