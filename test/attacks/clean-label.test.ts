// Clean-Label: PGD against a clean model within the ε-ball, then corner checkerboards; labels kept.
import { test } from "node:test";
import assert from "node:assert/strict";
import { F, manualSeed, tensor, tidy } from "../../src/engine/index.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { gatherImages, imagesToTensor } from "../../src/data/batch.js";
import { createAttack, pgdPerturb } from "../../src/attacks/index.js";
import { CleanLabel } from "../../src/attacks/clean-label.js";
import { Rng } from "../../src/util/rng.js";
import { noLeaks } from "../helpers/memory.js";
import { generated, noLeaksAsync, specOf } from "./fixtures.js";

const NORM = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

function linearModel(): Sequential {
  manualSeed(3);
  return new Sequential(new Flatten(), new Linear(3 * 16 * 16, 10));
}

test("poisoning without a clean model says that one is needed", async () => {
  const train = generated(100, 16, 16, 3);
  const a = createAttack("clean-label", {}, specOf(train));
  await assert.rejects(
    a.poison(train, 0),
    /attack 'clean-label' needs a clean model to craft its PGD perturbations: pass ctx.cleanModel/,
  );
  const model = linearModel();
  try {
    await assert.rejects(a.poison(train, 0, { cleanModel: model }), /ctx.normalization .* is required/);
    await assert.rejects(
      a.poison(train, 0, { cleanModel: model, normalization: { mean: [0.5], std: [1] } }),
      /needs 3 mean and std values/,
    );
  } finally {
    model.dispose();
  }
});

test("PGD stays in the eps-ball and [0, 1], raises the clean model's loss, and leaves the model as it was", () => {
  const model = linearModel();
  try {
    noLeaks(() =>
      tidy(() => {
        const ds = generated(8, 16, 16, 3);
        const x = imagesToTensor(
          gatherImages(
            ds,
            Int32Array.from({ length: 8 }, (_, i) => i),
          ),
          8,
          16,
          16,
          3,
        );
        const labels = Int32Array.from(ds.labels);
        model.train();
        const eps = 8 / 255;
        const adv = pgdPerturb(model, x, labels, {
          eps,
          steps: 5,
          stepSize: 2 / 255,
          normalization: NORM,
          rng: new Rng(1),
        });
        assert.ok(model.training, "the model's mode is restored");
        assert.ok(
          model.parameters().every((p) => p.grad === null),
          "parameter gradients stay untouched",
        );
        const d = adv.sub(x).abs().max().item();
        assert.ok(d <= eps + 1e-6 && d > eps / 2, `perturbation ${d} must be within eps ${eps} and use it`);
        assert.ok(adv.min().item() >= 0 && adv.max().item() <= 1);
        const y = tensor(BigInt64Array.from(labels, (v) => BigInt(v)));
        const loss = (t: typeof x) => F.crossEntropy(model.forward(t.sub(0.5).div(0.25)), y).item();
        assert.ok(loss(adv) > loss(x) + 0.1, `PGD must raise the loss (${loss(x)} → ${loss(adv)})`);
        const none = pgdPerturb(model, x, labels, { eps, steps: 0, stepSize: 2 / 255, normalization: NORM });
        assert.equal(none.sub(x).abs().max().item(), 0);
      }),
    );
  } finally {
    model.dispose();
  }
});

test("poisoned target-class images: within eps of the original outside the corners, patches in the corners, labels kept", async () => {
  const model = linearModel();
  try {
    await noLeaksAsync(async () => {
      const train = generated(200, 16, 16, 3);
      const a = createAttack("clean-label", { rate: 0.05, steps: 3 }, specOf(train));
      assert.ok(a instanceof CleanLabel);
      const p = await a.poison(train, 4, { cleanModel: model, normalization: NORM });
      assert.equal(p.poisonIndices.length, 10);
      assert.ok(
        p.poisonIndices.every((i) => train.labels[i] === 0),
        "only target-class images are poisoned",
      );
      assert.deepEqual(p.labels, train.labels, "labels are kept");
      assert.equal(p.coverIndices.length, 0);
      const per = 16 * 16 * 3;
      const mask = a.canvas.mask;
      let maxOutside = 0;
      let changedOutside = 0;
      for (const i of p.poisonIndices) {
        for (let q = 0; q < per; q++) {
          const pix = Math.floor(q / 3); // NHWC: pixel index = (row * width + col)
          const ch = q % 3;
          const got = p.dataset.images[i * per + q] as number;
          if (mask[pix] === 1) assert.equal(got, Math.round(255 * (a.canvas.pattern[ch * 256 + pix] as number)));
          else {
            const diff = Math.abs(got - (train.images[i * per + q] as number));
            maxOutside = Math.max(maxOutside, diff);
            if (diff > 0) changedOutside++;
          }
        }
      }
      assert.ok(maxOutside <= 16 + 1, `perturbation of ${maxOutside}/255 exceeds 16/255 (plus rounding)`);
      assert.ok(changedOutside > per, "PGD perturbed the images outside the patches");
      const again = await a.poison(train, 4, { cleanModel: model, normalization: NORM });
      assert.deepEqual(again.dataset.images, p.dataset.images, "the random start is seeded by the poisoning seed");
    });
  } finally {
    model.dispose();
  }
});
