// One error type: every code's CLI exit status and HTTP status (the table in src/util/errors.ts,
// which docs/errors.md must list row for row), the codes the error classes carry, and real
// failures (a bad model file, a bad image, a bad option) arriving with their code at the library
// caller, the CLI's exit status and the service's answer.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BadExpertError,
  ERROR_CODES,
  errorCode,
  exitStatus,
  httpStatus,
  type ErrorCode,
} from "../../src/util/errors.js";
import { FileReadError } from "../../src/util/read-regular-file.js";
import { UsageError } from "../../src/cli/command.js";
import { OptionError } from "../../src/jobs/errors.js";
import { ImageDecodeError, IMAGE_PROBLEM_CODES } from "../../src/data/image-error.js";
import { DatasetFormatError } from "../../src/data/errors.js";
import { ServeError } from "../../src/serve/errors.js";
import { readStateDictFile } from "../../src/io/state-dict-file.js";
import { Detector, type Outcome } from "../../src/api/detector.js";
import { evaluateBundle } from "../../src/jobs/evaluate-defense.js";
import { createServer } from "../../src/serve/index.js";
import { memory } from "../../src/engine/index.js";
import { fixtureBundle } from "../serve/fixture.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const CLI = join(root, "dist/src/cli/main.js");

/** What the CLI and the service answer for each code. Written out here, so that a changed mapping fails. */
const EXPECTED: Record<ErrorCode, { exit: number; http: number }> = {
  E_USAGE: { exit: 2, http: 400 },
  E_INPUT_DECODE: { exit: 1, http: 400 },
  E_INPUT_UNSUPPORTED: { exit: 1, http: 415 },
  E_INPUT_TOO_LARGE: { exit: 1, http: 413 },
  E_UNSCORABLE: { exit: 1, http: 503 },
  E_BUSY: { exit: 1, http: 503 },
  E_TIMEOUT: { exit: 1, http: 504 },
  E_BUNDLE_INTEGRITY: { exit: 1, http: 500 },
  E_MODEL_FORMAT: { exit: 1, http: 500 },
  E_DATA: { exit: 1, http: 500 },
  E_KEY: { exit: 1, http: 500 },
  E_IO: { exit: 1, http: 500 },
  E_UNAUTHORIZED: { exit: 1, http: 401 },
  E_NOT_FOUND: { exit: 1, http: 404 },
  E_FLAGGED: { exit: 1, http: 422 },
  E_INTERNAL: { exit: 1, http: 500 },
};

let work: string;
let bundle: string;
let tensorsAtStart: number;

before(async () => {
  tensorsAtStart = memory().numTensors;
  work = await mkdtemp(join(tmpdir(), "bx-errors-"));
  bundle = await fixtureBundle();
});

after(async () => {
  await rm(work, { recursive: true, force: true });
  assert.equal(memory().numTensors, tensorsAtStart);
});

function cli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: "utf8",
    env: { ...process.env, BADEXPERT_THREADS: "1" },
  });
  return { status: r.status, stderr: r.stderr };
}

test("every code has its exit status and HTTP status, and docs/errors.md lists each with the same two", async () => {
  assert.deepEqual(Object.keys(ERROR_CODES).sort(), Object.keys(EXPECTED).sort());
  for (const [code, want] of Object.entries(EXPECTED) as [ErrorCode, { exit: number; http: number }][]) {
    assert.equal(exitStatus(code), want.exit, `${code}: exit status`);
    assert.equal(httpStatus(code), want.http, `${code}: HTTP status`);
  }
  const doc = await readFile(join(root, "docs/errors.md"), "utf8");
  const rows = [...doc.matchAll(/^\| `(E_[A-Z_]+)` \| (\d) \| (\d{3}) \|/gm)].map((m) => [
    m[1],
    Number(m[2]),
    Number(m[3]),
  ]);
  assert.deepEqual(
    rows,
    Object.entries(EXPECTED).map(([c, w]) => [c, w.exit, w.http]),
    "docs/errors.md's table, in the order of src/util/errors.ts",
  );
});

