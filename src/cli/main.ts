#!/usr/bin/env node
// The `badexpert` command line: dispatches to the command table, turns usage errors into
// a message and exit code 2, and never prints a stack trace for a user mistake.
import { parseArgs } from "node:util";
import { COMMANDS } from "./commands/index.js";
import { UsageError, helpText, type Command, type OptionSpec } from "./command.js";

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "badexpert — detect backdoor inputs to image classifiers with BaDExpert (Xie et al., ICLR 2024)",
    "",
    "Usage: badexpert <command> [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `badexpert <command> --help` for a command's options.",
  ].join("\n");
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(overview());
    return name === undefined ? 2 : 0;
  }
  const cmd: Command | undefined = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    console.error(`badexpert: unknown command '${name}'. Valid commands: ${COMMANDS.map((c) => c.name).join(", ")}`);
    return 2;
  }
  const options = Object.fromEntries(
    Object.entries<OptionSpec>({ ...cmd.options, help: { type: "boolean", short: "h", description: "" } }).map(([k, o]) => [
      k,
      { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.default !== undefined ? { default: o.default } : {}) },
    ]),
  );
  try {
    const parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    if (parsed.values.help) {
      console.log(helpText(cmd));
      return 0;
    }
    return await cmd.run(parsed.values as Record<string, string | boolean | undefined>, parsed.positionals);
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS"))) {
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
