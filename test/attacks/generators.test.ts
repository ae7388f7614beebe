// The attacks with a trigger network trained while poisoning (ISSBA, Dynamic), on small real
// Fashion-MNIST slices with few training steps: the trigger's shape and range, what poisoning
// changes, determinism from the seed, the stored network (attack.safetensors) rebuilding the same
// trigger, and the errors for missing or mismatched networks and bad parameters.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gradients, rand, tidy, zeros, type Tensor } from "../../src/engine/index.js";
import { loadDataset } from "../../src/data/registry.js";
import type { ImageDataset } from "../../src/data/dataset.js";
import { subset } from "../../src/data/splits.js";
import { gatherImages, imagesToTensor } from "../../src/data/batch.js";
import {
  ATTACK_ARTIFACTS_FILE,
  artifactsDigest,
  createAttack,
  diversityLoss,
  loadArtifacts,
  loadAttack,
  saveArtifacts,
  serializeArtifacts,
  type Attack,
  type PoisonedTrainingSet,
} from "../../src/attacks/index.js";
import { runTraining } from "../../src/jobs/train.js";
import { recipeFor } from "../../src/train/recipes.js";
import { readCheckpointMeta } from "../../src/train/checkpoint.js";
import { changedImages, noLeaksAsync } from "./fixtures.js";

const FASHION = "/usr/share/datasets/fashion-mnist";
const needsFashion = { skip: existsSync(FASHION) ? false : `${FASHION} is not on this machine` };
const FM = { numClasses: 10, height: 28, width: 28, channels: 1, dataset: "fashion-mnist" };
// Few steps: these tests check the mechanics, the benches measure the trained attacks.
const ISSBA_FAST = { steps: 40, count: 400, rate: 0.05 };
const DYNAMIC_FAST = { maskSteps: 10, steps: 20, count: 400, rate: 0.05, coverRate: 0.05 };

async function fashionSlice(split: "train" | "test", n: number): Promise<ImageDataset> {
  const ds = await loadDataset("fashion-mnist", { split });
  return subset(
    ds,
    Int32Array.from({ length: n }, (_, i) => i),
  );
}

function batchOf(ds: ImageDataset, n = ds.count): Tensor {
  return imagesToTensor(
    gatherImages(
      ds,
      Int32Array.from({ length: n }, (_, i) => i),
    ),
    n,
    ds.height,
    ds.width,
    ds.channels,
  );
}

function values(t: Tensor): Float32Array {
  return Float32Array.from(t.data() as Float32Array);
}