test("the error classes carry their codes; anything else is E_INTERNAL", () => {
  assert.equal(errorCode(new UsageError("--x: bad")), "E_USAGE");
  assert.equal(errorCode(new OptionError("fpr", "too small")), "E_USAGE");
  assert.equal(errorCode(new FileReadError("f", "no such file", "ENOENT")), "E_IO");
  assert.equal(errorCode(new FileReadError("f", "too big", "ESIZE")), "E_INPUT_TOO_LARGE");
  assert.equal(errorCode(new DatasetFormatError("idx", "f", "truncated")), "E_DATA");
  for (const [reason, code] of Object.entries(IMAGE_PROBLEM_CODES)) {
    const e = new ImageDecodeError(reason as keyof typeof IMAGE_PROBLEM_CODES, "x.png", "problem");
    assert.deepEqual([e.code, e.reason, e instanceof DatasetFormatError], [code, reason, true], reason);
  }
  const busy = new ServeError("E_BUSY", "queue_full", "full");
  assert.deepEqual([busy.statusCode, busy.reason, busy instanceof BadExpertError], [503, "queue_full", true]);
  // A framework's own 4xx keeps its status.
  assert.equal(new ServeError("E_USAGE", "fst_err", "x", { status: 405 }).statusCode, 405);
  assert.equal(errorCode(new Error("a bug")), "E_INTERNAL");
  assert.equal(errorCode(new RangeError("a broken invariant")), "E_INTERNAL");
  assert.equal(errorCode("a string"), "E_INTERNAL");
});

test("a bad model file: E_MODEL_FORMAT to the library, exit 1 from the CLI", async () => {
  const junk = join(work, "junk.pt");
  await writeFile(join(work, "junk.pt"), "this is not a torch.save file, nor safetensors");
  await assert.rejects(
    readStateDictFile(junk),
    (e: unknown) => errorCode(e) === "E_MODEL_FORMAT" && /junk\.pt/.test((e as Error).message),
  );
  const r = cli([
    "import",
    "--weights",
    junk,
    "--arch",
    "compact-cnn",
    "--dataset",
    "fashion-mnist",
    "--out",
    join(work, "imported"),
  ]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^badexpert: .*junk\.pt/m);
});

test("a bad image: E_INPUT_DECODE to the library, 400 with the code from the service", async () => {
  const det = await Detector.load(bundle);
  try {
    await assert.rejects(
      det.score([new TextEncoder().encode("not an image")]),
      (e: unknown) => e instanceof ImageDecodeError && e.code === "E_INPUT_DECODE" && e.reason === "not_an_image",
    );
    const outcomes: Outcome[] = [];
    for await (const part of det.scoreEach([new Uint8Array(0)])) outcomes.push(...part);
    const [outcome] = outcomes;
    assert.deepEqual(outcome && !outcome.ok ? [outcome.code, outcome.reason] : null, ["E_INPUT_DECODE", "empty"]);
  } finally {
    await det.dispose();
  }
  const server = await createServer(bundle, { port: 0, logLevel: "silent", workers: 1 });
  try {
    const url = await server.listen();
    const r = await fetch(`${url}/v1/detect`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: "not an image",
    });
    const body = (await r.json()) as Record<string, unknown>;
    assert.equal(r.status, 400);
    assert.deepEqual([body.code, body.reason, body.error], ["E_INPUT_DECODE", "not_an_image", "not_an_image"]);
    const missing = await fetch(`${url}/v2/nothing`);
    assert.deepEqual([missing.status, ((await missing.json()) as Record<string, unknown>).code], [404, "E_NOT_FOUND"]);
  } finally {
    assert.equal(await server.close(), 0);
  }
});

test("a bad option: E_USAGE to the library and from createServer, exit 2 from the CLI", async () => {
  await assert.rejects(
    evaluateBundle({ bundle, device: "cuda:x" }),
    (e: unknown) => e instanceof OptionError && e.code === "E_USAGE",
  );
  await assert.rejects(
    createServer(bundle, { port: 70000 }),
    (e: unknown) => errorCode(e) === "E_USAGE" && /port must be at most 65535/.test((e as Error).message),
  );
  const r = cli(["evaluate-defense", "--bundle", bundle, "--device", "cuda:x"]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^badexpert evaluate-defense: --device: .*cuda:x/m);
  assert.match(r.stderr, /Run `badexpert evaluate-defense --help` for usage\./);
});
