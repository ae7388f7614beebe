// Every command's --help shows examples, and they are real command lines: each one parses against
// its command's option table with the same checks the CLI makes before a command runs (option
// names, value forms and ranges), and the ones that need no trained model run, as written, as
// real processes in an empty directory.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { helpText } from "../../src/cli/command.js";
import { parseCommandLine } from "../../src/cli/args.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** An example's words after `badexpert`, without its trailing `# comment`. */
function words(example: string): string[] {
  const [line = ""] = example.split(" #");
  const w = line.trim().split(/\s+/);
  assert.equal(w[0], "badexpert", example);
  return w.slice(1);
}

interface Run {
  code: number;
  out: string;
  err: string;
}

function run(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd, env: { ...process.env, BADEXPERT_THREADS: "1" }, timeout: 120_000 },
      (e, out, err) => {
        resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err });
      },
    );
  });
}

test("every command has examples, shown under Examples: in its help, that parse and pass the CLI's checks", () => {
  assert.ok(COMMANDS.length >= 14);
  for (const cmd of COMMANDS) {
    assert.ok((cmd.examples?.length ?? 0) >= 1, `${cmd.name} has no examples`);
    const help = helpText(cmd);
    assert.match(help, /\nExamples:\n/, cmd.name);
    for (const example of cmd.examples ?? []) {
      assert.ok(help.includes(`\n  ${example}`), `${cmd.name}'s help lacks ${example}`);
      assert.doesNotMatch(
        example.split(" #")[0] ?? "",
        /[*?'"$`|&;<>\\]/,
        `${example}: no shell quoting, globs or redirections (it must run as written)`,
      );
      const [name, ...args] = words(example);
      assert.equal(name, cmd.name, `${example} is not an example of ${cmd.name}`);
      const line = parseCommandLine(cmd, args);
      assert.equal(line.help, false, example);
    }
  }
});

test("the parser the examples go through refuses what the CLI refuses", () => {
  const defend = COMMANDS.find((c) => c.name === "defend");
  assert.ok(defend);
  assert.throws(
    () => parseCommandLine(defend, ["--checkpoint", "runs/m", "--fprr", "0.1"]),
    /unknown option --fprr \(did you mean --fpr\?\)/,
  );
  assert.throws(
    () => parseCommandLine(defend, ["--checkpoint", "runs/m", "--fpr", "2"]),
    /--fpr: expected a decimal number in \(0, 1\), got "2"/,
  );
});

test("every command's --help runs as a process: exit 0, its examples on stdout", async () => {
  const cwd = await mkdtemp(join(tmpdir(), "bx-help-"));
  after(() => rm(cwd, { recursive: true, force: true }));
  const queue = [...COMMANDS];
  const worker = async (): Promise<void> => {
    for (let cmd = queue.shift(); cmd; cmd = queue.shift()) {
      const r = await run([cmd.name, "--help"], cwd);
      assert.equal(r.code, 0, `${cmd.name} --help: ${r.err}`);
      assert.match(r.out, new RegExp(`^badexpert ${cmd.name} — `));
      for (const example of cmd.examples ?? [])
        assert.ok(
          r.out.includes(`  ${example}\n`) || r.out.endsWith(`  ${example}\n`),
          `${cmd.name} --help lacks ${example}`,
        );
    }
  };
  await Promise.all([worker(), worker()]);
});

/** Examples that need no trained model or detector bundle (the rest need the demo's or a training's output). */
const RUNS_WITHOUT_A_MODEL = ["info", "keygen", "attack list", "attack preview"];

test("the examples that need no model run as written in an empty directory and exit 0", async () => {
  const cwd = await mkdtemp(join(tmpdir(), "bx-examples-"));
  after(() => rm(cwd, { recursive: true, force: true }));
  const ran: string[] = [];
  for (const cmd of COMMANDS) {
    for (const example of cmd.examples ?? []) {
      const args = words(example);
      if (!RUNS_WITHOUT_A_MODEL.some((p) => args.join(" ") === p || args.join(" ").startsWith(`${p} `))) continue;
      const r = await run(args, cwd);
      assert.equal(r.code, 0, `${example}: ${r.err}`);
      ran.push(example);
    }
  }
  assert.ok(ran.includes("badexpert info --json"), ran.join("\n"));
  assert.ok(ran.length >= 5, ran.join("\n"));
  // What they say they write is there.
  assert.ok((await stat(join(cwd, "keys", "badexpert-signing.pub"))).isFile());
  assert.ok((await stat(join(cwd, "badnet.png"))).size > 100);
});
