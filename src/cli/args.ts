// Typed reads of parsed CLI values. One strict parser for numbers: decimal text only (no "0x10",
// no "1e15" for an integer, no ""), each option with its own range declared in the option table
// (OptionSpec.value). main.ts checks every option against its table entry before a command runs,
// so a bad value costs nothing; the readers here parse again with the same rules (cheap) and
// read defaults from the table only, so a default is never written twice.
import { parseArgs } from "node:util";
import { UsageError, type Command, type OptionSpec, type ValueSpec } from "./command.js";
import { didYouMean } from "./suggest.js";
import { escapeControls } from "../util/printable.js";

export type Values = Record<string, string | boolean | undefined>;

const DECIMAL_INT = /^[+-]?\d+$/;
const DECIMAL_FLOAT = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function describe(spec: ValueSpec): string {
  switch (spec.kind) {
    case "int":
      return `a decimal integer in ${spec.min}..${spec.max}`;
    case "float": {
      const lo = spec.exclusiveMin ? `(${spec.min}` : `[${spec.min}`;
      const hi = spec.exclusiveMax ? `${spec.max})` : `${spec.max}]`;
      return `a decimal number in ${lo}, ${hi}`;
    }
    case "choice":
      return `one of ${spec.values.join(", ")}`;
    case "int-list":
      return `comma-separated decimal integers in ${spec.min}..${spec.max}`;
    case "float-or":
      return `${spec.word} or ${describe(spec.number)}`;
  }
}

function bad(name: string, spec: ValueSpec, text: string): UsageError {
  return new UsageError(`--${name}: expected ${describe(spec)}, got ${JSON.stringify(text)}`);
}

function parseIntIn(
  name: string,
  spec: Extract<ValueSpec, { kind: "int" | "int-list" }>,
  text: string,
  whole: string,
): number {
  const t = text.trim();
  if (!DECIMAL_INT.test(t)) throw bad(name, spec, whole);
  const n = Number(t);
  if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max) throw bad(name, spec, whole);
  return n;
}

function parseFloatIn(name: string, spec: Extract<ValueSpec, { kind: "float" }>, text: string, whole: string): number {
  if (!DECIMAL_FLOAT.test(text)) throw bad(name, spec, whole);
  const n = Number(text);
  const below = spec.exclusiveMin ? n <= spec.min : n < spec.min;
  const above = spec.exclusiveMax ? n >= spec.max : n > spec.max;
  if (!Number.isFinite(n) || below || above) throw bad(name, spec, whole);
  return n;
}

/** A parsed value of one option: number, list, word or choice. Throws a UsageError naming the option. */
export function parseValue(name: string, spec: ValueSpec, text: string): number | number[] | string {
  switch (spec.kind) {
    case "int":
      return parseIntIn(name, spec, text, text);
    case "float":
      return parseFloatIn(name, spec, text, text);
    case "choice":
      if (!spec.values.includes(text)) throw bad(name, spec, text);
      return text;
    case "int-list":
      if (text.trim() === "") throw bad(name, spec, text);
      return text.split(",").map((p) => parseIntIn(name, spec, p, text));
    case "float-or":
      if (text === spec.word) return text;
      try {
        return parseFloatIn(name, spec.number, text, text);
      } catch {
        throw bad(name, spec, text);
      }
  }
}

/** Checks every given option against its table entry (called by main.ts before a command runs). */
export function validateOptions(options: Record<string, OptionSpec>, v: Values): void {
  for (const [name, spec] of Object.entries(options)) {
    const x = v[name];
    if (typeof x === "string" && spec.value) parseValue(name, spec.value, x);
    if (typeof x === "string" && spec.type === "string" && x === "" && !spec.allowEmpty) {
      throw new UsageError(`--${name}: expected a value, got an empty string`);
    }
  }
}

const HELP: OptionSpec = { type: "boolean", short: "h", description: "show this help" };
const NEGATIVE_NUMBER = /^-(\d|\.\d)/;

