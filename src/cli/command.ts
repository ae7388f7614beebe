// What a CLI command is: a name, a summary, typed options for node's parseArgs, and a run
// function. The command table in commands/index.ts is data that main.ts and --help read.
import { BadExpertError } from "../util/errors.js";

/** What text a string option accepts; main.ts checks it before the command runs. */
export type ValueSpec =
  | { kind: "int"; min: number; max: number }
  | { kind: "float"; min: number; max: number; exclusiveMin?: boolean; exclusiveMax?: boolean }
  | { kind: "choice"; values: readonly string[] }
  | { kind: "int-list"; min: number; max: number }
  /** A number or one special word, e.g. --unlearn-lr auto. */
  | { kind: "float-or"; word: string; number: Extract<ValueSpec, { kind: "float" }> };

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  description: string;
  /** The one place an option's default is written; commands read it through args.ts. */
  default?: string | boolean;
  value?: ValueSpec;
  /** Accept `--x ""` (otherwise an empty value is a usage error). */
  allowEmpty?: boolean;
  /** Another name that means the same option (kept for old scripts); not shown in --help. */
  deprecatedAlias?: string;
}

export interface Command {
  name: string;
  summary: string;
  /** Longer text shown by `badexpert <command> --help`. */
  details?: string;
  /**
   * Command lines shown under "Examples:" in --help, each starting with `badexpert <name>`. They
   * run as written after the README's quick start (`npm run demo` writes out/demo/detector and
   * out/demo/report); test/cli/help-examples.test.ts parses every one and runs the cheap ones.
   * Words are separated by spaces; no shell quoting or globs.
   */
  examples?: readonly string[];
  options: Record<string, OptionSpec>;
  run(opts: Record<string, string | boolean | undefined>, positionals: string[]): Promise<number>;
}

/** A user error (E_USAGE): printed without a stack trace, exit code 2. */
export class UsageError extends BadExpertError {
  override name = "UsageError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_USAGE", message, options);
  }
}

export function helpText(cmd: Command): string {
  const lines = [`badexpert ${cmd.name} — ${cmd.summary}`, ""];
  if (cmd.details) lines.push(cmd.details, "");
  lines.push("Options:");
  const entries = Object.entries({
    ...cmd.options,
    help: { type: "boolean", short: "h", description: "show this help" } as OptionSpec,
  });
  for (const [name, o] of entries) {
    const flag = `${o.short ? `-${o.short}, ` : "    "}--${name}${o.type === "string" ? " <value>" : ""}`;
    const def = o.default !== undefined ? ` (default: ${String(o.default)})` : "";
    lines.push(`  ${flag.padEnd(28)} ${o.description}${def}`);
  }
  if (cmd.examples?.length) lines.push("", "Examples:", ...cmd.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}
