// The detector registry is data: names, parameter tables with checked overrides, one fit entry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { detectorInfo, detectorNames, fitDetector, parseDetectorList } from "../../src/detectors/registry.js";
import { parseDetectorParams, resolveDetectorParams } from "../../src/detectors/params.js";
import { ConstantLogits, context, syntheticSet } from "./fixtures.js";
import { memory } from "../../src/engine/index.js";

test("registry lists BaDExpert and the baselines; unknown names list the valid ones", () => {
  assert.deepEqual(detectorNames(), [
    "badexpert",
    "strip",
    "scale-up",
    "teco",
    "ibd-psc",
    "cd",
    "frequency",
    "sentinet",
  ]);
  assert.throws(
    () => detectorInfo("neural-cleanse"),
    /unknown detector 'neural-cleanse'; valid names: badexpert, strip, scale-up, teco, ibd-psc, cd, frequency, sentinet/,
  );
  assert.deepEqual(parseDetectorList("all"), detectorNames());
  assert.deepEqual(parseDetectorList("strip, teco,strip"), ["strip", "teco"]);
  assert.throws(() => parseDetectorList("strip,nope"), /unknown detector 'nope'/);
  for (const n of detectorNames()) assert.ok(detectorInfo(n).paper.length > 0 && detectorInfo(n).cost.length > 0);
});

test("parameters: defaults, overrides, and errors naming the parameter, expected and actual", () => {
  assert.deepEqual(resolveDetectorParams("strip", detectorInfo("strip").params, {}), { n: 100, poolSize: 0, seed: 0 });
  assert.equal(resolveDetectorParams("strip", detectorInfo("strip").params, { n: "20" }).n, 20);
  assert.throws(
    () => resolveDetectorParams("strip", detectorInfo("strip").params, { n: "0" }),
    /detector 'strip': parameter 'n' must be an integer >= 1, got "0"/,
  );
  assert.throws(
    () => resolveDetectorParams("strip", detectorInfo("strip").params, { m: 3 }),
    /detector 'strip': unknown parameter 'm'; valid: n, poolSize, seed/,
  );
  assert.equal(
    resolveDetectorParams("teco", detectorInfo("teco").params, { corruptions: "contrast,brightness" }).corruptions,
    "contrast,brightness",
  );
  assert.throws(
    () => resolveDetectorParams("teco", detectorInfo("teco").params, { corruptions: "contrast,hail" }),
    /parameter 'corruptions' must be a comma-separated list of gaussian_noise, .*jpeg_compression, got "contrast,hail"/,
  );
  assert.deepEqual(parseDetectorParams("strip:n=50;teco:corruptions=contrast,brightness"), {
    strip: { n: "50" },
    teco: { corruptions: "contrast,brightness" },
  });
  assert.throws(() => parseDetectorParams("n=50"), /expected detector:key=value/);
});

test("fitDetector resolves parameters before fitting", async () => {
  const before = memory().numTensors;
  const ctx = context(new ConstantLogits([1, 0]), 2);
  const data = { reserved: syntheticSet(4, 2, () => 9), calibration: syntheticSet(4, 2, () => 9) };
  await assert.rejects(
    fitDetector("scale-up", ctx, data, { scales: "1,-2" }),
    /parameter 'scales' must be a comma-separated list of numbers, each > 0, got "1,-2"/,
  );
  const det = await fitDetector("strip", ctx, data, { n: 2 });
  assert.deepEqual(det.params, { n: 2, poolSize: 0, seed: 0 });
  det.dispose();
  assert.equal(memory().numTensors, before);
});
