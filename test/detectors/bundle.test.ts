// Baseline detector bundles: a saved and reloaded detector scores exactly as the fitted one; a
// changed checkpoint is refused; BaDExpert is pointed to its own bundle.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manualSeed, memory, rand, noGrad } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { fitDetector } from "../../src/detectors/registry.js";
import { saveDetectorBundle } from "../../src/detectors/bundle.js";
import { openDetector } from "../../src/detectors/open.js";
import { calibrateDetector } from "../../src/detectors/calibrate.js";
import { GREY8, context, syntheticSet } from "./fixtures.js";

test("baseline bundles round-trip to identical scores and refuse a changed checkpoint", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "badexpert-detector-bundle-"));
  try {
    manualSeed(5);
    const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 8 };
    const model = createModel("compact-cnn", spec).eval();
    const ckpt = join(dir, "ckpt");
    const meta = {
      model: spec,
      dataset: { name: "synthetic" },
      preprocessing: GREY8,
      classNames: Array.from({ length: 10 }, (_, i) => `c${i}`),
      training: {},
      metrics: {},
    };
    await saveCheckpoint(ckpt, model, meta);
    const ctx = { ...context(model, 10), spec };
    const reserved = syntheticSet(30, 10, (i, k) => (i * 29 + k * 11) % 256);
    const x = rand([6, 1, 8, 8]);
    for (const [name, params] of [
      ["strip", { n: 4 }],
      ["scale-up", {}],
      ["teco", { corruptions: "gaussian_noise,contrast,brightness" }],
      ["ibd-psc", {}],
      ["cd", { steps: 3 }],
      ["frequency", { width: 2, epochs: 1, batchSize: 16 }],
      ["sentinet", { n: 4, boundaryImages: 10 }],
    ] as const) {
      const det = await fitDetector(name, ctx, { reserved, calibration: reserved }, params);
      // Scored first: STRIP's draws follow the sequence of calls, which must match the reloaded one's.
      manualSeed(9);
      const want = det.scoreBatch(x);
      const cal = calibrateDetector(det, reserved, 0.1).calibration;
      await saveDetectorBundle(join(dir, name), det, { checkpoint: ckpt, calibration: cal, dataset: "synthetic" });
      det.dispose();
      const loaded = await openDetector(join(dir, name), { onWarning: () => undefined });
      manualSeed(9);
      const got = loaded.scorer.scoreBatch(x);
      assert.deepEqual(Array.from(got.score), Array.from(want.score), name);
      assert.deepEqual(Array.from(got.pred), Array.from(want.pred), name);
      assert.equal(loaded.threshold, cal.threshold);
      // Each bundle draws its own secret key for the per-input seeds.
      assert.equal(loaded.inputSeedKey?.length, 32, `${name}: input-seed key`);
      assert.ok(
        loaded.inputSeedKey?.some((b) => b !== 0),
        `${name}: key is not all zeros`,
      );
      loaded.dispose();
    }
    // Fail closed: an edited threshold, a swapped state file, a bundle written over another.
    const stripManifest = join(dir, "strip", "detector.json");
    const good = await readFile(stripManifest, "utf8");
    const edited = JSON.parse(good) as { calibration: Record<string, unknown> };
    edited.calibration.threshold = "";
    await writeFile(stripManifest, JSON.stringify(edited));
    await assert.rejects(
      openDetector(join(dir, "strip"), { onWarning: () => undefined }),
      /detector\.json: "calibration\.threshold" must be a finite number; found ""/,
    );
    const badKey = JSON.parse(good) as Record<string, unknown>;
    badKey.inputSeedKey = "abc";
    await writeFile(stripManifest, JSON.stringify(badKey));
    await assert.rejects(
      openDetector(join(dir, "strip"), { onWarning: () => undefined }),
      /detector\.json: "inputSeedKey" must be 64 lowercase hex digits; found .*not shown, it is a secret/,
    );
    // A bundle written before keys existed still loads, with unkeyed seeds.
    delete badKey.inputSeedKey;
    await writeFile(stripManifest, JSON.stringify(badKey));
    const old = await openDetector(join(dir, "strip"), { onWarning: () => undefined });
    assert.equal(old.inputSeedKey, null);
    old.dispose();
    await writeFile(stripManifest, good);
    const stateFile = join(dir, "strip", "state.safetensors");
    const pool = await readFile(stateFile);
    pool.writeUInt8(pool.readUInt8(pool.length - 1) ^ 1, pool.length - 1);
    await writeFile(stateFile, pool);
    await assert.rejects(
      openDetector(join(dir, "strip"), { onWarning: () => undefined }),
      /state\.safetensors does not match the SHA-256 recorded in .*detector\.json/,
    );
    const again = await fitDetector("scale-up", ctx, { reserved, calibration: reserved }, {});
    await assert.rejects(
      saveDetectorBundle(join(dir, "strip"), again, {
        checkpoint: ckpt,
        calibration: calibrateDetector(again, reserved, 0.1).calibration,
        dataset: "synthetic",
      }),
      /not empty|exists/,
    );
    again.dispose();
    const be = await fitDetector("badexpert", ctx, { reserved, calibration: reserved }, { unlearnLr: 1e-3 });
    await assert.rejects(
      saveDetectorBundle(join(dir, "be"), be, {
        checkpoint: ckpt,
        calibration: calibrateDetector(be, reserved, 0.1).calibration,
        dataset: "synthetic",
      }),
      /'badexpert' has its own bundle format/,
    );
    be.dispose();
    // Changing M's weights after fitting invalidates the threshold: loading must refuse.
    noGrad(() => model.parameters()[0]?.add_(1));
    await saveCheckpoint(ckpt, model, meta, { replace: true });
    await assert.rejects(
      openDetector(join(dir, "scale-up"), { onWarning: () => undefined }),
      /changed since the detector was fitted/,
    );
    x.dispose();
    model.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
