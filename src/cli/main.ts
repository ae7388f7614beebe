#!/usr/bin/env node
// The `badexpert` command line: dispatches to the command table, checks every option against the
// table before a command does any work, turns usage errors (E_USAGE) into a message and exit code
// 2, and never prints a stack trace for a user mistake. Every other failure's exit status comes
// from its error code (src/util/errors.ts): 1.
import { helpText, type Command } from "./command.js";
import { parseCommandLine } from "./args.js";
import { didYouMean } from "./suggest.js";
import { packageVersion } from "../util/package-version.js";
import { errorCode, exitStatus } from "../util/errors.js";
import { escapeControls } from "../util/printable.js";

const TOP_LEVEL_OPTIONS = ["help", "version"];

function overview(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    "badexpert — detect backdoor inputs to image classifiers with BaDExpert (Xie et al., ICLR 2024)",
    "",
    "Usage: badexpert <command> [options]",
    "       badexpert --version",
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

export async function main(argv: string[]): Promise<number> {
  // Before the command table: the version is known even where the native addon cannot load.
  if (argv[0] === "--version" || argv[0] === "-V") {
    console.log(`badexpert ${packageVersion()}`);
    return 0;
  }
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
  if (name.startsWith("-")) {
    const word = name.replace(/^--?/, "").split("=")[0] ?? "";
    console.error(
      `badexpert: unknown option ${escapeControls(name.split("=")[0] ?? name, 100)}${didYouMean(word, TOP_LEVEL_OPTIONS, (n) => `--${n}`)}\nUsage: badexpert <command> [options]; run \`badexpert --help\` for the commands.`,
    );
    return 2;
  }
  const cmd: Command | undefined = commands.find((c) => c.name === name);
  if (!cmd) {
    const names = commands.map((c) => c.name);
    console.error(
      `badexpert: unknown command '${escapeControls(name, 100)}'${didYouMean(name, names, (n) => `'${n}'`)}\nRun \`badexpert --help\` for the commands.`,
    );
    return 2;
  }
  try {
    const line = parseCommandLine(cmd, rest);
    if (line.help) {
      console.log(helpText(cmd));
      return 0;
    }
    return await cmd.run(line.values, line.positionals);
  } catch (e) {
    const parseError = e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS");
    if (parseError || errorCode(e) === "E_USAGE") {
      console.error(`badexpert ${cmd.name}: ${(e as Error).message}\nRun \`badexpert ${cmd.name} --help\` for usage.`);
      return exitStatus("E_USAGE");
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
      process.exitCode = exitStatus(errorCode(e));
    },
  );
}
