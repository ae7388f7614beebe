// Sleeper Agent on small real Fashion-MNIST slices with a few crafting steps and a one-epoch
// surrogate (these tests check the mechanics; docs/attacks.md says how it takes): the budget and
// range of the perturbations, clean labels, only the selected target-class images changed, the
// gradient alignment rising while crafting, determinism, the stored perturbations rebuilding the
// same set, the source-specific poisoned test set, and bad parameters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gradients, tensor, tidy } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { subset } from "../../src/data/splits.js";
import { gatherImages, imagesToTensor } from "../../src/data/batch.js";
import {
  AttackParamError,
  SleeperAgent,
  applyCrafted,
  artifactsDigest,
  craftingRate,
  createAttack,
  loadArtifacts,
  retrainSteps,
  saveArtifacts,
  shifted,
  SLEEPER_DELTAS,
} from "../../src/attacks/index.js";
import { runTraining } from "../../src/jobs/train.js";
import { recipeFor } from "../../src/train/recipes.js";
import { changedImages, noLeaksAsync } from "./fixtures.js";

const FASHION = "/usr/share/datasets/fashion-mnist";
const needsFashion = { skip: existsSync(FASHION) ? false : `${FASHION} is not on this machine` };
const FM = { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" };
// 12 poisons out of 600 images, a 300-image attacker slice, 10 crafting steps.
const FAST = { rate: 0.02, count: 300, sourceCount: 20, steps: 10, surrogateEpochs: 1, retrains: 0 };

async function fashionSlice(split: "train" | "test", n: number): Promise<ImageDataset> {
  const ds = await loadDataset("fashion-mnist", { split });
  return subset(
    ds,
    Int32Array.from({ length: n }, (_, i) => i),
  );
}

function sleeper(over: Record<string, string | number | boolean> = {}): SleeperAgent {
  const a = createAttack("sleeper-agent", { ...FAST, ...over }, FM);
  assert.ok(a instanceof SleeperAgent);
  return a;
}

test(
  "sleeper-agent: clean-label poisons within eps on selected target-class images only; alignment rises; deterministic",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const train = await fashionSlice("train", 600);
      const a = sleeper();
      const p1 = await a.poison(train, 3);
      const trace = a.alignmentTrace;
      const p2 = await sleeper().poison(train, 3);
      assert.equal(p1.poisonIndices.length, 12, "round(0.02 * 600) poisons");
      for (const i of p1.poisonIndices) assert.equal(train.labels[i], 0, "poisons are target-class images");
      assert.deepEqual(p1.labels, train.labels, "clean label: no label changes");
      assert.deepEqual(p1.trueLabels, train.labels);
      assert.equal(p1.coverIndices.length, 0);
      // Only the poisons change, each by at most round(255 * 16/255) = 16 levels, and most of them do.
      const changed = changedImages(train, p1.dataset);
      const poison = new Set(p1.poisonIndices);
      for (const i of changed) assert.ok(poison.has(i), `image ${i} changed but is not a poison`);
      assert.ok(changed.length >= 10, `most poisons are perturbed (${changed.length} of 12)`);
      let maxDiff = 0;
      for (let k = 0; k < train.images.length; k++)
        maxDiff = Math.max(maxDiff, Math.abs((p1.dataset.images[k] as number) - (train.images[k] as number)));
      assert.ok(maxDiff <= 16, `perturbation ${maxDiff}/255 exceeds eps 16/255`);
      assert.ok(maxDiff >= 8, `the perturbation uses the budget (max ${maxDiff}/255)`);
      // Gradient alignment (cosine over all parameters) rises while crafting.
      assert.equal(trace.length, 10);
      const d = p1.details ?? {};
      assert.equal(d.alignmentStart, trace[0]);
      assert.equal(d.alignmentEnd, trace[9]);
      assert.ok((trace[0] as number) > -1 && (trace[9] as number) < 1);
      assert.ok(
        (trace[9] as number) > (trace[0] as number) + 0.02,
        `alignment ${trace[0]} -> ${trace[9]} does not rise`,
      );
      assert.ok(Number.isNaN(d.surrogateAttackRate), "no retraining, no surrogate attack rate");
      assert.ok(
        (d.surrogateCleanAccuracy as number) > 0.3,
        `the surrogate learns something (${d.surrogateCleanAccuracy})`,
      );
      assert.equal(d.maxPerturbation, maxDiff / 255);
      // Determinism from the seed; the recorded digest is the artefacts'.
      assert.deepEqual(p2.dataset.images, p1.dataset.images, "the same seed crafts the same poisons");
      assert.deepEqual(p2.poisonIndices, p1.poisonIndices);
      assert.ok(p1.artifacts);
      assert.equal(p1.params?.poisonSha256, artifactsDigest(p1.artifacts));
      assert.match(String(p1.params?.poisonSha256), /^[0-9a-f]{64}$/);
    }),
);

