// Saliency from a hand-built "expert" whose output depends on one 4x4 pixel region only: every
// method must put its top pixels there (occlusion may spill one pixel around the region, as its
// occluder does), and nothing may leak tensors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { noGrad, tensor, tidy } from "../../src/engine/index.js";
import { Flatten, Linear, Sequential } from "../../src/nn/index.js";
import { createModel } from "../../src/models/registry.js";
import { SALIENCY_METHODS, saliencyMaps, saliencyMethod, type SaliencyMethod } from "../../src/forensics/saliency.js";
import { dilate, topShareInMask } from "../../src/forensics/regions.js";
import { Rng } from "../../src/util/rng.js";
import { noLeaks } from "../helpers/memory.js";

const H = 28;
const W = 28;
const REGION = { top: 5, left: 18, side: 4 };
const mask = new Float32Array(H * W);
for (let r = REGION.top; r < REGION.top + REGION.side; r++)
  for (let c = REGION.left; c < REGION.left + REGION.side; c++) mask[r * W + c] = 1;

/** Logit 0 = sum of the normalised pixels where `weights` is 1, logit 1 = 0: only those pixels matter. */
function regionModel(weights: Float32Array = mask): Sequential {
  const m = new Sequential(new Flatten(), new Linear(H * W, 2));
  const lin = m.at(1) as Linear;
  noGrad(() =>
    tidy(() => {
      const wts = new Float32Array(2 * H * W);
      for (let p = 0; p < H * W; p++) wts[p] = weights[p] as number;
      lin.weight.copy_(tensor(wts, { shape: [2, H * W] }));
      lin.bias?.zero_();
    }),
  );
  return m.eval();
}

/** Random images with the region brighter than the mean (so occluding or zeroing it lowers logit 0). */
function images(n: number): Float32Array {
  const rng = new Rng(3);
  const x = new Float32Array(n * H * W);
  for (let i = 0; i < x.length; i++) x[i] = mask[i % (H * W)] ? 0.85 + 0.1 * rng.next() : rng.next();
  return x;
}

const model = regionModel();
const target = { model, mean: [0.5], std: [0.25] };

for (const method of SALIENCY_METHODS.filter((m) => m !== "grad-cam" && !m.endsWith("-contrast"))) {
  test(`${method}: B's saliency lands on the only region the output depends on`, () => {
    const maps = noLeaks(() =>
      tidy(() => saliencyMaps(target, tensor(images(3), { shape: [3, 1, H, W] }), Int32Array.of(0, 0, 0), { method })),
    );
    assert.equal(maps.length, 3 * H * W);
    // An occluder of side 3 covering a pixel can reach 2 pixels further: that is occlusion's blur.
    const grown = dilate(mask, H, W, method === "occlusion" ? 2 : 0);
    for (let i = 0; i < 3; i++) {
      const map = maps.subarray(i * H * W, (i + 1) * H * W);
      assert.ok(
        map.every((v) => v >= 0 && Number.isFinite(v)),
        "non-negative, finite",
      );
      assert.equal(topShareInMask(map, mask, H, W), 1, `image ${i}: top-2% pixels inside the region`);
      // Exact zeros away from the region: the model never sees those pixels.
      for (let p = 0; p < H * W; p++)
        if (!grown[p]) assert.equal(map[p], 0, `pixel ${p} outside the region has saliency ${map[p]}`);
      const inside = Array.from(map).filter((_, p) => mask[p] === 1);
      assert.ok(
        inside.every((v) => v > 0),
        "every region pixel has saliency",
      );
      if (method !== "occlusion")
        assert.equal(topShareInMask(map, mask, H, W, { radius: 0 }), 1, "gradients stay inside the region itself");
    }
  });
}

test("contrast methods: evidence B shares with M' (the object) cancels, the trigger region B alone uses remains", () => {
  // The "object": a 6x6 block in the other corner, which both B and M' weigh twice as much as B weighs the trigger.
  const object = new Float32Array(H * W);
  for (let r = 18; r < 24; r++) for (let c = 2; c < 8; c++) object[r * W + c] = 2;
  const both = Float32Array.from(mask, (v, p) => v + (object[p] as number));
  const expert = regionModel(both);
  const auxiliary = regionModel(object);
  try {
    const x = () => tensor(images(3), { shape: [3, 1, H, W] });
    const labels = Int32Array.of(0, 0, 0);
    const plain = noLeaks(() =>
      tidy(() => saliencyMaps({ model: expert, mean: [0.5], std: [0.25] }, x(), labels, { method: "gradient" })),
    );
    // model-contrast explains M − M'; here M is B (any model that uses the trigger on top of the object).
    for (const method of ["expert-contrast", "model-contrast"] as const) {
      const maps = noLeaks(() =>
        tidy(() =>
          saliencyMaps(
            { model: expert, reference: auxiliary, suspect: expert, mean: [0.5], std: [0.25] },
            x(),
            labels,
            { method },
          ),
        ),
      );
      for (let i = 0; i < 3; i++) {
        const map = maps.subarray(i * H * W, (i + 1) * H * W);
        assert.equal(
          topShareInMask(map, mask, H, W, { radius: 0 }),
          1,
          `${method} image ${i}: top-2% pixels inside the trigger`,
        );
        for (let p = 0; p < H * W; p++)
          if (!mask[p])
            assert.ok(
              Math.abs(map[p] as number) < 1e-5,
              `${method}: pixel ${p} outside the trigger has saliency ${map[p]}`,
            );
      }
    }
    // Without the reference, B's own gradient is largest on the object: its top pixels miss the trigger.
    assert.equal(
      topShareInMask(plain.subarray(0, H * W), mask, H, W, { radius: 0 }),
      0,
      "plain gradient's top pixels are on the object",
    );
    assert.throws(
      () =>
        tidy(() =>
          saliencyMaps({ model: expert, mean: [0.5], std: [0.25] }, x(), labels, { method: "expert-contrast" }),
        ),
      /contrast methods need the auxiliary model M' as `reference`/,
    );
    assert.throws(
      () =>
        tidy(() =>
          saliencyMaps({ model: expert, reference: auxiliary, mean: [0.5], std: [0.25] }, x(), labels, {
            method: "model-contrast",
          }),
        ),
      /model-contrast needs the suspicious model M as `suspect`/,
    );
  } finally {
    expert.dispose();
    auxiliary.dispose();
  }
});

