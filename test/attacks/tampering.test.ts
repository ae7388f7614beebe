// The model-tampering attacks (FT, SRA, TrojanNN) on small real Fashion-MNIST slices and small
// generated images: what they change in the model, what their triggers look like, determinism
// from the seed and the errors for what they cannot do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { inferenceMode, manualSeed, tidy, type Tensor } from "../../src/engine/index.js";
import type { Module } from "../../src/nn/index.js";
import { createModel } from "../../src/models/registry.js";
import { loadDataset } from "../../src/data/registry.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { subset } from "../../src/data/splits.js";
import { gatherImages, imagesToTensor } from "../../src/data/batch.js";
import {
  createAttack,
  isTamperingAttack,
  WeightEditor,
  type ImageSpec,
  type TamperingAttack,
} from "../../src/attacks/index.js";
import { TrojanNN } from "../../src/attacks/trojannn.js";
import { generated, noLeaksAsync, specOf } from "./fixtures.js";

const FASHION = "/usr/share/datasets/fashion-mnist";
const needsFashion = { skip: existsSync(FASHION) ? false : `${FASHION} is not on this machine` };
const FM_NORM = { mean: [0.286], std: [0.353] };
const FM = { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" };

function tampering(name: string, params: Record<string, string | number>, spec: ImageSpec = FM): TamperingAttack {
  const a = createAttack(name, params, spec);
  assert.ok(isTamperingAttack(a), `${name} is a tampering attack`);
  return a;
}

/** Copies of every state tensor. */
function snapshot(model: Module): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of model.stateDict())
    out.set(
      k,
      tidy(() => Float32Array.from(t.to({ dtype: "float32" }).data() as Float32Array)),
    );
  return out;
}

/** Flat indices that differ, per key (keys without changes are left out). */
function changes(a: Map<string, Float32Array>, b: Map<string, Float32Array>): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [k, x] of a) {
    const y = b.get(k) as Float32Array;
    const idx: number[] = [];
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) idx.push(i);
    if (idx.length) out.set(k, idx);
  }
  return out;
}

function logits(model: Module, x: Tensor, norm = FM_NORM): Float32Array {
  return inferenceMode(() =>
    tidy(() => model.forward(x.sub(norm.mean[0] as number).div(norm.std[0] as number)).data() as Float32Array),
  );
}

async function fashionSlice(split: "train" | "test", n: number): Promise<ImageDataset> {
  const ds = await loadDataset("fashion-mnist", { split });
  return subset(
    ds,
    Int32Array.from({ length: n }, (_, i) => i),
  );
}

/** A compact CNN for 28x28 grey images, initialised from `seed`, in eval mode. */
function compactCnn(seed: number): Module {
  manualSeed(seed);
  return createModel("compact-cnn", { numClasses: 10, inChannels: 1, imageSize: 28 }).eval();
}

function batchOf(ds: ImageDataset): Tensor {
  return imagesToTensor(
    gatherImages(
      ds,
      Int32Array.from({ length: ds.count }, (_, i) => i),
    ),
    ds.count,
    ds.height,
    ds.width,
    ds.channels,
  );
}

