// The folder layout is the architecture: every folder of src/ imports only from itself and the
// folders below it in LAYERS (ARCHITECTURE.md draws the same order). A new folder must be placed
// here, and an upward import fails this test with the file and the import named.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Bottom to top. */
const LAYERS = ["util", "engine", "io", "nn", "optim", "data", "models", "train", "attacks", "defense", "detectors", "forensics", "export", "report", "jobs", "workers", "api", "serve", "cli"];
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const src = join(root, "src");

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await tsFiles(p)));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** The top folder of src/ a path lies in ("" for files directly in src/, such as index.ts). */
function layerOf(file: string): string {
  const parts = relative(src, file).split(sep);
  return parts.length > 1 ? (parts[0] as string) : "";
}

test("every src/ folder is a known layer and imports only from layers below it", async () => {
  const violations: string[] = [];
  for (const file of await tsFiles(src)) {
    const from = layerOf(file);
    if (from === "") continue; // the package entry re-exports from every layer
    const rank = LAYERS.indexOf(from);
    assert.ok(rank >= 0, `src/${from} is not in LAYERS (test/architecture/layers.test.ts): place it in the order`);
    const text = await readFile(file, "utf8");
    for (const m of text.matchAll(/^\s*(?:import|export)[^"']*?from\s+["'](\.[^"']+)["']/gm)) {
      const target = layerOf(resolve(dirname(file), m[1] as string));
      if (target === from) continue;
      const r = LAYERS.indexOf(target);
      if (r < 0 || r > rank) violations.push(`${relative(root, file)} (${from}) imports ${m[1]} (${target || "src/"})`);
    }
  }
  assert.deepEqual(violations, [], `upward imports:\n${violations.join("\n")}`);
});

test("the layer check sees an upward import", () => {
  // Guards the regex and the ranking above against silently matching nothing.
  const line = 'import { writeReport } from "../report/report.js";';
  const m = /^\s*(?:import|export)[^"']*?from\s+["'](\.[^"']+)["']/m.exec(line);
  assert.equal(m?.[1], "../report/report.js");
  assert.ok(LAYERS.indexOf("report") > LAYERS.indexOf("defense"));
});
