// The command line helps a user who asks for its version or mistypes: --version / -V and info
// give package.json's version; an unknown command or option is named with the nearest known ones
// (exit 2), and nothing is suggested when nothing is close. Run as real processes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { closest, editDistance } from "../../src/cli/suggest.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const PACKAGE = fileURLToPath(new URL("../../../package.json", import.meta.url));
const VERSION = (JSON.parse(await readFile(PACKAGE, "utf8")) as { version: string }).version;

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, BADEXPERT_THREADS: "1" }, timeout: 120_000 },
      (e, out, err) => {
        resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err });
      },
    );
  });
}

test("--version and -V print package.json's version; info shows it, and info --json has it", async () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+/);
  for (const flag of ["--version", "-V"]) {
    const r = await run([flag]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `badexpert ${VERSION}\n`);
  }
  const text = await run(["info"]);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, new RegExp(`^version +${VERSION.replaceAll(".", "\\.")}$`, "m"));
  const json = await run(["info", "--json"]);
  assert.equal(json.code, 0, json.err);
  assert.equal((JSON.parse(json.out) as { version: unknown }).version, VERSION);
});

test("an unknown option names the nearest known ones, exit 2, without parseArgs' advice on '--'", async () => {
  const cases: [string[], string][] = [
    [["defend", "--fprr", "0.1"], "badexpert defend: unknown option --fprr (did you mean --fpr?)"],
    [["defend", "--chekpoint", "runs/m"], "badexpert defend: unknown option --chekpoint (did you mean --checkpoint?)"],
    [["defend", "--fpr=0.1", "--ot=runs/d"], "badexpert defend: unknown option --ot (did you mean --out?)"],
    [["defend", "-fpr", "0.1"], "badexpert defend: unknown option -fpr (did you mean --fpr?)"],
    [["scan", "--hepl"], "badexpert scan: unknown option --hepl (did you mean --help?)"],
    [["defend", "--zebra-stripes"], "badexpert defend: unknown option --zebra-stripes"],
    [["--verison"], "badexpert: unknown option --verison (did you mean --version?)"],
  ];
  for (const [args, first] of cases) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.err}`);
    assert.equal(r.err.split("\n")[0], first);
    assert.doesNotMatch(r.err, /positional argument|'--' separator/);
    assert.equal(r.out, "");
  }
});

test("an unknown command names the nearest commands, exit 2; nothing when none is close", async () => {
  const cases: [string, string][] = [
    ["defned", "badexpert: unknown command 'defned' (did you mean 'defend'?)"],
    ["sacn", "badexpert: unknown command 'sacn' (did you mean 'scan'?)"],
    ["evalute", "badexpert: unknown command 'evalute' (did you mean 'evaluate'?)"],
    ["xyzzy", "badexpert: unknown command 'xyzzy'"],
  ];
  for (const [name, first] of cases) {
    const r = await run([name]);
    assert.equal(r.code, 2, r.err);
    assert.equal(r.err.split("\n")[0], first);
    assert.match(r.err, /Run `badexpert --help` for the commands\./);
  }
});

test("edit distance counts a swap of neighbours as one edit; suggestions need a close match", () => {
  assert.equal(editDistance("defned", "defend"), 1);
  assert.equal(editDistance("fprr", "fpr"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.deepEqual(closest("defned", ["demo", "defend", "train"]), ["defend"]);
  assert.deepEqual(closest("scan", ["scan-baseline", "serve"]), []);
  assert.deepEqual(closest("x".repeat(1_000_000), ["defend"]), []);
  assert.deepEqual(closest("in", ["info", "import"]), []);
});
