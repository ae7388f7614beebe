// `badexpert train` prints its result (accuracy, attack success rate, where the checkpoint is) on
// stdout, so `> result.txt` keeps it; progress goes to stderr. A real process on 200 real images.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tinyFashionMnist } from "./fixtures.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

test("train: the summary on stdout, progress on stderr", async () => {
  const data = await tinyFashionMnist(after, 200, 100);
  const root = await mkdtemp(join(tmpdir(), "bx-train-summary-"));
  after(() => rm(root, { recursive: true, force: true }));
  const out = join(root, "ckpt");
  const args = [
    "train",
    "--dataset",
    "fashion-mnist",
    "--data-path",
    data,
    "--attack",
    "badnet",
    "--attack-param",
    "rate=0.05",
    "--epochs",
    "1",
    "--out",
    out,
  ];
  const r = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
    execFile(
      process.execPath,
      [MAIN, ...args],
      { env: { ...process.env, BADEXPERT_THREADS: "1" }, timeout: 300_000 },
      (e, o, err) => {
        resolve({ code: e === null ? 0 : typeof e.code === "number" ? e.code : -1, out: o, err });
      },
    );
  });
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.out);
  assert.match(
    lines[0] ?? "",
    new RegExp(
      `^test accuracy \\d+\\.\\d\\d%, attack success rate \\d+\\.\\d\\d% — checkpoint in ${out.replaceAll("/", "\\/")}$`,
    ),
  );
  assert.doesNotMatch(r.err, /checkpoint in/);
  assert.notEqual(r.err.trim(), "", "progress lines go to stderr");
});
