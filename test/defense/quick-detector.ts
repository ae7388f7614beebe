// A small, really calibrated detector built in a second: three differently seeded compact CNNs
// (no finetuning) and a threshold calibrated on their scores for seeded random images. The
// integrity tests need real bundles, not a fitted defense.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { manualSeed, rand, tidy } from "../../src/engine/index.js";
import { createModel } from "../../src/models/registry.js";
import { BadExpertDetector } from "../../src/defense/detector.js";
import { calibrateThreshold } from "../../src/defense/threshold.js";
import { manifestDigest } from "../../src/defense/manifest.js";
import { sha256Hex } from "../../src/io/safetensors.js";

export const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
export const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
export const classNames = Array.from({ length: 10 }, (_, i) => `class ${i}`);

export function quickDetector(seed = 0): BadExpertDetector {
  const make = (s: number) => {
    manualSeed(s);
    return createModel("compact-cnn", spec);
  };
  const parts = { model: make(seed), expert: make(seed + 1), auxiliary: make(seed + 2) };
  const raw = BadExpertDetector.uncalibrated(parts, {
    spec,
    preprocessing,
    classNames,
    rule: "triangle",
    targetFpr: 0.05,
  });
  manualSeed(seed + 3);
  const s = tidy(() => raw.scoreBatch(rand([64, 1, 28, 28])));
  const cal = calibrateThreshold(s.score, 0.05);
  const det = raw.withDecision("triangle", cal.threshold, cal);
  det.info.creation = { seed, dataset: { name: "fashion-mnist" }, splits: { seed: 0, reserved: 10, calibration: 10 } };
  return det;
}

export async function readManifest(dir: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(dir, "detector.json"), "utf8")) as Record<string, unknown>;
}

/**
 * Writes `m` as the manifest with every hash recomputed for the files as they are now: what a
 * careful attacker would do. Only a signature can catch that; the field checks still apply.
 */
export async function writeRehashed(dir: string, m: Record<string, unknown>): Promise<void> {
  const integrity = m.integrity as {
    weights: Record<string, { file: string; bytes: number; sha256: string }>;
    manifest: string;
  };
  for (const w of Object.values(integrity.weights)) {
    const bytes = await readFile(join(dir, w.file));
    w.bytes = bytes.length;
    w.sha256 = sha256Hex(bytes);
  }
  integrity.manifest = manifestDigest(JSON.parse(JSON.stringify(m)));
  await writeFile(join(dir, "detector.json"), JSON.stringify(m, null, 2));
}
