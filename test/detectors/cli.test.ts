// `badexpert compare`: help text and argument errors (the job itself is tested in compare.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { runCli } from "../cli/fixtures.js";

const run = runCli;

test("compare --help lists the detectors and options", async () => {
  const r = await run(["compare", "--help"]);
  assert.equal(r.code, 0);
  assert.match(r.out, /Detectors: badexpert, strip, scale-up, teco, ibd-psc, cd, frequency, sentinet/);
  assert.match(r.out, /--detector-param/);
  assert.match(r.out, /--evaluation-limit/);
});

test("compare: an unknown detector or a parameter of an uncompared one is a usage error", async () => {
  const bad = await run(["compare", "--checkpoint", "nowhere", "--detectors", "strip,nope"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.err,
    /unknown detector 'nope'; valid names: badexpert, strip, scale-up, teco, ibd-psc, cd, frequency, sentinet/,
  );
  const stray = await run([
    "compare",
    "--checkpoint",
    "nowhere",
    "--detectors",
    "strip",
    "--detector-param",
    "teco:corruptions=contrast",
  ]);
  assert.equal(stray.code, 2);
  assert.match(stray.err, /'teco' is not among the compared detectors \(strip\)/);
});
