// The README is short and every command in it works: the `npx badexpert` lines parse against their
// command's option table (the checks the CLI makes before any work), the ones that need no model
// run as written and exit 0, `npm run` names scripts that exist; and no relative link in README,
// RESULTS.md, ARCHITECTURE.md or docs/ points at a file or heading that is not there.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { parseCommandLine } from "../../src/cli/args.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const MAIN = join(ROOT, "dist", "src", "cli", "main.js");

/** The lines of the README's ```sh blocks, comments and continuations folded. */
function shellLines(markdown: string): string[] {
  const out: string[] = [];
  for (const m of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const body = (m[1] as string).replace(/\\\n\s*/g, " ");
    for (const raw of body.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      if (line && !line.startsWith("#")) out.push(line);
    }
  }
  return out;
}

/** A README command's words after `npx badexpert` (no shell quoting is used in the README's short commands). */
function badexpertWords(line: string): string[] | null {
  const m = /^(?:[A-Z_]+=\S+ )*npx badexpert(?: (.*))?$/.exec(line);
  return m ? (m[1] ?? "").split(/\s+/).filter(Boolean) : null;
}

/** Runs without a trained model or bundle: the overview, the version, info, a command's --help, the attack list. */
function needsNoModel(words: readonly string[]): boolean {
  const w = words.join(" ");
  return (
    w === "--help" ||
    w === "--version" ||
    w === "-V" ||
    w === "info" ||
    w === "attack list" ||
    (words.length === 2 && words[1] === "--help")
  );
}

function run(args: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd, env: { ...process.env, BADEXPERT_THREADS: "1" }, timeout: 120_000 },
      (e, out, err) => {
        done({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out, err });
      },
    );
  });
}

test("the README is at most about 300 lines and names the two commands as package.json defines them", async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const lines = readme.split("\n").length;
  assert.ok(lines <= 310, `README.md has ${lines} lines`);
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const sh = shellLines(readme);
  assert.ok(sh.includes("npm run demo") && sh.includes("npm test"), "the two commands");
  assert.ok(pkg.scripts.demo && pkg.scripts.test);
});

test("every `npm run X` in the README and docs/ is a script of package.json", async () => {
  const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
  const files = [
    join(ROOT, "README.md"),
    join(ROOT, "RESULTS.md"),
    ...(await readdir(join(ROOT, "docs"))).filter((n) => n.endsWith(".md")).map((n) => join(ROOT, "docs", n)),
  ];
  const missing: string[] = [];
  for (const f of files) {
    for (const m of (await readFile(f, "utf8")).matchAll(/npm run ([a-z][a-z0-9:-]*)/g))
      if (!pkg.scripts[m[1] as string]) missing.push(`${f.slice(ROOT.length + 1)}: npm run ${m[1]}`);
  }
  assert.deepEqual(missing, []);
});

test("every `npx badexpert` line of the README parses; those that need no model run as written and exit 0", async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const commands = shellLines(readme)
    .map(badexpertWords)
    .filter((w): w is string[] => w !== null);
  assert.ok(commands.length >= 8, `${commands.length} badexpert commands in the README`);
  for (const words of commands) {
    const [name, ...args] = words;
    if (name === undefined || name.startsWith("-")) continue;
    const cmd = COMMANDS.find((c) => c.name === name);
    assert.ok(cmd, `README: npx badexpert ${words.join(" ")}: no command ${name}`);
    assert.doesNotThrow(() => parseCommandLine(cmd, args), `README: npx badexpert ${words.join(" ")}`);
  }
  const cwd = await mkdtemp(join(tmpdir(), "bx-readme-"));
  after(() => rm(cwd, { recursive: true, force: true }));
  const ran: string[] = [];
  for (const words of commands.filter(needsNoModel)) {
    const r = await run(words, cwd);
    assert.equal(r.code, 0, `npx badexpert ${words.join(" ")}: ${r.err}`);
    assert.ok(r.out.length > 0, `npx badexpert ${words.join(" ")} printed nothing`);
    ran.push(words.join(" "));
  }
  for (const must of ["--help", "--version", "info"]) assert.ok(ran.includes(must), `ran: ${ran.join(", ")}`);
  assert.ok(
    ran.some((w) => w.endsWith(" --help") && w !== "--help"),
    "a command's --help",
  );
});

/** GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*]/g, "")
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, "docs"))).filter((n) => n.endsWith(".md")).map((n) => join(ROOT, "docs", n));
  return [join(ROOT, "README.md"), join(ROOT, "RESULTS.md"), join(ROOT, "ARCHITECTURE.md"), ...docs];
}

test("every relative link in README, RESULTS.md, ARCHITECTURE.md and docs/ resolves, anchors included", async () => {
  const broken: string[] = [];
  for (const file of await markdownFiles()) {
    const text = await readFile(file, "utf8");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const href = m[1] as string;
      if (/^[a-z]+:/i.test(href)) continue;
      const [path, anchor] = href.split("#") as [string, string | undefined];
      const target = path === "" ? file : resolve(dirname(file), path);
      const s = await stat(target).catch(() => null);
      if (!s) {
        broken.push(`${file.slice(ROOT.length + 1)}: ${href} (no such file)`);
        continue;
      }
      if (anchor && target.endsWith(".md")) {
        const headings = [...(await readFile(target, "utf8")).matchAll(/^#{1,6} (.+)$/gm)].map((h) =>
          anchorOf(h[1] as string),
        );
        if (!headings.includes(anchor)) broken.push(`${file.slice(ROOT.length + 1)}: ${href} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});

test("the anchor rule matches GitHub's on the headings linked to", () => {
  assert.equal(anchorOf("SIGTERM under load: the drain"), "sigterm-under-load-the-drain");
  assert.equal(
    anchorOf("Decoded pixels: memory of requests with large images"),
    "decoded-pixels-memory-of-requests-with-large-images",
  );
  assert.equal(anchorOf("Memory of `scan`"), "memory-of-scan");
});
