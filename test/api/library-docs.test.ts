// docs/library.md's TypeScript examples are what a user copies: each one is type-checked against
// the package's declared entry (dist/src/index.d.ts, as `import ... from "badexpert"` resolves it)
// and run, in order, in one directory holding a small checkpoint and PNG inputs
// (test/fixtures/bundles), and what it prints is checked.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import ts from "typescript";

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const ENTRY = join(root, "dist/src/index.js");

/** The ```ts blocks of the page, in order. */
function examples(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1] as string);
}

let dir: string;
let blocks: string[];

before(async () => {
  blocks = examples(await readFile(join(root, "docs/library.md"), "utf8"));
  dir = await mkdtemp(join(tmpdir(), "bx-library-docs-"));
  await mkdir(join(dir, "runs"));
  await cp(join(root, "test/fixtures/bundles/checkpoint"), join(dir, "runs/checkpoint"), { recursive: true });
  await cp(join(root, "test/fixtures/bundles/images"), join(dir, "images"), { recursive: true });
  await writeFile(join(dir, "package.json"), JSON.stringify({ name: "docs-examples", private: true, type: "module" }));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test("every example type-checks against the package's entry", async () => {
  assert.equal(blocks.length, 5, "docs/library.md's examples");
  const files = await Promise.all(
    blocks.map(async (b, i) => {
      const f = join(dir, `example-${i + 1}.ts`);
      await writeFile(f, b);
      return f;
    }),
  );
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ["node"],
    typeRoots: [join(root, "node_modules/@types")],
    paths: { badexpert: [join(root, "dist/src/index.d.ts")] },
  });
  const problems = ts
    .getPreEmitDiagnostics(program)
    .map(
      (d) =>
        `${d.file ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ` : ""}${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
    );
  assert.deepEqual(problems, []);
});

/** Runs example `i` (1-based) with node in the examples' directory; its stdout lines. */
async function runExample(i: number): Promise<string[]> {
  const js = ts.transpileModule(blocks[i - 1] as string, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  const file = join(dir, `example-${i}.mjs`);
  await writeFile(file, js.replaceAll('from "badexpert"', `from ${JSON.stringify(pathToFileURL(ENTRY).href)}`));
  const { stdout } = await run(process.execPath, [file], {
    cwd: dir,
    env: { ...process.env, BADEXPERT_THREADS: "1" },
    maxBuffer: 16 << 20,
  });
  return stdout.trim().split("\n");
}

test("the examples run in order and print what the page says", { timeout: 600_000 }, async () => {
  const one = await runExample(1);
  assert.match(
    one[0] as string,
    /^badexpert -?\d[\d.e-]* \{ reserved: 256, calibration: 200, evaluation: \d+ \} given$/,
  );
  assert.equal(one.length, 3);
  for (const l of one.slice(1)) assert.match(l, /^\S.* -?\d[\d.e-]* -?\d[\d.e-]* (true|false) \d[\d.e-]* \d[\d.e-]*$/);

  const two = await runExample(2);
  assert.equal(two[0], "badexpert, strip, scale-up, teco, ibd-psc, cd, frequency, sentinet");
  assert.equal(two[1], "strip compact-cnn null unsigned");
  assert.match(two[2] as string, /^\S.* -?\d[\d.e-]* (true|false)$/);

  const three = await runExample(3);
  assert.match(three[0] as string, /^images\/input-3\.png (true|false) -?\d/);
  assert.match(three[1] as string, /^images\/missing\.png not scored: E_IO .*missing\.png/);
  assert.match(three[2] as string, /^images\/input-4\.png (true|false) -?\d/);
  assert.match(
    three[3] as string,
    /^refused: (E_INPUT_DECODE|E_INPUT_UNSUPPORTED) (not_an_image|unsupported_format|corrupt)$/,
  );

  const four = await runExample(4);
  assert.deepEqual(
    four.map((l) => l.split(" ")[0]),
    ["badexpert", "strip"],
  );
  for (const l of four) assert.ok(Number(l.split(" ")[1]) >= 0 && Number(l.split(" ")[1]) <= 1, l);

  const five = await runExample(5);
  assert.equal(five[0], "verified");
  assert.match(
    five[1] as string,
    /^refused: .*runs\/strip is a strip detector bundle, which is not signed, and a signature is required/,
  );
});
