// The package as users get it: the example project (a TypeScript project depending on
// `badexpert`) builds and scores like the library, and `npm pack` → `npm install` of the tarball
// into a fresh project gives a working `import { Detector } from "badexpert"` (addon built on
// install). These run real npm and real compilers, so they take a few minutes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Detector, type Detection } from "../../src/index.js";
import { writeSmallBundle } from "../helpers/small-bundle.js";

const run = promisify(execFile);
// dist/test/package/ → the repository root.
const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const npmQuiet = ["--no-audit", "--no-fund", "--loglevel=error"];

/** Runs a command; resolves with its exit code and output whatever the code. */
async function exec(
  cmd: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      cwd,
      maxBuffer: 64 << 20,
      env: { ...process.env, BADEXPERT_THREADS: "1" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof x.code !== "number") throw e;
    return { code: x.code, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

async function sh(cmd: string, args: string[], cwd: string): Promise<string> {
  const r = await exec(cmd, args, cwd);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} (in ${cwd}) exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function parseLines(out: string): (Detection & { image: string })[] {
  return out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Detection & { image: string });
}

async function libraryScores(bundle: string, images: string[]): Promise<Detection[]> {
  const det = await Detector.load(bundle);
  try {
    return await det.score(images);
  } finally {
    await det.dispose();
  }
}

function assertSameDetections(got: (Detection & { image: string })[], want: Detection[], images: string[]): void {
  assert.equal(got.length, want.length);
  for (const [i, w] of want.entries()) {
    const g = got[i] as Detection & { image: string };
    assert.equal(g.image, images[i]);
    assert.equal(g.pred, w.pred);
    assert.equal(g.flagged, w.flagged);
    assert.ok(Math.abs(g.score - w.score) <= 1e-6, `image ${i}: score ${g.score} vs library ${w.score}`);
    assert.equal(g.threshold, w.threshold);
  }
}

test("the example project builds against the package and scores like the library", { timeout: 600_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-example-"));
  try {
    const { bundle, images } = await writeSmallBundle(dir);
    const example = join(dir, "example");
    await cp(join(root, "examples/detect-images"), example, {
      recursive: true,
      filter: (p) => !/node_modules|dist/.test(p.slice(root.length)),
    });
    const pkg = JSON.parse(await readFile(join(example, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    pkg.dependencies.badexpert = `file:${root}`;
    await writeFile(join(example, "package.json"), JSON.stringify(pkg, null, 2));
    await sh("npm", ["install", ...npmQuiet], example);
    await sh("npx", ["--no-install", "tsc", "-p", "tsconfig.json"], example);
    // Exit status 1 means "something was flagged"; the lines are on stdout either way.
    const r = await exec("node", ["dist/detect.js", bundle, ...images], example);
    const want = await libraryScores(bundle, images);
    assertSameDetections(parseLines(r.stdout), want, images);
    assert.equal(r.code, want.some((w) => w.flagged) ? 1 : 0, r.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test(
  'npm pack → npm install in a fresh project → import { Detector } from "badexpert" scores an image',
  { timeout: 900_000 },
  async () => {
    const dir = await mkdtemp(join(tmpdir(), "bx-pack-"));
    try {
      const { bundle, images } = await writeSmallBundle(dir, 2);
      // dist/ is current (npm test builds before testing), so the prepack build is skipped here.
      const packed = JSON.parse(
        await sh("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", dir, ...npmQuiet], root),
      ) as {
        filename: string;
        files: { path: string }[];
      }[];
      const entry = packed[0];
      assert.ok(entry, "npm pack printed no entry");
      const paths = entry.files.map((f) => f.path);
      assert.ok(
        paths.includes("dist/src/index.js") && paths.includes("dist/src/index.d.ts"),
        "the main entry and its types are packed",
      );
      assert.ok(
        paths.includes("native/binding.gyp") && paths.includes("scripts/build-native.sh"),
        "the addon sources are packed",
      );
      assert.deepEqual(
        paths.filter((p) => /^(test|bench|dist\/test|dist\/bench|src)\//.test(p)),
        [],
        "tests, benchmarks and TS sources are not packed",
      );

      const app = join(dir, "app");
      await sh("mkdir", ["-p", app], dir);
      await writeFile(
        join(app, "package.json"),
        JSON.stringify({ name: "bx-consumer", private: true, type: "module" }),
      );
      await writeFile(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            strict: true,
            outDir: "out",
            types: ["node"],
            skipLibCheck: false,
          },
          include: ["main.ts"],
        }),
      );
      await writeFile(
        join(app, "main.ts"),
        [
          'import { Detector, type Detection } from "badexpert";',
          "const [bundle, ...images] = process.argv.slice(2);",
          "const det = await Detector.load(bundle as string);",
          "const results: Detection[] = await det.score(images);",
          "results.forEach((r, i) => console.log(JSON.stringify({ image: images[i], ...r })));",
          "await det.dispose();",
          "",
        ].join("\n"),
      );
      // Installing the tarball builds the addon against the system libtorch (the package's install script).
      await sh(
        "npm",
        ["install", ...npmQuiet, join(dir, entry.filename), "typescript@~5.9.3", "@types/node@^20.19.0"],
        app,
      );
      const built = await readdir(join(app, "node_modules/badexpert/native/build/Release"));
      assert.ok(built.includes("badexpert.node"), `the addon was built on install (found ${built.join(", ")})`);
      await sh("npx", ["--no-install", "tsc", "-p", "tsconfig.json"], app);
      const out = await sh("node", ["out/main.js", bundle, ...images], app);
      assertSameDetections(parseLines(out), await libraryScores(bundle, images), images);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
