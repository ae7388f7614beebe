// The reference setting on the real Fashion-MNIST training set (skipped when it is not installed).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { loadDataset } from "../../src/data/registry.js";
import { createAttack } from "../../src/attacks/index.js";
import { noLeaksAsync } from "./fixtures.js";

const FASHION = "/usr/share/datasets/fashion-mnist";

test(
  "BadNet at rate 0.003 poisons 180 of Fashion-MNIST's 60,000 images, none of the target class",
  { skip: existsSync(FASHION) ? false : `${FASHION} is not on this machine` },
  () =>
    noLeaksAsync(async () => {
      const train = await loadDataset("fashion-mnist", { split: "train" });
      const attack = createAttack(
        "badnet",
        {},
        { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" },
      );
      const p = await attack.poison(train, 0);
      assert.equal(p.poisonIndices.length, 180);
      assert.ok(p.poisonIndices.every((i) => train.labels[i] !== 0 && p.labels[i] === 0));
      let relabelled = 0;
      for (let i = 0; i < train.count; i++) if (p.labels[i] !== train.labels[i]) relabelled++;
      assert.equal(relabelled, 180);
      // The patch: rows and columns 24..26, white top-left cell.
      const i = p.poisonIndices[0] as number;
      assert.deepEqual(
        [24 * 28 + 24, 24 * 28 + 25, 26 * 28 + 26].map((px) => p.dataset.images[i * 784 + px]),
        [255, 0, 255],
      );
    }),
);
