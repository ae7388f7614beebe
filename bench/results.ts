// `npm run results [-- --check] [--root DIR]`
// Writes RESULTS.md, its charts (docs/results/*.svg) and the README's results table from the
// result files under bench/results (bench/results-page.ts builds them). --check writes nothing
// and exits 1 when any of them differs from what the result files give (the test that keeps
// RESULTS.md current runs it).
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { CHART_DIR, readResultFiles, renderResultsPage, replaceResultsTable } from "./results-page.js";
import { helpAndExit, usageFailure } from "./harness.js";

const HELP = `npm run results -- [options]

Builds RESULTS.md, its charts (${CHART_DIR}/*.svg) and the README's results table from the
result files under bench/results (matrix/, foreign/, compare/), counting only results made with
badexpert defend's defaults.

  --check       write nothing; exit 1 when a generated file is not what the result files give
  --root DIR    the repository root (default: the current directory)
  --help        this text`;

const { values } = parseArgs({
  options: {
    check: { type: "boolean", default: false },
    root: { type: "string", default: "." },
    help: { type: "boolean", default: false },
  },
  allowPositionals: false,
  strict: true,
});
helpAndExit(values.help, HELP);
const fail: (msg: string) => never = usageFailure("results");

const root = resolve(values.root);
const readme = join(root, "README.md");
const files = await readResultFiles(join(root, "bench", "results"));
const page = renderResultsPage(files);
let readmeText: string;
try {
  readmeText = await readFile(readme, "utf8");
} catch (e) {
  fail(`--root: cannot read ${readme} (${(e as Error).message})`);
}
let newReadme: string;
try {
  newReadme = replaceResultsTable(readmeText, page.summary);
} catch (e) {
  fail(`${readme}: ${(e as Error).message}`);
}

const wanted = new Map<string, string>([
  [join(root, "RESULTS.md"), page.markdown],
  [readme, newReadme],
]);
for (const [name, text] of page.charts) wanted.set(join(root, CHART_DIR, name), text);
const chartDir = join(root, CHART_DIR);
// Charts of blocks that no longer have results are stale: the folder holds only what this script writes.
const stale = (await readdir(chartDir).catch(() => [] as string[]))
  .filter((n) => n.endsWith(".svg") && !page.charts.has(n))
  .map((n) => join(chartDir, n));

if (values.check) {
  const differ: string[] = [];
  for (const [path, text] of wanted) {
    const have = await readFile(path, "utf8").catch(() => null);
    if (have !== text) differ.push(path);
  }
  differ.push(...stale);
  if (differ.length > 0) {
    console.error(
      `results: not current (run \`npm run results\`): ${differ.map((p) => p.slice(root.length + 1)).join(", ")}`,
    );
    process.exit(1);
  }
  console.error(`results: RESULTS.md, ${page.charts.size} chart(s) and the README table are current`);
} else {
  await mkdir(chartDir, { recursive: true });
  for (const [path, text] of wanted) await writeFile(path, text);
  for (const path of stale) await rm(path);
  console.error(
    `results: wrote RESULTS.md, ${page.charts.size} chart(s) under ${CHART_DIR} and the README table ` +
      `(${files.counts.matrix.counted} matrix, ${files.counts.foreign.counted} foreign, ${files.counts.compare.counted} comparison results counted)`,
  );
}