test(
  "sleeper-agent: data selection picks other images than a random draw; retraining measures the surrogate's attack rate; progress goes to the log hook",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const train = await fashionSlice("train", 600);
      const random = await sleeper({ selection: false, steps: 1 }).poison(train, 3);
      const selected = await sleeper({ steps: 1 }).poison(train, 3);
      for (const i of random.poisonIndices) assert.equal(train.labels[i], 0);
      assert.notDeepEqual(random.poisonIndices, selected.poisonIndices);
      const lines: string[] = [];
      const a = sleeper({ steps: 4, retrains: 1 });
      const retrained = await a.poison(train, 3, { log: (l) => lines.push(l) });
      const rate = retrained.details?.surrogateAttackRate as number;
      assert.ok(rate >= 0 && rate <= 1, `surrogate attack rate ${rate} after one retraining`);
      // Every step of a 4-step crafting is reported, in order, with its alignment and the time left.
      const steps = lines.flatMap((l) => {
        const m = /^sleeper-agent: step (\d+)\/4 alignment (-?[0-9.]+) lr [0-9.e-]+ \[\d+ s, about \d+ s left\]$/.exec(
          l,
        );
        return m ? [[Number(m[1]), Number(m[2])] as const] : [];
      });
      assert.deepEqual(
        steps.map(([i]) => i),
        [1, 2, 3, 4],
        lines.join("\n"),
      );
      assert.deepEqual(
        steps.map(([, c]) => c.toFixed(4)),
        a.alignmentTrace.map((c) => c.toFixed(4)),
        "the logged alignments are the trace's",
      );
      const retrainAt = lines.findIndex((l) => /retraining the surrogate .* \(before step 3\/4\)/.test(l));
      assert.ok(retrainAt > 0, lines.join("\n"));
      assert.match(
        lines[retrainAt + 1] ?? "",
        new RegExp(
          `surrogate retrained: accuracy [0-9.]+%, patched source images → target ${(100 * rate).toFixed(1)}%`,
        ),
      );
      assert.match(
        lines[0] ?? "",
        /^sleeper-agent: surrogate trained on 300 attacker images, accuracy [0-9.]+% \[\d+ s\]$/,
      );
      assert.match(
        lines[1] ?? "",
        /^sleeper-agent: 12 poisons chosen \(largest gradient norm\) among \d+ target-class images/,
      );
    }),
);

