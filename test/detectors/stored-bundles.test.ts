// Bundles written once stay readable and score the same: test/fixtures/bundles holds a BaDExpert
// bundle and a STRIP bundle written by `badexpert defend` before the detector stack had one
// contract, and expected.json the records `scan`, the service and evaluate-defense gave them then
// (test/fixtures/bundles/make.ts). Each kind is opened with Detector.load() and through every
// command that scores, and compared with those figures.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { memory } from "../../src/engine/index.js";
import { Detector, type Detection } from "../../src/index.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { createServer } from "../../src/serve/index.js";
import { runCli } from "../cli/fixtures.js";

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../../../test/fixtures/bundles");
/** Scores agree to float rounding: libtorch's reductions may split differently with another thread count. */
const TOL = 1e-5;
const KINDS = ["badexpert", "strip"] as const;

interface Expected {
  images: string[];
  badexpert: Figures;
  strip: Figures;
}
interface Figures {
  scan: Record<string, unknown>[];
  serve: Record<string, unknown>[];
  evaluate: {
    metrics: Record<string, number>;
    threshold: number;
    clean: { score: number[]; pred: number[] };
    poisoned: { score: number[]; pred: number[] };
  };
}

let root: string;
let want: Expected;
let tensorsAtStart: number;
const images = (): string[] => want.images.map((f) => join(root, f));

before(async () => {
  tensorsAtStart = memory().numTensors;
  root = await mkdtemp(join(tmpdir(), "bx-stored-bundles-"));
  await cp(FIXTURES, root, { recursive: true });
  // A baseline bundle names its checkpoint by absolute path: point the copy at the copied checkpoint.
  const manifest = join(root, "strip", "detector.json");
  const m = JSON.parse(await readFile(manifest, "utf8")) as { kind?: unknown; checkpoint: { path: string } };
  assert.equal(m.kind, undefined, "the stored STRIP bundle predates the kind field");
  m.checkpoint.path = join(root, "checkpoint");
  await writeFile(manifest, JSON.stringify(m, null, 2));
  want = JSON.parse(await readFile(join(root, "expected.json"), "utf8")) as Expected;
});

after(async () => {
  await rm(root, { recursive: true, force: true });
  assert.equal(memory().numTensors, tensorsAtStart);
});

function near(got: unknown, expected: unknown, what: string): void {
  assert.equal(typeof got, "number", `${what}: ${String(got)}`);
  assert.ok(
    Math.abs((got as number) - (expected as number)) <= TOL,
    `${what}: ${String(got)} vs stored ${String(expected)}`,
  );
}

function sameRecord(got: Record<string, unknown>, stored: Record<string, unknown>, what: string): void {
  assert.deepEqual([got.pred, got.flagged], [stored.pred, stored.flagged], what);
  near(got.score, stored.score, `${what}: score`);
  for (const k of ["expertConfidence", "auxiliaryConfidence"]) {
    if (stored[k] === undefined || stored[k] === null)
      assert.ok(got[k] === undefined || got[k] === null, `${what}: ${k} ${String(got[k])}`);
    else near(got[k], stored[k], `${what}: ${k}`);
  }
}

test("Detector.load() opens a stored BaDExpert bundle and a stored baseline bundle and scores like the stored scan", async () => {
  for (const kind of KINDS) {
    const det = await Detector.load(join(root, kind), { onWarning: () => undefined });
    try {
      assert.equal(det.kind, kind);
      assert.equal(det.summary.rule, kind === "badexpert" ? "triangle" : null);
      assert.equal(det.trust.signature, "unsigned");
      const got = await det.score(images());
      const stored = want[kind].scan;
      assert.equal(got.length, stored.length);
      got.forEach((g: Detection, i) => {
        sameRecord(
          g as unknown as Record<string, unknown>,
          stored[i] as Record<string, unknown>,
          `${kind} library, image ${i}`,
        );
        assert.equal(g.predClass, (stored[i] as Record<string, unknown>).predClass);
      });
    } finally {
      await det.dispose();
    }
  }
});

test("scan gives the stored records for both bundles", async () => {
  for (const kind of KINDS) {
    const r = await runCli(["scan", "--bundle", join(root, kind), ...images()]);
    assert.equal(r.code, 0, r.err);
    const lines = r.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = lines.pop() as Record<string, unknown>;
    assert.deepEqual([summary.summary, summary.detector, summary.inputs], [true, kind, want.images.length]);
    lines.forEach((l, i) => {
      const stored = want[kind].scan[i] as Record<string, unknown>;
      assert.equal(l.input, join(root, String(stored.input)));
      sameRecord(l, stored, `${kind} scan, image ${i}`);
    });
  }
});

test("the service gives the stored records for both bundles", async () => {
  for (const kind of KINDS) {
    const server = await createServer(join(root, kind), {
      port: 0,
      workers: 1,
      engine: "libtorch",
      logLevel: "silent",
    });
    try {
      const url = await server.listen();
      const body = { images: await Promise.all(images().map(async (f) => (await readFile(f)).toString("base64"))) };
      const r = await fetch(`${url}/v1/detect`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(r.status, 200);
      const got = ((await r.json()) as { results: Record<string, unknown>[] }).results;
      got.forEach((g, i) => {
        const stored = want[kind].serve[i] as Record<string, unknown>;
        sameRecord(g, stored, `${kind} serve, image ${i}`);
        assert.deepEqual([g.class, g.detector, g.threshold], [stored.class, stored.detector, stored.threshold]);
      });
    } finally {
      assert.equal(await server.close(), 0);
    }
  }
});

test("evaluate-defense gives the stored scores and metrics for both bundles", async () => {
  for (const kind of KINDS) {
    const e = await evaluateBundle({
      bundle: join(root, kind),
      attack: "badnet",
      attackParams: { targetClass: 0, rate: 0.1 },
      evaluationLimit: 64,
    });
    const stored = want[kind].evaluate;
    assert.equal(e.detector, kind);
    assert.equal(e.threshold, stored.threshold);
    for (const side of ["clean", "poisoned"] as const) {
      assert.deepEqual(Array.from(e[side].pred), stored[side].pred, `${kind} ${side}: predictions`);
      assert.equal(e[side].score.length, stored[side].score.length);
      for (let i = 0; i < stored[side].score.length; i++)
        near(e[side].score[i], stored[side].score[i], `${kind} ${side} ${i}`);
    }
    for (const [k, v] of Object.entries(stored.metrics))
      near((e.metrics as unknown as Record<string, number>)[k], v, `${kind} metric ${k}`);
  }
});
