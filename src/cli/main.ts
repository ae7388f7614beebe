#!/usr/bin/env node
// The `badexpert` command line: dispatches to the command table, checks every option against the
// table before a command does any work, turns usage errors into a message and exit code 2, and
// never prints a stack trace for a user mistake.
import { parseArgs } from "node:util";
import { UsageError, helpText, type Command, type OptionSpec } from "./command.js";
import { validateOptions, type Values } from "./args.js";
import { OptionError } from "../jobs/errors.js";

function overview(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "badexpert — detect backdoor inputs to image classifiers with BaDExpert (Xie et al., ICLR 2024)",
    "",
    "Usage: badexpert <command> [options]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `badexpert <command> --help` for a command's options.",
    "Exit status: 0 success, 1 failure (for scan: some inputs could not be scored), 2 usage error.",
  ].join("\n");
}

/**
 * The command table, loaded on demand: loading it loads the native addon, which reads
 * BADEXPERT_THREADS. A bad environment is then one line on stderr, not a stack trace at import.
 */
async function loadCommands(): Promise<readonly Command[]> {
  const m = await import("./commands/index.js");
  return m.COMMANDS;
}

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
    if (out[name] !== undefined && out[name] !== o.default) throw new UsageError(`give --${name} or its old name --${alias}, not both`);
    console.error(`badexpert ${cmd.name}: --${alias} is deprecated; use --${name}`);
    out[name] = out[alias];
    delete out[alias];
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let commands: readonly Command[];
  try {
    commands = await loadCommands();
  } catch (e) {
    console.error(`badexpert: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(overview(commands));
    return name === undefined ? 2 : 0;
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`badexpert: unknown command '${name}'. Valid commands: ${commands.map((c) => c.name).join(", ")}`);
    return 2;
  }
  const table = withAliases(cmd.options);
  const options = Object.fromEntries(
    Object.entries<OptionSpec>({ ...table, help: { type: "boolean", short: "h", description: "" } }).map(([k, o]) => [
      k,
      { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.default !== undefined ? { default: o.default } : {}) },
    ]),
  );
  try {
    const parsed = parseArgs({ args: joinNegativeValues(rest, table), options, allowPositionals: true, strict: true });
    if (parsed.values.help) {
      console.log(helpText(cmd));
      return 0;
    }
    const values = resolveAliases(cmd, parsed.values);
    validateOptions(cmd.options, values);
    return await cmd.run(values, parsed.positionals);
  } catch (e) {
    const parseError = e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS");
    if (e instanceof UsageError || e instanceof OptionError || parseError) {
      console.error(`badexpert ${cmd.name}: ${e.message}\nRun \`badexpert ${cmd.name} --help\` for usage.`);
      return 2;
    }
    throw e;
  }
}

const isEntry = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry || process.argv[1]?.endsWith("/badexpert")) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      console.error(e instanceof Error ? `badexpert: ${e.message}` : String(e));
      process.exitCode = 1;
    },
  );
}