/**
 * `--fpr -0.1` as `--fpr=-0.1`: parseArgs refuses a value that starts with "-" as ambiguous;
 * joined, the value reaches the option's own range check and its message.
 */
function joinNegativeValues(args: readonly string[], options: Record<string, OptionSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const next = args[i + 1];
    const long = a.startsWith("--") && !a.includes("=") ? options[a.slice(2)] : undefined;
    if (long?.type === "string" && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${a}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** The option table with each deprecated alias as an option of its own (moved onto its name after parsing). */
function withAliases(options: Record<string, OptionSpec>): Record<string, OptionSpec> {
  const out: Record<string, OptionSpec> = { ...options };
  for (const o of Object.values(options)) {
    if (o.deprecatedAlias) out[o.deprecatedAlias] = { type: o.type, description: "" };
  }
  return out;
}

function resolveAliases(cmd: Command, v: Values): Values {
  const out: Values = { ...v };
  for (const [name, o] of Object.entries(cmd.options)) {
    const alias = o.deprecatedAlias;
    if (!alias || out[alias] === undefined) continue;
    if (out[name] !== undefined && out[name] !== o.default)
      throw new UsageError(`give --${name} or its old name --${alias}, not both`);
    console.error(`badexpert ${cmd.name}: --${alias} is deprecated; use --${name}`);
    out[name] = out[alias];
    delete out[alias];
  }
  return out;
}

type ParseOptions = Record<string, { type: "string" | "boolean"; short?: string; default?: string | boolean }>;

/**
 * Refuses an option the command does not have, naming the closest ones it has. parseArgs' own
 * message for this speaks of positional arguments and "--", which misleads a user who mistyped.
 */
function refuseUnknownOptions(cmd: Command, args: readonly string[], options: ParseOptions): void {
  const { tokens } = parseArgs({ args: [...args], options, allowPositionals: true, strict: false, tokens: true });
  const longNames = [...Object.keys(cmd.options), "help"];
  for (const t of tokens) {
    if (t.kind !== "option" || Object.hasOwn(options, t.name)) continue;
    const raw = args[t.index] ?? t.rawName;
    // "-fpr" is read as the short options -f -p -r: the user most likely meant --fpr.
    const word = raw.startsWith("--") ? t.name : /^-[^-=]{2,}/.test(raw) ? (raw.slice(1).split("=")[0] ?? "") : "";
    const shown = raw.startsWith("--") ? `--${t.name}` : word ? `-${word}` : t.rawName;
    throw new UsageError(
      `unknown option ${escapeControls(shown, 100)}${word ? didYouMean(word, longNames, (n) => `--${n}`) : ""}`,
    );
  }
}

/** What a command line means for one command: its --help, or its checked option values and positionals. */
export type CommandLine = { help: true } | { help: false; values: Values; positionals: string[] };

/**
 * Parses and checks a command's arguments against its option table, before the command does any
 * work: unknown options (with the nearest known ones), values of the wrong form or out of range,
 * deprecated names. Throws a UsageError (or parseArgs' TypeError) for a usage mistake.
 */
export function parseCommandLine(cmd: Command, args: readonly string[]): CommandLine {
  const table = withAliases(cmd.options);
  const options: ParseOptions = Object.fromEntries(
    Object.entries<OptionSpec>({ ...table, help: HELP }).map(([k, o]) => [
      k,
      {
        type: o.type,
        ...(o.short ? { short: o.short } : {}),
        ...(o.default !== undefined ? { default: o.default } : {}),
      },
    ]),
  );
  const joined = joinNegativeValues(args, table);
  refuseUnknownOptions(cmd, joined, options);
  const parsed = parseArgs({ args: joined, options, allowPositionals: true, strict: true });
  if (parsed.values.help) return { help: true };
  const values = resolveAliases(cmd, parsed.values);
  validateOptions(cmd.options, values);
  return { help: false, values, positionals: parsed.positionals };
}

/** Common ranges. */
export const SEED: ValueSpec = { kind: "int", min: 0, max: 2 ** 32 - 1 };
export const COUNT: ValueSpec = { kind: "int", min: 1, max: 1e9 };
export const EPOCHS: ValueSpec = { kind: "int", min: 1, max: 100_000 };
/** Learning rates: finite, positive and small enough that no optimizer arithmetic overflows. */
export const LEARNING_RATE: ValueSpec = { kind: "float", min: 0, max: 10, exclusiveMin: true };
/** A false-positive rate strictly between 0 and 1. */
export const FPR: ValueSpec = { kind: "float", min: 0, max: 1, exclusiveMin: true, exclusiveMax: true };

function specOf(options: Record<string, OptionSpec> | undefined, name: string): OptionSpec | undefined {
  return options?.[name];
}

export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

export function requireStr(v: Values, name: string, hint = ""): string {
  const x = str(v, name);
  if (x === undefined || x === "") throw new UsageError(`--${name} is required${hint ? ` (${hint})` : ""}`);
  return x;
}

function typed(v: Values, name: string, options: Record<string, OptionSpec>): number | number[] | string | undefined {
  const x = str(v, name);
  const spec = specOf(options, name);
  if (!spec?.value) throw new Error(`internal: --${name} has no value spec in the option table`);
  return x === undefined ? undefined : parseValue(name, spec.value, x);
}

/** An integer or float option; its kind and range come from the option table. */
export function num(v: Values, name: string, options: Record<string, OptionSpec>): number | undefined {
  const r = typed(v, name, options);
  if (r !== undefined && typeof r !== "number") throw new Error(`internal: --${name} is not a number option`);
  return r;
}

export const int = num;

/** A number option that has a default in the option table: the table is the one source of it. */
export function numWithDefault(v: Values, name: string, options: Record<string, OptionSpec>): number {
  const r = num(v, name, options);
  if (r !== undefined) return r;
  const d = specOf(options, name)?.default;
  if (typeof d !== "string") throw new Error(`internal: --${name} has no default in the option table`);
  const spec = specOf(options, name)?.value;
  const parsed = spec ? parseValue(name, spec, d) : undefined;
  if (typeof parsed !== "number") throw new Error(`internal: --${name}'s default is not a number`);
  return parsed;
}

/** A string option that has a default in the option table. */
export function strWithDefault(v: Values, name: string, options: Record<string, OptionSpec>): string {
  const x = str(v, name) ?? specOf(options, name)?.default;
  if (typeof x !== "string") throw new Error(`internal: --${name} has no default in the option table`);
  return x;
}

export function choice<T extends string>(v: Values, name: string, allowed: readonly T[]): T | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const hit = allowed.find((a) => a === x);
  if (hit === undefined)
    throw new UsageError(`--${name}: expected one of ${allowed.join(", ")}, got ${JSON.stringify(x)}`);
  return hit;
}

export function intList(v: Values, name: string, options: Record<string, OptionSpec>): number[] | undefined {
  const r = typed(v, name, options);
  if (r !== undefined && !(Array.isArray(r) && r.every((x) => typeof x === "number")))
    throw new Error(`internal: --${name} is not an integer-list option`);
  return r;
}

/** A number, or the option's special word (e.g. --unlearn-lr auto). */
export function numOrWord<W extends string>(
  v: Values,
  name: string,
  word: W,
  options: Record<string, OptionSpec>,
): number | W | undefined {
  const r = typed(v, name, options);
  if (r === undefined || typeof r === "number") return r;
  if (r === word) return word;
  throw new Error(`internal: --${name} gave ${JSON.stringify(r)}`);
}

/** Prints the result object as the last stdout line when --json is set. */
export function emitJson(v: Values, result: unknown): void {
  if (v.json) console.log(JSON.stringify(result));
}

/** A choice option that has a default in the option table. */
export function choiceWithDefault<T extends string>(
  v: Values,
  name: string,
  allowed: readonly T[],
  options: Record<string, OptionSpec>,
): T {
  const x = choice(v, name, allowed) ?? choice({ [name]: specOf(options, name)?.default }, name, allowed);
  if (x === undefined) throw new Error(`internal: --${name} has no default in the option table`);
  return x;
}