test("sleeper-agent: the train job routes the crafting's progress to its log", needsFashion, () =>
  noLeaksAsync(async () => {
    const dir = await mkdtemp(join(tmpdir(), "badexpert-sleeper-train-"));
    try {
      const lines: string[] = [];
      await runTraining({
        dataset: "fashion-mnist",
        model: "compact-cnn",
        config: { ...recipeFor("fashion-mnist").config, epochs: 1, seed: 0 },
        out: join(dir, "ckpt"),
        limit: 600,
        attack: { name: "sleeper-agent", params: { ...FAST, steps: 2 } },
        silent: true,
        log: (l) => lines.push(l),
      });
      const steps = lines.flatMap((l) => /^sleeper-agent: step (\d+)\/2 alignment/.exec(l)?.[1] ?? []);
      assert.deepEqual(steps, ["1", "2"], lines.join("\n"));
      assert.ok(lines.some((l) => l.startsWith("sleeper-agent: surrogate trained on 300 attacker images")));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }),
);

test(
  "sleeper-agent: the stored perturbations rebuild the same poisoned set without crafting, checked against the digest",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const train = await fashionSlice("train", 600);
      const a = sleeper({ steps: 3 });
      const p = await a.poison(train, 5);
      assert.ok(p.artifacts && p.params);
      const dir = await mkdtemp(join(tmpdir(), "badexpert-sleeper-"));
      try {
        await saveArtifacts(dir, p.artifacts);
        const stored = await loadArtifacts(dir, String(p.params.poisonSha256));
        const again = createAttack("sleeper-agent", p.params, FM) as SleeperAgent;
        const r = applyCrafted(again, train, stored);
        assert.deepEqual(r.dataset.images, p.dataset.images);
        assert.deepEqual(r.poisonIndices, p.poisonIndices);
        assert.deepEqual(r.labels, train.labels);
        const other = createAttack("sleeper-agent", { ...p.params, poisonSha256: "a".repeat(64) }, FM) as SleeperAgent;
        assert.throws(
          () => applyCrafted(other, train, stored),
          /the given perturbations have SHA-256 [0-9a-f]{64}, parameter 'poisonSha256' records a{64}/,
        );
        const bad = new Map(stored);
        const deltas = stored.get(SLEEPER_DELTAS);
        assert.ok(deltas);
        bad.set(SLEEPER_DELTAS, { data: deltas.data.map(() => 300), shape: deltas.shape });
        assert.throws(() => applyCrafted(sleeper(), train, bad), /outside the bytes 0\.\.255/);
        assert.throws(() => applyCrafted(sleeper(), train, new Map()), /need 'indices' and 'deltas'/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
);

test(
  "sleeper-agent: the poisoned test set is the source class with the patch, labelled as the target",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const testSet = await fashionSlice("test", 200);
      const a = sleeper({ sourceClass: 3, targetClass: 7 });
      const set = a.poisonedTestSet(testSet);
      const sources = testSet.labels.filter((y) => y === 3).length;
      assert.ok(sources > 5);
      assert.equal(set.dataset.count, sources);
      assert.ok(set.trueLabels.every((y) => y === 3));
      assert.ok(set.targetLabels.every((y) => y === 7));
      // The patch: 8x8 pixels, 1 pixel in from the bottom-right corner, black or white; the rest untouched.
      const per = 28 * 28;
      const row = set.sourceIndices[0] as number;
      const img = set.dataset.images.subarray(0, per);
      const orig = testSet.images.subarray(row * per, (row + 1) * per);
      for (let i = 0; i < 28; i++) {
        for (let j = 0; j < 28; j++) {
          const inPatch = i >= 19 && i < 27 && j >= 19 && j < 27;
          const v = img[i * 28 + j] as number;
          if (inPatch) assert.ok(v === 0 || v === 255, `patch pixel (${i}, ${j}) is ${v}`);
          else assert.equal(v, orig[i * 28 + j], `pixel (${i}, ${j}) outside the patch changed`);
        }
      }
      // The trigger does not depend on the poisoning seed or on the instance.
      tidy(() => {
        const x = imagesToTensor(gatherImages(testSet, [0, 1]), 2, 28, 28, 1);
        assert.deepEqual(a.applyTrigger(x).data(), sleeper({ sourceClass: 3, targetClass: 7 }).applyTrigger(x).data());
      });
    }),
);

test("sleeper-agent: the schedules (learning-rate drops, retraining steps)", () => {
  assert.deepEqual(
    [0, 99, 100, 149, 150, 200, 249].map((s) => craftingRate(0.1, s, 250)),
    [0.1, 0.1, 0.01, 0.01, 0.001, 0.0001, 0.0001],
  );
  assert.deepEqual(retrainSteps(4, 250), [50, 100, 150, 200]);
  assert.deepEqual(retrainSteps(2, 250), [83, 166]);
  assert.deepEqual(retrainSteps(0, 250), []);
  assert.deepEqual(retrainSteps(5, 2), [1], "no retraining twice at the same step, none at step 0");
});

test(
  "sleeper-agent: the crafting's shift moves images with zero padding, differentiably; 'shift' changes the poisons",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      tidy(() => {
        const x = tensor(
          Float32Array.from({ length: 9 }, (_, i) => i + 1),
          { shape: [1, 1, 3, 3] },
        ).requiresGrad_(true);
        assert.deepEqual(
          Array.from(shifted(x, [1, 0]).data() as Float32Array),
          [0, 0, 0, 1, 2, 3, 4, 5, 6],
          "one row down",
        );
        assert.deepEqual(
          Array.from(shifted(x, [0, -1]).data() as Float32Array),
          [2, 3, 0, 5, 6, 0, 8, 9, 0],
          "one column left",
        );
        assert.deepEqual(Array.from(shifted(x, [-2, 2]).data() as Float32Array), [0, 0, 7, 0, 0, 0, 0, 0, 0]);
        assert.equal(shifted(x, [0, 0]), x, "no shift, the same tensor");
        const [g] = gradients([shifted(x, [1, 1]).sum()], [x]);
        assert.deepEqual(
          Array.from(g?.data() as Float32Array),
          [1, 1, 0, 1, 1, 0, 0, 0, 0],
          "the gradient reaches the pixels kept in the frame",
        );
      });
      const train = await fashionSlice("train", 600);
      const plain = await sleeper({ steps: 2 }).poison(train, 3);
      const moved = await sleeper({ steps: 2, shift: 2 }).poison(train, 3);
      assert.deepEqual(moved.poisonIndices, plain.poisonIndices, "the shift plays no part in the selection");
      assert.notDeepEqual(
        moved.dataset.images,
        plain.dataset.images,
        "crafting under shifts crafts other perturbations",
      );
      assert.deepEqual(
        (await sleeper({ steps: 2, shift: 2 }).poison(train, 3)).dataset.images,
        moved.dataset.images,
        "deterministic from the seed",
      );
    }),
);

