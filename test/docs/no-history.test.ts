// The product speaks of what it is and why, never of how it came to be: no numbered work periods
// ("session 12", "sittings"), no "was X" / "previously" / "no longer" / "since session …" in the
// change sense, in src/ (code and comments), docs/, README.md, RESULTS.md or the CLI's help.
// History belongs in commit messages. The patterns are chosen to miss the legitimate uses of the
// same words ("before any work", "since start" in time arithmetic, "is used to decide"); the
// second test keeps them honest in both directions.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { COMMANDS } from "../../src/cli/commands/index.js";
import { helpText } from "../../src/cli/command.js";
import { main } from "../../src/cli/main.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

/** Each pattern names one way of telling history. */
const HISTORY: readonly { pattern: RegExp; what: string }[] = [
  { pattern: /\bsessions? \d+/i, what: "a numbered work period" },
  { pattern: /\bsittings?\b/i, what: "a work period" },
  { pattern: /\bissue(?: \d+|: [a-z])/i, what: "the issue a change came from" },
  { pattern: /\bno longer\b/i, what: "a change" },
  { pattern: /\bpreviously\b|\bformerly\b/i, what: "a change" },
  { pattern: /\b(?:we|it|this|that|they|there) used to\b|\bused to be\b/i, what: "a change" },
  {
    pattern:
      /\b(?:was|were) (?:changed|raised|lowered|replaced|moved|switched) (?:to|from|by|into)\b|\b(?:was|were|been) (?:renamed|reverted)\b/i,
    what: "a change",
  },
  {
    pattern:
      /\b(?:the|its|our) (?:previous|former|earlier|old|new) (?:default|defaults|rule|rate|rates|version|behaviou?r|format|code|engine|method)\b/i,
    what: "a change",
  },
  {
    pattern: /\bthe rule before\b|\bbefore (?:the|this|that) (?:change|fix|switch)\b|\bbefore this,/i,
    what: "a change",
  },
  {
    pattern: /\bsince (?:then|recently|the (?:change|fix|switch))\b|\b(?:until|up to|as of) (?:now|recently)\b/i,
    what: "a change",
  },
  { pattern: /\b(?:is|are) now\b|\bnow (?:defaults?|uses|scores|runs|takes|chooses|keeps|gives)\b/i, what: "a change" },
  { pattern: /\bpredates?\b/i, what: "a change" },
];

/** The history phrases a line holds, with what each tells. */
function historyIn(line: string): string[] {
  return HISTORY.filter((h) => h.pattern.test(line)).map(
    (h) => `${h.what}: "${(h.pattern.exec(line) as RegExpExecArray)[0]}"`,
  );
}

async function filesUnder(dir: string, ext: RegExp): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p, ext)));
    else if (ext.test(e.name)) out.push(p);
  }
  return out;
}

function hits(name: string, text: string): string[] {
  const out: string[] = [];
  for (const [i, line] of text.split("\n").entries())
    for (const h of historyIn(line)) out.push(`${name}:${i + 1}: ${h}: ${line.trim().slice(0, 140)}`);
  return out;
}

/** Every command's --help and the overview, as the CLI prints them. */
async function helpTexts(): Promise<[string, string][]> {
  const texts: [string, string][] = COMMANDS.map((c) => [`badexpert ${c.name} --help`, helpText(c)]);
  const out: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  try {
    await main(["--help"]);
  } finally {
    console.log = log;
  }
  texts.push(["badexpert --help", out.join("\n")]);
  return texts;
}

test("no history in src/, docs/, README.md, RESULTS.md or the CLI's help", async () => {
  const files = [
    ...(await filesUnder(join(ROOT, "src"), /\.ts$/)),
    ...(await filesUnder(join(ROOT, "docs"), /\.md$/)),
    join(ROOT, "README.md"),
    join(ROOT, "RESULTS.md"),
  ];
  const found: string[] = [];
  for (const f of files) found.push(...hits(relative(ROOT, f), await readFile(f, "utf8")));
  for (const [name, text] of await helpTexts()) found.push(...hits(name, text));
  assert.deepEqual(
    found,
    [],
    `history words (say what is and why; history goes in commit messages):\n${found.join("\n")}`,
  );
});

test("the patterns catch history and let the ordinary uses of the same words through", () => {
  const history = [
    "ResNet-20 defaults (BENCHMARKS.md, session 13)",
    "Third sitting: Blend, SIG, Trojan",
    "the first N by index (the rule before session 8)",
    "the explain feed no longer costs throughput",
    "M' was previously finetuned at 0.01",
    "the rate was raised to 0.1",
    "serve now scores on onnxruntime by default",
    "the service is now 4.1x faster",
    "the default was changed to 0.1 in the spring",
    "the results were renamed to -defense-finetuneLr=auto",
    "the old default left TaCT through",
    "(issue 13)",
    "## Engine (issue: engine)",
    "it used to take the first frame",
  ];
  for (const s of history) assert.notDeepEqual(historyIn(s), [], s);
  const ordinary = [
    "Every option is checked before any work starts",
    "const seconds = (Date.now() - start) / 1000;",
    "elapsed since start, in seconds",
    "the canary's rate is used to decide B's rate",
    "the lock file changed since the last npm ci",
    "a new connection after Connection: close",
    "the measured rate was 0.0005 on seed 0",
    "sessions of onnxruntime are created per worker",
    "Progress is shown now and then, at most every 5 s",
    "an issue tracker",
    "the file was changed or replaced after the bundle was written",
    "fails closed: until then it flags every input",
    "reload: DIR now holds a baseline bundle",
    "the tensor was disposed: it cannot be used any more",
    "How the detector was made (hyperparameters, seed)",
  ];
  for (const s of ordinary) assert.deepEqual(historyIn(s), [], s);
});
