// A small real detector bundle for the service tests: a compact CNN M trained for two epochs on
// 2,000 real Fashion-MNIST training images, B and M' finetuned from it for one epoch on 256 test
// images, calibrated at a 5% target FPR on 500 more, so a few clean inputs are flagged. Built once and cached under the
// temp directory (each test file runs in its own process); the version in the name changes
// whenever the recipe does.
import { access, mkdtemp, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { manualSeed } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { fitBadExpert } from "../../src/defense/fit.js";
import { BUNDLE_VERSION, loadBundle, saveBundle } from "../../src/defense/bundle.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { fit } from "../../src/train/trainer.js";
import { recipeFor } from "../../src/train/recipes.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { QUICK_FIT } from "../helpers/quick-fit.js";

// Keyed by the bundle format, and reused only when it still loads: a cache left by an older
// badexpert on the same machine is rebuilt, not served.
const DIR = join(tmpdir(), `badexpert-serve-fixture-b${BUNDLE_VERSION}`);
const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };

async function splits(): Promise<{ test: ImageDataset; s: ReturnType<typeof defenseSplits> }> {
  const test = await loadDataset("fashion-mnist", { split: "test" });
  return { test, s: defenseSplits(test.count, { seed: 1, reserved: 256, calibration: 500 }) };
}

/** The bundle directory (built on first use). */
export async function fixtureBundle(): Promise<string> {
  try {
    await access(join(DIR, "detector.json"));
    (await loadBundle(DIR)).dispose();
    return DIR;
  } catch {
    // not built yet, or not loadable by this version
    await rm(DIR, { recursive: true, force: true });
  }
  const { test, s } = await splits();
  manualSeed(2);
  const model = createModel("compact-cnn", spec);
  const train = await loadDataset("fashion-mnist", { split: "train" });
  await fit(
    model,
    subset(
      train,
      Int32Array.from({ length: 2000 }, (_, i) => i),
    ),
    { ...recipeFor("fashion-mnist").config, epochs: 2, seed: 0 },
    {
      normalization: { mean: preprocessing.mean, std: preprocessing.std },
      silent: true,
    },
  );
  const det = await fitBadExpert(
    model,
    { spec, preprocessing, classNames: test.classNames },
    subset(test, s.reserved),
    subset(test, s.calibration),
    QUICK_FIT,
  );
  model.dispose();
  // Written aside and renamed into place, so a concurrent test process never sees half a bundle.
  const tmp = await mkdtemp(join(tmpdir(), "badexpert-serve-fixture-tmp-"));
  try {
    await saveBundle(tmp, det);
    await rename(tmp, DIR).catch(async () => rm(tmp, { recursive: true, force: true }));
  } finally {
    det.dispose();
  }
  return DIR;
}

/** `count` evaluation images (disjoint from the bundle's own splits) as PNG files' bytes. */
export async function fixturePngs(count: number, from = 0): Promise<Uint8Array<ArrayBuffer>[]> {
  const { test, s } = await splits();
  const per = 28 * 28;
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let k = 0; k < count; k++) {
    const i = s.evaluation[from + k] as number;
    const raw = Buffer.from(test.images.subarray(i * per, (i + 1) * per));
    out.push(
      new Uint8Array(
        await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } })
          .png()
          .toBuffer(),
      ),
    );
  }
  return out;
}
