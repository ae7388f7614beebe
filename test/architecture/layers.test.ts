// The folder layout is the architecture: every folder of src/ imports only from itself and the
// folders below it in LAYERS (ARCHITECTURE.md draws the same order). A new folder must be placed
// here, and an upward import fails this test with the file and the import named. No file may
// reach itself through its imports (type-only imports count: a circle of types ties
// the files together as much as one of values); a circle fails with its files named.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Bottom to top. */
const LAYERS = [
  "util",
  "engine",
  "io",
  "nn",
  "optim",
  "data",
  "models",
  "train",
  "attacks",
  "defense",
  "detectors",
  "forensics",
  "export",
  "report",
  "jobs",
  "workers",
  "api",
  "serve",
  "cli",
];
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const src = join(root, "src");

/** A static import or re-export of a relative path; group 1 is the path. */
const IMPORT = /^\s*(?:import|export)[^"']*?from\s+["'](\.[^"']+)["']/gm;

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
    for (const m of text.matchAll(IMPORT)) {
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

/** The files each file imports (relative imports inside src/ only), by path relative to src/. */
async function importGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  for (const file of await tsFiles(src)) {
    const text = await readFile(file, "utf8");
    const targets = [...text.matchAll(IMPORT)].map((m) =>
      relative(src, resolve(dirname(file), m[1] as string))
        .replace(/\.js$/, ".ts")
        .split(sep)
        .join("/"),
    );
    graph.set(relative(src, file).split(sep).join("/"), targets);
  }
  return graph;
}

/**
 * The import circles of a graph: its strongly connected components of more than one file, and
 * files that import themselves (Tarjan's algorithm, iterative so a deep chain cannot overflow).
 */
function importCircles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work: { node: string; edge: number }[] = [{ node: root, edge: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const top = work[work.length - 1] as { node: string; edge: number };
      const edges = (graph.get(top.node) ?? []).filter((t) => graph.has(t));
      if (top.edge < edges.length) {
        const to = edges[top.edge++] as string;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next++);
          stack.push(to);
          onStack.add(to);
          work.push({ node: to, edge: 0 });
        } else if (onStack.has(to)) {
          low.set(top.node, Math.min(low.get(top.node) as number, index.get(to) as number));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node) as number, low.get(top.node) as number));
      if (low.get(top.node) === index.get(top.node)) {
        const component: string[] = [];
        let f: string;
        do {
          f = stack.pop() as string;
          onStack.delete(f);
          component.push(f);
        } while (f !== top.node);
        if (component.length > 1 || (graph.get(top.node) ?? []).includes(top.node)) circles.push(component.sort());
      }
    }
  }
  return circles;
}

test("no src/ file reaches itself through its imports", async () => {
  const circles = importCircles(await importGraph());
  assert.deepEqual(
    circles,
    [],
    `import circles (put the shared types or values in a module of their own that both import):\n${circles.map((c) => c.join(", ")).join("\n")}`,
  );
});

test("the circle check sees a circle, however long, and nothing else", () => {
  const chain = Array.from({ length: 5000 }, (_, i) => [`f${i}.ts`, [`f${i + 1}.ts`]] as [string, string[]]);
  assert.deepEqual(importCircles(new Map(chain)), [], "a long chain without a circle");
  const closed = new Map(chain);
  closed.set("f4999.ts", ["f0.ts"]);
  assert.equal(importCircles(closed)[0]?.length, 5000, "the chain closed into one circle");
  const g = new Map<string, string[]>([
    ["a.ts", ["b.ts", "c.ts"]],
    ["b.ts", ["a.ts"]],
    ["c.ts", ["d.ts"]],
    ["d.ts", []],
    ["e.ts", ["e.ts"]],
  ]);
  assert.deepEqual(importCircles(g), [["a.ts", "b.ts"], ["e.ts"]]);
});