test("sleeper-agent: bad parameters are rejected before any work, naming the parameter", async () => {
  const train = await fashionSlice("train", 100).catch(() => null);
  assert.throws(
    () => createAttack("sleeper-agent", { sourceClass: 0 }, FM),
    /'sourceClass' must differ from targetClass \(0\)/,
  );
  assert.throws(
    () => createAttack("sleeper-agent", { sourceClass: 10 }, FM),
    /'sourceClass' must be a class in 0\.\.9, got 10/,
  );
  assert.throws(
    () => createAttack("sleeper-agent", { eps: 0 }, FM),
    /parameter 'eps' must be a number > 0 and <= 1, got 0/,
  );
  assert.throws(() => createAttack("sleeper-agent", { steps: 0 }, FM), /parameter 'steps' must be an integer >= 1/);
  assert.throws(
    () => createAttack("sleeper-agent", { selection: "maybe" }, FM),
    /parameter 'selection' must be true or false/,
  );
  assert.throws(
    () => createAttack("sleeper-agent", { shift: 9 }, FM),
    /parameter 'shift' must be an integer >= 0 and <= 8, got 9/,
  );
  assert.throws(
    () => createAttack("sleeper-agent", { patch: 3 }, FM),
    /unknown parameter 'patch'; valid: targetClass, sourceClass, rate, eps/,
  );
  assert.throws(() => createAttack("sleeper-agent", { cells: 30 }, FM), /a 30x30 trigger at row -3/);
  assert.throws(
    () => createAttack("sleeper-agent", { poisonSha256: "xyz" }, FM),
    /'poisonSha256' must be "" or a SHA-256 digest/,
  );
  assert.equal(createAttack("sleeper-agent", { eps: "8/255" }, FM).params.eps, 8 / 255);
  if (train) {
    await assert.rejects(sleeper({ rate: 0.5 }).poison(train, 0), AttackParamError);
    await assert.rejects(
      sleeper({ rate: 0.5 }).poison(train, 0),
      /rate 0\.5 asks for 50 poisoned samples of the target class 0, but the training set has only \d+/,
    );
    await assert.rejects(sleeper({ rate: 0.001 }).poison(train, 0), /rate 0\.001 poisons no image/);
    await assert.rejects(sleeper().poison(train, 1.5), /seed must be an integer, got 1\.5/);
  }
});