test("smoothgrad: an image's map does not depend on its batch, and the noise setting is checked", () => {
  const cnn = createModel("compact-cnn", { numClasses: 10, inChannels: 1, imageSize: 28 }).eval();
  try {
    const m = { model: cnn, mean: [0.5], std: [0.25] };
    const pixels = images(3);
    const labels = Int32Array.of(3, 7, 1);
    const batch = noLeaks(() =>
      tidy(() =>
        saliencyMaps(m, tensor(pixels, { shape: [3, 1, H, W] }), labels, { method: "smoothgrad", samples: 4 }),
      ),
    );
    const alone = noLeaks(() =>
      tidy(() =>
        saliencyMaps(m, tensor(pixels.slice(2 * H * W), { shape: [1, 1, H, W] }), labels.subarray(2), {
          method: "smoothgrad",
          samples: 4,
        }),
      ),
    );
    const third = batch.subarray(2 * H * W);
    for (let p = 0; p < H * W; p++)
      assert.ok(
        Math.abs((third[p] as number) - (alone[p] as number)) <= 1e-5 * Math.max(1, Math.abs(alone[p] as number)),
        `pixel ${p}: ${third[p]} in the batch, ${alone[p]} alone`,
      );
    // The noise matters: without it, the map is gradient × input's.
    const plain = noLeaks(() =>
      tidy(() => saliencyMaps(m, tensor(pixels, { shape: [3, 1, H, W] }), labels, { method: "gradient-x-input" })),
    );
    const noiseless = noLeaks(() =>
      tidy(() =>
        saliencyMaps(m, tensor(pixels, { shape: [3, 1, H, W] }), labels, {
          method: "smoothgrad",
          samples: 2,
          noise: 0,
        }),
      ),
    );
    for (let p = 0; p < plain.length; p++)
      assert.ok(
        Math.abs((plain[p] as number) - (noiseless[p] as number)) <= 1e-5 * Math.max(1, Math.abs(plain[p] as number)),
      );
    assert.ok(
      batch.some((v, p) => Math.abs(v - (plain[p] as number)) > 1e-6),
      "noisy copies change the map",
    );
    assert.throws(
      () =>
        tidy(() =>
          saliencyMaps(m, tensor(pixels, { shape: [3, 1, H, W] }), labels, { method: "smoothgrad", noise: 2 }),
        ),
      /noise must be in \[0, 1\] \(pixel units\), got 2/,
    );
    assert.throws(
      () =>
        tidy(() =>
          saliencyMaps(m, tensor(pixels, { shape: [3, 1, H, W] }), labels, { method: "smoothgrad", samples: 0 }),
        ),
      /samples must be a positive integer, got 0/,
    );
  } finally {
    cnn.dispose();
  }
});

test("grad-cam runs on a compact CNN (maps of the image's size, non-negative) and names the alternatives otherwise", () => {
  const cnn = createModel("compact-cnn", { numClasses: 10, inChannels: 1, imageSize: 28 }).eval();
  try {
    const maps = noLeaks(() =>
      tidy(() =>
        saliencyMaps(
          { model: cnn, mean: [0.5], std: [0.25] },
          tensor(images(2), { shape: [2, 1, H, W] }),
          Int32Array.of(3, 7),
          { method: "grad-cam" },
        ),
      ),
    );
    assert.equal(maps.length, 2 * H * W);
    assert.ok(maps.every((v) => v >= 0 && Number.isFinite(v)));
  } finally {
    cnn.dispose();
  }
  assert.throws(
    () =>
      tidy(() =>
        saliencyMaps(target, tensor(images(1), { shape: [1, 1, H, W] }), Int32Array.of(0), { method: "grad-cam" }),
      ),
    /grad-cam needs .* compact CNN only .*use gradient-x-input or occlusion/,
  );
});

test("bad arguments are refused with the expected and actual values", () => {
  noLeaks(() => {
    assert.throws(
      () => saliencyMethod("lime"),
      /saliency method 'lime' is unknown; valid methods: gradient-x-input, smoothgrad, gradient, occlusion, grad-cam, expert-contrast, model-contrast/,
    );
    assert.throws(
      () => tidy(() => saliencyMaps(target, tensor(images(2), { shape: [2, 1, H, W] }), Int32Array.of(0))),
      /saliency: 1 labels for 2 images/,
    );
    assert.throws(
      () => tidy(() => saliencyMaps(target, tensor(images(1), { shape: [1, H, W] }), Int32Array.of(0))),
      /expected images \[N, C, H, W\]/,
    );
    assert.throws(
      () =>
        tidy(() =>
          saliencyMaps(target, tensor(images(1), { shape: [1, 1, H, W] }), Int32Array.of(0), {
            method: "occlusion",
            window: 0,
          }),
        ),
      /window must be a positive integer, got 0/,
    );
    assert.throws(
      () =>
        tidy(() =>
          saliencyMaps(target, tensor(images(1), { shape: [1, 1, H, W] }), Int32Array.of(0), {
            method: "bogus" as SaliencyMethod,
          }),
        ),
      /valid methods/,
    );
  });
});

test.after(() => model.dispose());