for (const [name, fast] of [
  ["issba", ISSBA_FAST],
  ["dynamic", DYNAMIC_FAST],
] as const) {
  test(
    `${name}: poisoning trains the network, relabels the poison, keeps covers' labels, and is deterministic from the seed`,
    needsFashion,
    () =>
      noLeaksAsync(async () => {
        const train = await fashionSlice("train", 600);
        const a = createAttack(name, fast, FM);
        assert.throws(
          () => tidy(() => a.applyTrigger(batchOf(train, 2))),
          /trained while poisoning.*attack\.safetensors/,
        );
        const p1 = await a.poison(train, 3);
        const p2 = await createAttack(name, fast, FM).poison(train, 3);
        const p3 = await createAttack(name, fast, FM).poison(train, 4);
        assert.ok(
          p1.artifacts && p1.params && p1.details,
          "the poisoned set carries the network, its parameters and what was measured",
        );
        const sha = p1.params.generatorSha256;
        assert.match(String(sha), /^[0-9a-f]{64}$/);
        assert.equal(sha, artifactsDigest(p1.artifacts));
        assert.equal(p2.params?.generatorSha256, sha, "the same seed trains the same network");
        assert.notEqual(p3.params?.generatorSha256, sha, "another seed trains another network");
        assert.deepEqual(p1.dataset.images, p2.dataset.images);
        assert.deepEqual(p1.poisonIndices, p2.poisonIndices);
        assert.equal(p1.poisonIndices.length, 30);
        for (const i of p1.poisonIndices) {
          assert.notEqual(train.labels[i], 0, "poison is drawn outside the target class");
          assert.equal(p1.labels[i], 0);
        }
        for (const i of p1.coverIndices) assert.equal(p1.labels[i], train.labels[i], "cover samples keep their label");
        const changed = new Set(changedImages(train, p1.dataset));
        const altered = new Set([...p1.poisonIndices, ...p1.coverIndices]);
        for (const i of changed) assert.ok(altered.has(i), `image ${i} changed but is neither poison nor cover`);
        assert.ok(
          changed.size >= p1.poisonIndices.length * 0.9,
          `most poisoned images change (${changed.size} of ${altered.size})`,
        );
        assert.deepEqual(Object.keys(p1.params), Object.keys(a.params));
        for (const v of Object.values(p1.details)) assert.ok(Number.isFinite(v));
      }),
  );

  test(`${name}: the stored network rebuilds the same trigger, checked against the recorded digest`, needsFashion, () =>
    noLeaksAsync(async () => {
      const train = await fashionSlice("train", 600);
      const test = await fashionSlice("test", 16);
      const a = createAttack(name, fast, FM);
      const p: PoisonedTrainingSet = await a.poison(train, 1);
      const params = p.params ?? {};
      const artifacts = p.artifacts;
      assert.ok(artifacts);
      const dir = await mkdtemp(join(tmpdir(), `badexpert-${name}-`));
      try {
        await saveArtifacts(dir, artifacts);
        const rebuilt: Attack = await loadAttack(name, params, FM, dir);
        tidy(() => {
          const x = batchOf(test);
          const t1 = a.applyTrigger(x);
          const t2 = rebuilt.applyTrigger(x);
          assert.deepEqual(t1.shape, [16, 1, 28, 28]);
          assert.deepEqual(values(t1), values(t2), "the rebuilt attack gives the same trigger");
          const v = values(t1);
          assert.ok(
            v.every((y) => y >= 0 && y <= 1),
            "triggered images stay in [0, 1]",
          );
          // Sample-specific: what the trigger adds differs between images.
          const d = values(t1.sub(x));
          const per = 28 * 28;
          let differs = 0;
          for (let k = 1; k < 16; k++)
            for (let i = 0; i < per; i++) if (Math.abs((d[k * per + i] as number) - (d[i] as number)) > 1e-4) differs++;
          assert.ok(differs > 100, `the trigger depends on the image (${differs} differing pixels)`);
        });
        const set = rebuilt.poisonedTestSet(test);
        assert.equal(
          set.dataset.count,
          test.labels.filter((y) => y !== 0).length,
          "the poisoned test set leaves out the target class",
        );
        assert.ok(set.targetLabels.every((y) => y === 0));
        // Tampering with the file or the recorded digest is refused, naming both digests.
        const bytes = serializeArtifacts(artifacts);
        bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
        await writeFile(join(dir, ATTACK_ARTIFACTS_FILE), bytes);
        await assert.rejects(
          loadAttack(name, params, FM, dir),
          /SHA-256 [0-9a-f]{64} does not match the [0-9a-f]{64} recorded/,
        );
        await assert.rejects(
          loadAttack(name, { ...params, generatorSha256: "" }, FM, dir),
          /'generatorSha256', which is missing/,
        );
        await assert.rejects(loadAttack(name, params, FM, join(dir, "nowhere")), /attack\.safetensors not found/);
        await assert.rejects(loadArtifacts(dir, "0".repeat(64)), /does not match/);
        assert.throws(
          () => createAttack(name, { ...params, generatorSha256: "a".repeat(64) }, FM, artifacts),
          /the given network has SHA-256 [0-9a-f]{64}, parameter 'generatorSha256' records a{64}/,
        );
        const wrongShape = new Map(artifacts);
        const [firstKey, first] = [...wrongShape.entries()][0] as [
          string,
          { data: Float32Array; shape: readonly number[] },
        ];
        wrongShape.set(firstKey, { data: first.data.subarray(1), shape: [first.data.length - 1] });
        assert.throws(
          () => createAttack(name, {}, FM, wrongShape),
          new RegExp(`'${firstKey.replace(".", "\\.")}' has shape`),
        );
        assert.throws(() => createAttack("badnet", {}, FM, artifacts), /trains no network/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
  );
}

test(
  "issba: the residual stays within its bound; a decoder trained briefly reads the bits better than chance",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const train = await fashionSlice("train", 600);
      const bound = 0.03;
      const a = createAttack("issba", { ...ISSBA_FAST, bound, steps: 240 }, FM);
      const p = await a.poison(train, 0);
      const per = 28 * 28;
      for (const i of p.poisonIndices) {
        for (let k = i * per; k < (i + 1) * per; k++) {
          const diff = Math.abs((p.dataset.images[k] as number) - (train.images[k] as number));
          assert.ok(
            diff <= Math.ceil(bound * 255),
            `pixel ${k - i * per} of image ${i} moved by ${diff}/255 > bound ${bound}`,
          );
        }
      }
      const d = p.details ?? {};
      assert.ok((d.residualMaxAbs as number) <= bound + 1 / 255);
      assert.ok((d.bitAccuracy as number) > 0.55, `bit accuracy ${d.bitAccuracy} after 240 steps`);
    }),
);

test(
  "dynamic: the mask stays small, and cross samples carry a trigger with their own label; training reports to the log hook",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const train = await fashionSlice("train", 600);
      const a = createAttack("dynamic", DYNAMIC_FAST, FM);
      const lines: string[] = [];
      const p = await a.poison(train, 0, { log: (l) => lines.push(l) });
      // 20 joint steps: only the last is reported (every 100th otherwise), then what was measured.
      assert.equal(lines.length, 2, lines.join("\n"));
      assert.match(lines[0] ?? "", /^dynamic: joint step 20\/20 loss [0-9.]+ \[\d+ s\]$/);
      assert.match(lines[1] ?? "", /^dynamic: trigger networks trained \{"surrogateCleanAccuracy":/);
      const area = p.details?.maskArea as number;
      assert.ok(area > 0 && area < 0.5, `mask area ${area}`);
      assert.equal(p.coverIndices.length, 30);
      // Cover images carry a trigger (made for another input) and keep their label.
      const covered = new Set(changedImages(train, p.dataset));
      const carried = Array.from(p.coverIndices).filter((i) => covered.has(i)).length;
      assert.ok(carried >= 25, `cover images carry a trigger (${carried} of 30 changed)`);
      for (const i of p.coverIndices) assert.equal(p.labels[i], train.labels[i]);
    }),
);

test("dynamic: the diversity loss keeps a finite gradient when two inputs get the same output (it once trained to NaN)", () =>
  noLeaksAsync(() => {
    tidy(() => {
      const x1 = rand([4, 1, 8, 8]);
      const x2 = rand([4, 1, 8, 8]);
      const f = zeros([4, 1, 8, 8]).requiresGrad_(true);
      const loss = diversityLoss(x1, x2, f, zeros([4, 1, 8, 8]));
      assert.ok(Number.isFinite(loss.item()), `loss ${loss.item()}`);
      const [g] = gradients([loss], [f]);
      assert.ok(g && (g.data() as Float32Array).every(Number.isFinite), "finite gradient at equal outputs");
    });
    return Promise.resolve();
  }));

test("bad parameters are refused before any work, naming the parameter, the expected and the given value", () => {
  assert.throws(
    () => createAttack("issba", { bits: 0 }, FM),
    /parameter 'bits' must be an integer >= 1 and <= 256, got 0/,
  );
  assert.throws(
    () => createAttack("issba", { bound: 0 }, FM),
    /parameter 'bound' must be a number > 0 and <= 1, got 0/,
  );
  assert.throws(() => createAttack("issba", { count: 10 }, FM), /parameter 'count' must be an integer >= 32, got 10/);
  assert.throws(
    () => createAttack("issba", { generatorSha256: "xyz" }, FM),
    /parameter 'generatorSha256' must be "" or a SHA-256 digest \(64 lowercase hex digits\), got "xyz"/,
  );
  assert.throws(
    () => createAttack("dynamic", { maskDensity: 2 }, FM),
    /parameter 'maskDensity' must be a number > 0 and <= 1, got 2/,
  );
  assert.throws(
    () => createAttack("dynamic", { backdoorShare: 0 }, FM),
    /parameter 'backdoorShare' must be a number > 0 and <= 0.5, got 0/,
  );
  assert.throws(() => createAttack("dynamic", { steps: 1.5 }, FM), /parameter 'steps' must be an integer/);
  assert.throws(() => createAttack("dynamic", { coverRate: -1 }, FM), /parameter 'coverRate'/);
});

test(
  "training with issba stores the encoder next to the checkpoint and records its digest and measurements",
  needsFashion,
  () =>
    noLeaksAsync(async () => {
      const dir = await mkdtemp(join(tmpdir(), "badexpert-issba-train-"));
      try {
        const out = join(dir, "ckpt");
        const r = await runTraining({
          dataset: "fashion-mnist",
          model: "compact-cnn",
          config: { ...recipeFor("fashion-mnist").config, epochs: 1, seed: 0 },
          out,
          limit: 400,
          attack: { name: "issba", params: { steps: 5, count: 400, rate: 0.05 } },
          silent: true,
          log: () => {},
        });
        const meta = await readCheckpointMeta(out);
        const params = meta.training.attack?.params ?? {};
        assert.match(String(params.generatorSha256), /^[0-9a-f]{64}$/);
        const details = (meta.training as { attackDetails?: Record<string, number> }).attackDetails;
        assert.ok(details && Number.isFinite(details.bitAccuracy), "the decoder's bit accuracy is recorded");
        assert.ok(existsSync(join(out, ATTACK_ARTIFACTS_FILE)));
        assert.equal(typeof r.attackSuccessRate, "number");
        // The test-time attack rebuilt from the checkpoint alone.
        const a = await loadAttack("issba", params, FM, out);
        const test = await fashionSlice("test", 4);
        tidy(() => assert.deepEqual(a.applyTrigger(batchOf(test)).shape, [4, 1, 28, 28]));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
);
