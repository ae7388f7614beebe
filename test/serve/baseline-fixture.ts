// Small real baseline detector bundles for the service (and evaluate-defense) tests: a compact CNN
// M trained for one epoch on 2,000 real Fashion-MNIST training images and saved as a checkpoint,
// then `defend --detector` (jobs/defend.ts) fits STRIP (n = 8) and Frequency (width 4,
// one epoch) on 128 reserved test images and calibrates each at a 5% target FPR on 200 more.
// Built once per machine under the temp directory and reused while it still loads; the version in
// the pointer's name changes whenever the recipe does.
import { mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { manualSeed } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { fit } from "../../src/train/trainer.js";
import { recipeFor } from "../../src/train/recipes.js";
import { saveCheckpoint } from "../../src/train/checkpoint.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { openDetector } from "../../src/detectors/open.js";

// The bundles record their checkpoint's absolute path, so a fixture cannot be built aside and
// renamed: each build gets its own directory, and a pointer file (renamed into place) names the
// current one; a concurrent test process reads either the old pointer or the new one.
const POINTER = join(tmpdir(), "badexpert-serve-baseline-fixture-v3.json");
const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
/** Training images read for PNGs: past the 2,000 M was trained on, and outside the test split the bundles' splits come from. */
const PNG_FROM = 50_000;

export interface BaselineFixture {
  checkpoint: string;
  strip: string;
  frequency: string;
}

const paths = (root: string): BaselineFixture => ({
  checkpoint: join(root, "checkpoint"),
  strip: join(root, "strip"),
  frequency: join(root, "frequency"),
});

async function current(): Promise<BaselineFixture | null> {
  try {
    const f = paths((JSON.parse(await readFile(POINTER, "utf8")) as { root: string }).root);
    for (const dir of [f.strip, f.frequency]) (await openDetector(dir, { onWarning: () => undefined })).dispose();
    return f;
  } catch {
    return null;
  }
}

/** The checkpoint and the two bundle directories (built on first use). */
export async function baselineFixture(): Promise<BaselineFixture> {
  const ready = await current();
  if (ready) return ready;
  const root = await mkdtemp(join(tmpdir(), "badexpert-serve-baseline-"));
  const f = paths(root);
  try {
    manualSeed(3);
    const model = createModel("compact-cnn", spec);
    try {
      const train = await loadDataset("fashion-mnist", { split: "train" });
      await fit(
        model,
        subset(
          train,
          Int32Array.from({ length: 2000 }, (_, i) => i),
        ),
        { ...recipeFor("fashion-mnist").config, epochs: 1, seed: 0 },
        {
          normalization: { mean: preprocessing.mean, std: preprocessing.std },
          silent: true,
        },
      );
      await saveCheckpoint(f.checkpoint, model, {
        model: spec,
        dataset: { name: "fashion-mnist", trainCount: 60000, testCount: 10000 },
        preprocessing,
        classNames: train.classNames,
        training: {},
        metrics: {},
      });
    } finally {
      model.dispose();
    }
    const common = {
      checkpoint: f.checkpoint,
      splits: { reserved: 128, calibration: 200 },
      calibration: { targetFpr: 0.05 },
      seed: 0,
      log: (): void => {},
    };
    await defendCheckpoint({ ...common, detector: "strip", out: f.strip, params: { n: 8 } });
    await defendCheckpoint({ ...common, detector: "frequency", out: f.frequency, params: { width: 4, epochs: 1 } });
  } catch (e) {
    await rm(root, { recursive: true, force: true });
    throw e;
  }
  const tmp = `${POINTER}.${process.pid}`;
  await writeFile(tmp, JSON.stringify({ root }));
  await rename(tmp, POINTER);
  return f;
}

/** `count` Fashion-MNIST training images outside M's training slice, as PNG bytes. */
export async function baselinePngs(count: number, from = 0): Promise<Uint8Array<ArrayBuffer>[]> {
  const train = await loadDataset("fashion-mnist", { split: "train" });
  const per = 28 * 28;
  const out: Uint8Array<ArrayBuffer>[] = [];
  for (let k = 0; k < count; k++) {
    const i = PNG_FROM + from + k;
    const raw = Buffer.from(train.images.subarray(i * per, (i + 1) * per));
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