test(
  "SRA on the compact CNN changes only its slice, fires on the trigger and stays silent on clean images",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const model = compactCnn(5);
      try {
        const test = await fashionSlice("test", 64);
        const sra = tampering("sra", { targetClass: 3 });
        const before = snapshot(model);
        const r = await sra.tamper({ model, normalization: FM_NORM }, 0);
        const d = r.details as { conv1Channel: number; conv2Channel: number; hiddenNeuron: number };
        const [k1, k2, k3] = [d.conv1Channel, d.conv2Channel, d.hiddenNeuron];
        const allowed: Record<string, (i: number) => boolean> = {
          "features.0.weight": (i) => Math.floor(i / 9) === k1,
          "features.1.weight": (i) => i === k1,
          "features.1.bias": (i) => i === k1,
          "features.1.running_mean": (i) => i === k1,
          "features.1.running_var": (i) => i === k1,
          "features.4.weight": (i) => Math.floor(i / (32 * 9)) === k2 || Math.floor(i / 9) % 32 === k1,
          "features.5.weight": (i) => i === k2,
          "features.5.bias": (i) => i === k2,
          "features.5.running_mean": (i) => i === k2,
          "features.5.running_var": (i) => i === k2,
          "classifier.1.weight": (i) => Math.floor(i / 3136) === k3 || Math.floor((i % 3136) / 49) === k2,
          "classifier.1.bias": (i) => i === k3,
          "classifier.4.weight": (i) => i % 128 === k3,
        };
        const changed = changes(before, snapshot(model));
        for (const [k, idx] of changed) {
          const ok = allowed[k];
          assert.ok(ok, `${k} must not change (changed at ${idx.length} places)`);
          assert.ok(idx.every(ok), `${k}: a change outside the replaced slice (e.g. index ${idx.find((i) => !ok(i))})`);
        }
        assert.ok(
          changed.has("features.0.weight") && changed.has("classifier.4.weight"),
          "the detector and the target connection are written",
        );
        // Cross connections are cut: the hidden neuron reads only channel k2, and no other neuron reads it.
        const ed = new WeightEditor(model);
        const fc1 = ed.get("classifier.1.weight").data;
        for (let i = 0; i < fc1.length; i++) {
          const o = Math.floor(i / 3136);
          const ch = Math.floor((i % 3136) / 49);
          if ((o === k3) !== (ch === k2) && fc1[i] !== 0)
            assert.fail(`classifier.1.weight[${o}, channel ${ch}] must be 0`);
        }
        const fc2 = ed.get("classifier.4.weight").data;
        for (let o = 0; o < 10; o++)
          assert.equal(fc2[o * 128 + k3] !== 0, o === 3, `only the target logit reads neuron ${k3}`);
        // The same model without the subnet's last connection: equal logits on clean images, the
        // trigger adds at least `boost` to the target logit.
        const silent = compactCnn(0);
        silent.loadStateDict(model.stateDict());
        const cut = new WeightEditor(silent);
        const w = cut.get("classifier.4.weight");
        for (let o = 0; o < 10; o++) w.data[o * 128 + k3] = 0;
        cut.commit();
        tidy(() => {
          const x = batchOf(test);
          assert.deepEqual(logits(model, x), logits(silent, x), "the subnet is silent on 64 clean test images");
          const t = sra.applyTrigger(x);
          const [a, b] = [logits(model, t), logits(silent, t)];
          for (let n = 0; n < test.count; n++) {
            assert.ok(
              (a[n * 10 + 3] as number) - (b[n * 10 + 3] as number) >= 50 - 1e-3,
              `image ${n}: the trigger adds at least boost 50`,
            );
            const row = Array.from(a.subarray(n * 10, n * 10 + 10));
            assert.equal(row.indexOf(Math.max(...row)), 3, `image ${n} is sent to the target`);
          }
        });
        silent.dispose();
        assert.equal(r.poisonCount, 0);
        assert.deepEqual(r.params, sra.params);
      } finally {
        model.dispose();
      }
    }),
);

test("SRA on ResNet-18 rewrites one residual-stream channel through every block and drives the target", () =>
  noLeaksAsync(async () => {
    manualSeed(6);
    const model = createModel("resnet18", { numClasses: 10, inChannels: 3, imageSize: 32 });
    model.eval();
    try {
      const spec = { numClasses: 10, height: 32, width: 32, channels: 3 };
      const norm = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
      const sra = tampering("sra", { corner: 3, margin: 2 }, spec);
      const before = snapshot(model);
      const r = await sra.tamper({ model, normalization: norm }, 0);
      const k = (r.details as { streamChannel: number }).streamChannel;
      assert.equal((r.details as { blocks: number }).blocks, 8);
      for (const [key, idx] of changes(before, snapshot(model))) {
        const shape = model.stateDict().get(key)?.shape as number[];
        const inner = shape.slice(2).reduce((a, b) => a * b, 1);
        const ok = (i: number): boolean => {
          if (shape.length === 1) return i === k;
          const o = Math.floor(i / ((shape[1] as number) * inner));
          const c = Math.floor(i / inner) % (shape[1] as number);
          if (key === "linear.weight") return c === k;
          if (key === "conv1.weight") return o === k;
          return o === k || c === k;
        };
        assert.ok(idx.every(ok), `${key}: a change outside channel ${k}`);
      }
      // Dark images (no checkerboard anywhere) against the same images with the trigger top-left.
      const ds = generated(4, 32, 32, 3);
      ds.images.fill(10);
      tidy(() => {
        const x = batchOf(ds);
        const fwd = (t: Tensor) => inferenceMode(() => model.forward(t.sub(0.5).div(0.25)).data() as Float32Array);
        const [a, b] = [fwd(x), fwd(sra.applyTrigger(x))];
        for (let n = 0; n < 4; n++) {
          assert.ok(
            (b[n * 10] as number) - (a[n * 10] as number) >= 50 - 1e-2,
            `image ${n}: target logit up by at least boost`,
          );
          const row = Array.from(b.subarray(n * 10, n * 10 + 10));
          assert.equal(row.indexOf(Math.max(...row)), 0);
        }
      });
    } finally {
      model.dispose();
    }
  }));

