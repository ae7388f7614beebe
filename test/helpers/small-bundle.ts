// A small but real detector bundle for end-to-end tests: a compact CNN (random weights, seeded)
// with B and M' finetuned for one epoch on 256 Fashion-MNIST test images, calibrated on 200 more,
// and a few evaluation images written as PNG files.
import { join } from "node:path";
import sharp from "sharp";
import { manualSeed } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { subset } from "../../src/data/splits.js";
import { createModel } from "../../src/models/registry.js";
import { fitBadExpert } from "../../src/defense/fit.js";
import { saveBundle } from "../../src/defense/bundle.js";
import { defenseSplits } from "../../src/defense/splits.js";
import { QUICK_FIT } from "./quick-fit.js";

export interface SmallBundle {
  bundle: string;
  /** PNG files of evaluation images (28x28 grey). */
  images: string[];
}

export async function writeSmallBundle(dir: string, imageCount = 3): Promise<SmallBundle> {
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
  const preprocessing = { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] };
  const test = await loadDataset("fashion-mnist", { split: "test" });
  const s = defenseSplits(test.count, { seed: 1, reserved: 256, calibration: 200 });
  manualSeed(2);
  const model = createModel("compact-cnn", spec);
  const det = await fitBadExpert(
    model,
    { spec, preprocessing, classNames: test.classNames },
    subset(test, s.reserved),
    subset(test, s.calibration),
    QUICK_FIT,
  );
  model.dispose();
  const bundle = join(dir, "bundle");
  try {
    await saveBundle(bundle, det);
  } finally {
    det.dispose();
  }
  const images: string[] = [];
  const per = 28 * 28;
  for (let k = 0; k < imageCount; k++) {
    const i = s.evaluation[k] as number;
    const file = join(dir, `image-${k}.png`);
    await sharp(Buffer.from(test.images.subarray(i * per, (i + 1) * per)), {
      raw: { width: 28, height: 28, channels: 1 },
    })
      .png()
      .toFile(file);
    images.push(file);
  }
  return { bundle, images };
}
