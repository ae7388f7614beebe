// Reading fields of parsed JSON (manifests, checkpoint metadata) that may be hand-edited, corrupt
// or hostile. Each reader checks one field's type and range and, when it is wrong, throws an error
// naming the file, the field's path, what was expected and what was found, instead of letting a
// missing object surface later as "Cannot read properties of undefined".
import { printableValue } from "./printable.js";
import { BadExpertError, type ErrorCode } from "./errors.js";

/** A description of what was found, printed without quotes. */
class Described {
  constructor(readonly text: string) {}
}

export class FieldReader {
  /** `where` names the file, e.g. "bundle: runs/d/detector.json"; `code` is what a wrong field is (E_BUNDLE_INTEGRITY for a bundle's manifest, ...). */
  constructor(
    readonly where: string,
    readonly code: ErrorCode,
  ) {}

  /** `found` is printed as JSON, or as is when it is a `{ text }` description (e.g. "3 values"). */
  fail(path: string, expected: string, found: unknown): never {
    const what =
      found === undefined
        ? "it is missing"
        : found instanceof Described
          ? `found ${found.text}`
          : `found ${printableValue(found, 80)}`;
    throw new BadExpertError(this.code, `${this.where}: "${path}" must be ${expected}; ${what}`);
  }

  object(v: unknown, path: string): Record<string, unknown> {
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(path, "an object", v);
    return v as Record<string, unknown>;
  }

  /** A JSON number that is finite (JSON cannot hold NaN or Infinity; strings are not numbers). */
  number(
    v: unknown,
    path: string,
    o: { min?: number; max?: number; integer?: boolean; positive?: boolean } = {},
  ): number {
    const range = [
      o.integer ? "an integer" : "a finite number",
      o.positive ? "> 0" : "",
      o.min !== undefined ? `>= ${o.min}` : "",
      o.max !== undefined ? `<= ${o.max}` : "",
    ]
      .filter(Boolean)
      .join(" ");
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(path, range, v);
    if (
      (o.integer && !Number.isSafeInteger(v)) ||
      (o.positive && !(v > 0)) ||
      (o.min !== undefined && v < o.min) ||
      (o.max !== undefined && v > o.max)
    ) {
      this.fail(path, range, v);
    }
    return v;
  }

  string(v: unknown, path: string, o: { maxLength?: number } = {}): string {
    if (typeof v !== "string") this.fail(path, "a string", v);
    if (o.maxLength !== undefined && v.length > o.maxLength)
      this.fail(path, `a string of at most ${o.maxLength} characters`, new Described(`${v.length} characters`));
    return v;
  }

  boolean(v: unknown, path: string): boolean {
    if (typeof v !== "boolean") this.fail(path, "true or false", v);
    return v;
  }

  array(v: unknown, path: string, o: { length?: number; maxLength?: number } = {}): unknown[] {
    if (!Array.isArray(v)) this.fail(path, o.length !== undefined ? `an array of ${o.length} values` : "an array", v);
    if (o.length !== undefined && v.length !== o.length)
      this.fail(path, `an array of ${o.length} values`, new Described(`${v.length} values`));
    if (o.maxLength !== undefined && v.length > o.maxLength)
      this.fail(path, `an array of at most ${o.maxLength} values`, new Described(`${v.length} values`));
    return v;
  }

  numbers(
    v: unknown,
    path: string,
    o: { length?: number; min?: number; max?: number; positive?: boolean; integer?: boolean } = {},
  ): number[] {
    const { length, ...each } = o;
    return this.array(v, path, length !== undefined ? { length } : {}).map((x, i) =>
      this.number(x, `${path}[${i}]`, each),
    );
  }

  strings(v: unknown, path: string, o: { length?: number; maxLength?: number } = {}): string[] {
    return this.array(v, path, o).map((x, i) => this.string(x, `${path}[${i}]`));
  }

  oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
    if (typeof v !== "string" || !(values as readonly string[]).includes(v))
      this.fail(path, `one of ${values.join(", ")}`, v);
    return v as T;
  }

  /** `read(v)` when the field is present, undefined when it is absent. */
  optional<T>(v: unknown, read: (x: unknown) => T): T | undefined {
    return v === undefined ? undefined : read(v);
  }
}
