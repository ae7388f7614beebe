// A baseline detector bundle's threshold is checked against its calibration record as
// BaDExpert's is: an edited threshold outside the clean scores it was picked from is refused, a
// record without the range loads with a warning, and the bundle is reported as unsigned. Its
// manifest as a FIFO is refused at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, rand, tidy } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { fitDetector } from "../../src/detectors/registry.js";
import { saveDetectorBundle } from "../../src/detectors/bundle.js";
import { openDetector } from "../../src/detectors/open.js";
import { calibrateThreshold } from "../../src/defense/threshold.js";
import { GREY8, context, syntheticSet } from "./fixtures.js";
import { within } from "../helpers/fifo.js";

test("baseline bundles: a threshold outside the recorded clean scores is refused; no range recorded is a warning", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-baseline-threshold-"));
  try {
    manualSeed(5);
    const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 8 };
    const model = createModel("compact-cnn", spec).eval();
    const ckpt = join(dir, "ckpt");
    await saveCheckpoint(ckpt, model, {
      model: spec,
      dataset: { name: "synthetic" },
      preprocessing: GREY8,
      classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
      training: {},
      metrics: {},
    });
    const reserved = syntheticSet(30, 10, (i, k) => (i * 29 + k * 11) % 256);
    const det = await fitDetector("scale-up", { ...context(model, 10), spec }, { reserved, calibration: reserved }, {});
    manualSeed(6);
    const scores = Array.from(tidy(() => det.scoreBatch(rand([40, 1, 8, 8]))).score);
    const cal = calibrateThreshold(scores, 0.1);
    const bundle = join(dir, "scale-up");
    await saveDetectorBundle(bundle, det, { checkpoint: ckpt, calibration: cal, dataset: "synthetic" });
    det.dispose();
    model.dispose();

    const loaded = await openDetector(bundle, { onWarning: () => undefined });
    assert.equal(loaded.threshold, cal.threshold);
    assert.deepEqual(loaded.trust.warnings.length, 1);
    assert.match(loaded.trust.warnings[0] as string, /scale-up is a baseline detector bundle, which is not signed/);
    loaded.dispose();

    const manifest = join(bundle, "detector.json");
    const good = JSON.parse(await readFile(manifest, "utf8")) as { calibration: Record<string, unknown> };
    const edit = async (change: (c: Record<string, unknown>) => void): Promise<void> => {
      const m = structuredClone(good);
      change(m.calibration);
      await writeFile(manifest, JSON.stringify(m));
    };
    // A threshold no clean score reaches, with the FPR fields made to agree: above the recorded range.
    await edit((c) => ((c.threshold = 1e9), (c.targetFpr = 0.001), (c.achievedFpr = 0)));
    await assert.rejects(
      openDetector(bundle, { onWarning: () => undefined }),
      /detector\.json: "calibration\.threshold" must be (within the clean calibration scores it was picked from|equal to scoreQuantiles\.p99)/,
    );
    // At FPR 0.1 over 40 scores the threshold is the 90th percentile itself.
    await edit((c) => (c.threshold = 1e9));
    await assert.rejects(
      openDetector(bundle, { onWarning: () => undefined }),
      /"calibration\.threshold" must be equal to scoreQuantiles\.p90/,
    );
    // No range recorded: loads, and says so.
    await edit((c) => (delete c.scoreMin, delete c.scoreMax));
    const old = await openDetector(bundle, { onWarning: () => undefined });
    assert.match(old.trust.warnings[1] as string, /detector\.json: its calibration records no range of clean scores/);
    old.dispose();

    // The manifest as a FIFO: refused at once, not waited on.
    await rename(manifest, `${manifest}.real`);
    execFileSync("mkfifo", [manifest]);
    try {
      await assert.rejects(
        within(5000, openDetector(bundle, { onWarning: () => undefined })),
        /detector\.json: the (detector )?manifest is not a regular file/,
      );
    } finally {
      try {
        closeSync(openSync(manifest, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader waiting
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