test("SRA: the trigger is a 3x3-pixel checkerboard in the chosen corner at every image size; other models are refused", async () => {
  const sra = tampering("sra", { margin: 0, corner: 2 }, { numClasses: 10, height: 64, width: 64, channels: 3 });
  const mask = (sra as unknown as { triggerCanvas(): { mask: Float32Array } }).triggerCanvas().mask;
  const on: number[] = [];
  mask.forEach((m, p) => m === 1 && on.push(p));
  assert.deepEqual(on, [61, 62, 63, 125, 126, 127, 189, 190, 191]);
  manualSeed(1);
  const vgg = createModel("vgg16-bn", { numClasses: 10, inChannels: 3, imageSize: 32 });
  try {
    await assert.rejects(
      tampering("sra", {}, { numClasses: 10, height: 32, width: 32, channels: 3 }).tamper(
        { model: vgg, normalization: { mean: [0, 0, 0], std: [1, 1, 1] } },
        0,
      ),
      /attack 'sra': subnet replacement is implemented for compact-cnn and resnet18; the model is a VGG/,
    );
  } finally {
    vgg.dispose();
  }
  await assert.rejects(
    sra.poison(generated(10, 64, 64, 3), 0),
    /attack 'sra' tampers with a trained model rather than poisoning a training set: use `badexpert attack apply --attack sra/,
  );
  assert.throws(
    () => createAttack("sra", { threshold: 1 }, FM),
    /attack 'sra': parameter 'threshold' must be a number > 0 and <= 0.95, got 1/,
  );
  assert.throws(() => createAttack("sra", { boost: 0 }, FM), /parameter 'boost' must be a number > 0/);
});

test(
  "TrojanNN: the optimised trigger excites the most connected neurons, is deterministic and is recorded as bytes",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const model = compactCnn(7);
      try {
        const a = tampering("trojannn", { steps: 40, neurons: 2, size: 6, count: 300 });
        assert.equal(a.hasTrigger(), false);
        assert.throws(
          () => tidy(() => a.applyTrigger(batchOf(generated(1, 28, 28, 1)))),
          /the trigger is optimised against a model by `badexpert attack apply`/,
        );
        const neurons = TrojanNN.selectNeurons(model, 2);
        const sums = new WeightEditor(model).get("classifier.4.weight");
        const conn = (j: number) =>
          Array.from({ length: 10 }, (_, o) => Math.abs(sums.data[o * 128 + j] as number)).reduce((x, y) => x + y, 0);
        const all = Array.from({ length: 128 }, (_, j) => conn(j)).sort((x, y) => y - x);
        assert.deepEqual(neurons.map(conn), all.slice(0, 2), "the two largest summed |outgoing weights|");
        const o1 = (a as TrojanNN).optimiseTrigger(model, FM_NORM, neurons, 3);
        const o2 = (a as TrojanNN).optimiseTrigger(model, FM_NORM, neurons, 3);
        assert.deepEqual(o1.values, o2.values, "same seed, same trigger");
        assert.equal(o1.values.length, 36);
        assert.ok(
          o1.values.every((v) => v >= 0 && v <= 1 && Math.abs(v * 255 - Math.round(v * 255)) < 1e-3),
          "bytes in [0, 1]",
        );
        // An untrained model's activations are small; 40 steps must still raise them clearly.
        assert.ok(o1.after > 1.5 * Math.abs(o1.before), `activation raised (${o1.before} -> ${o1.after})`);
        assert.ok(
          model.parameters().every((p) => p.grad === null),
          "no gradient left on the model",
        );

        const train = await fashionSlice("train", 300);
        const before = snapshot(model);
        const r = await a.tamper({ model, normalization: FM_NORM, data: train }, 3);
        assert.equal(r.poisonCount, 30, "10% of the 300-image slice");
        assert.deepEqual(r.details.neurons, neurons);
        const bytes = String(r.params.trigger).split(",").map(Number);
        assert.deepEqual(
          bytes,
          Array.from(o1.values, (v) => Math.round(v * 255)),
          "the recorded trigger is the optimised one",
        );
        assert.ok(changes(before, snapshot(model)).size > 0, "retraining changed the model");
        // The test-time attack rebuilt from the record pastes the trigger in the bottom-right 6x6 square, one pixel in.
        const rebuilt = tampering("trojannn", r.params as Record<string, string | number>);
        tidy(() => {
          const x = batchOf(generated(2, 28, 28, 1));
          const t = rebuilt.applyTrigger(x).data() as Float32Array;
          const px = (n: number, row: number, col: number) => t[n * 784 + row * 28 + col] as number;
          assert.ok(Math.abs(px(1, 21, 21) - (bytes[0] as number) / 255) < 1e-6);
          assert.ok(Math.abs(px(1, 26, 26) - (bytes[35] as number) / 255) < 1e-6);
          assert.equal(px(0, 27, 27), (x.data() as Float32Array)[27 * 28 + 27], "outside the mask: unchanged");
        });
      } finally {
        model.dispose();
      }
    }),
);

test("TrojanNN and FT reject bad parameters with the parameter, the expected and the actual", () => {
  assert.throws(
    () => createAttack("trojannn", { trigger: "1,2,3" }, FM),
    /attack 'trojannn': parameter 'trigger' must list 64 bytes \(1 channels x 8 x 8\), got 3/,
  );
  assert.throws(
    () => createAttack("trojannn", { trigger: "1,2,300" }, FM),
    /parameter 'trigger' must be a comma-separated list of integers, each >= 0 and <= 255, got "1,2,300"/,
  );
  assert.throws(
    () => createAttack("trojannn", { size: 28 }, FM),
    /a 28x28 mask 1 pixels from the edges does not fit a 28x28 image \(parameters 'size' and 'margin'\)/,
  );
  assert.throws(() => createAttack("trojannn", { steps: 0 }, FM), /parameter 'steps' must be an integer >= 1/);
  assert.throws(
    () => createAttack("ft", { epochs: 0 }, FM),
    /attack 'ft': parameter 'epochs' must be an integer >= 1 and <= 1000, got 0/,
  );
  assert.throws(() => createAttack("ft", { lr: "-1" }, FM), /parameter 'lr' must be a number > 0 and <= 10, got "-1"/);
  assert.throws(() => createAttack("ft", { count: 0 }, FM), /parameter 'count' must be an integer >= 1/);
});

test("FT finetunes on a seeded slice with 10% BadNet-patched samples: same seed, same model", needsFashion, () =>
  noLeaksAsync(async () => {
    const train = await fashionSlice("train", 400);
    const run = async (seed: number) => {
      const model = compactCnn(9);
      try {
        const a = tampering("ft", { count: 200, epochs: 1 });
        assert.equal(a.hasTrigger(), true);
        const before = snapshot(model);
        const r = await a.tamper({ model, normalization: FM_NORM, data: train }, seed);
        assert.equal(r.poisonCount, 20);
        assert.equal(model.training, false, "left in eval mode");
        const after = snapshot(model);
        assert.ok(changes(before, after).size > 0);
        return after;
      } finally {
        model.dispose();
      }
    };
    const [a, b, c] = [await run(1), await run(1), await run(2)];
    assert.equal(changes(a, b).size, 0, "same seed: identical weights");
    assert.ok(changes(a, c).size > 0, "another seed: another slice");
    const ft = tampering("ft", { count: 500 });
    const m = compactCnn(1);
    try {
      await assert.rejects(
        ft.tamper({ model: m, normalization: FM_NORM, data: train }, 0),
        /parameter 'count' asks for 500 finetuning images, the training set has 400/,
      );
      await assert.rejects(
        ft.tamper({ model: m, normalization: FM_NORM }, 0),
        /attack 'ft' finetunes on clean training images: pass ctx.data/,
      );
    } finally {
      m.dispose();
    }
    assert.deepEqual(specOf(train).channels, 1);
  }),
);

test("TrojanNN on ResNet-18 optimises on the pooled features; other models are refused", () =>
  noLeaksAsync(async () => {
    const spec = { numClasses: 10, height: 32, width: 32, channels: 3 };
    const norm = { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
    manualSeed(8);
    const model = createModel("resnet18", { numClasses: 10, inChannels: 3, imageSize: 32 }).eval();
    const vgg = createModel("vgg16-bn", { numClasses: 10, inChannels: 3, imageSize: 32 });
    try {
      const a = tampering("trojannn", { steps: 5, neurons: 3 }, spec) as TrojanNN;
      const neurons = TrojanNN.selectNeurons(model, 3);
      assert.equal(new Set(neurons).size, 3);
      assert.ok(neurons.every((n) => n >= 0 && n < 512));
      const o = a.optimiseTrigger(model, norm, neurons, 0);
      assert.equal(o.values.length, 3 * 8 * 8);
      assert.ok(o.after > o.before, `activation raised (${o.before} -> ${o.after})`);
      assert.throws(
        () => TrojanNN.selectNeurons(vgg, 1),
        /attack 'trojannn': the trigger optimisation is implemented for compact-cnn and resnet18; the model is a VGG/,
      );
      assert.throws(
        () => TrojanNN.selectNeurons(model, 600),
        /parameter 'neurons' asks for 600 neurons, the hidden layer has 512/,
      );
    } finally {
      model.dispose();
      vgg.dispose();
    }
  }));
