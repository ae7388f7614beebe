// Failing closed: invalid scores are flagged, uncalibrated detectors are never saved, edited or
// swapped bundle files are refused naming the file, signatures are checked, and an interrupted
// save leaves the previous bundle whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { memory, noGrad, rand, tidy, manualSeed } from "../../src/engine/index.js";
import { saveBundle, loadBundle } from "../../src/defense/bundle.js";
import { BadExpertDetector } from "../../src/defense/detector.js";
import { calibrateThreshold } from "../../src/defense/threshold.js";
import { writeKeyPair } from "../../src/defense/signature.js";
import { saveTensors } from "../../src/io/weights.js";
import { createModel } from "../../src/models/registry.js";
import { quickDetector, readManifest, writeRehashed, spec } from "./quick-detector.js";

const here = dirname(fileURLToPath(import.meta.url));

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "bx-integrity-"));
  try {
    await fn(join(root, "bundle"));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function decision(d: BadExpertDetector): unknown {
  const { rule, threshold, targetFpr, calibration, preprocessing, classNames, spec: s } = d.info;
  return { rule, threshold, targetFpr, calibration, preprocessing, classNames, spec: s };
}

test("scores that are not finite numbers are flagged; calibration and saving refuse them", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  try {
    manualSeed(9);
    const ok = tidy(() => det.scoreBatch(rand([32, 1, 28, 28])));
    assert.ok(
      ok.flagged.some((f) => f === 0),
      "a healthy detector passes some inputs",
    );
    assert.ok(ok.invalid.every((f) => f === 0));
    const uncalibrated = BadExpertDetector.uncalibrated(det, {
      spec,
      preprocessing: det.info.preprocessing,
      classNames: det.info.classNames,
      rule: "triangle",
    });
    const unjudged = tidy(() => uncalibrated.scoreBatch(rand([8, 1, 28, 28])));
    assert.ok(unjudged.score.every(Number.isFinite));
    assert.deepEqual(
      Array.from(unjudged.flagged),
      new Array<number>(8).fill(1),
      "an uncalibrated detector (threshold +Infinity) flags every input",
    );
    noGrad(() => det.expert.parameters()[0]?.fill_(Number.NaN));
    const broken = tidy(() => det.scoreBatch(rand([32, 1, 28, 28])));
    assert.ok(
      broken.score.every((s) => Number.isNaN(s)),
      "NaN weights make every score NaN",
    );
    assert.deepEqual(Array.from(broken.flagged), new Array<number>(32).fill(1), "and every input is flagged");
    assert.deepEqual(Array.from(broken.invalid), new Array<number>(32).fill(1));
    assert.throws(
      () => calibrateThreshold([0.1, Number.NaN, 0.3], 0.05),
      /1 of 3 clean calibration scores are not finite numbers/,
    );
    await withDir(async (dir) => {
      const nan = det.withDecision("triangle", Number.NaN, { ...det.info.calibration, threshold: Number.NaN });
      await assert.rejects(saveBundle(dir, nan), /threshold is NaN, not a finite number: it was never calibrated/);
      const raw = BadExpertDetector.uncalibrated(det, {
        spec,
        preprocessing: det.info.preprocessing,
        classNames: det.info.classNames,
        rule: "triangle",
      });
      await assert.rejects(saveBundle(dir, raw), /threshold is Infinity, not a finite number/);
      await assert.rejects(readdir(dir), /ENOENT/, "nothing was written");
    });
  } finally {
    det.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("edited manifests and swapped weight files are refused, naming the file and field", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  try {
    await withDir(async (dir) => {
      await saveBundle(dir, det);
      const good = await readManifest(dir);
      const loaded = await loadBundle(dir);
      assert.deepEqual(decision(loaded), decision(det));
      loaded.dispose();
      const { writeFile } = await import("node:fs/promises");
      const edit = async (change: (m: Record<string, unknown>) => void, rehash: boolean): Promise<void> => {
        const m = structuredClone(good);
        change(m);
        if (rehash) await writeRehashed(dir, m);
        else await writeFile(join(dir, "detector.json"), JSON.stringify(m));
      };
      const cal = (m: Record<string, unknown>) => m.calibration as Record<string, unknown>;
      const pre = (m: Record<string, unknown>) => m.preprocessing as Record<string, unknown>;
      const cases: [string, (m: Record<string, unknown>) => void, boolean, RegExp][] = [
        [
          "threshold 0",
          (m) => (m.threshold = 0),
          false,
          /detector\.json: "threshold" must be equal to calibration\.threshold/,
        ],
        [
          "threshold and calibration 0",
          (m) => ((m.threshold = 0), (cal(m).threshold = 0)),
          false,
          /detector\.json: its fields do not match the SHA-256 recorded in integrity\.manifest/,
        ],
        ['threshold ""', (m) => (m.threshold = ""), true, /"threshold" must be a finite number; found ""/],
        [
          'threshold "Infinity"',
          (m) => (m.threshold = "Infinity"),
          true,
          /"threshold" must be a finite number; found "Infinity"/,
        ],
        [
          "threshold null (NaN)",
          (m) => ((m.threshold = null), (cal(m).threshold = null)),
          true,
          /"calibration\.threshold" must be a finite number; found null/,
        ],
        ["std 0", (m) => (pre(m).std = [0]), true, /"preprocessing\.std\[0\]" must be a finite number > 0; found 0/],
        [
          "std text",
          (m) => (pre(m).std = ["0.3"]),
          true,
          /"preprocessing\.std\[0\]" must be a finite number > 0; found "0\.3"/,
        ],
        [
          "mean length",
          (m) => (pre(m).mean = [0.1, 0.2, 0.3]),
          true,
          /"preprocessing\.mean" must be an array of 1 values; found 3 values/,
        ],
        [
          "huge image",
          (m) => (pre(m).imageSize = [15000, 15000]),
          true,
          /"preprocessing\.imageSize\[0\]" must be an integer >= 1 <= 1024; found 15000/,
        ],
        [
          "image vs spec",
          (m) => (pre(m).imageSize = [32, 32]),
          true,
          /"preprocessing\.imageSize" must be \[28, 28\] \(the model's imageSize\)/,
        ],
        [
          "channels vs spec",
          (m) => (pre(m).channels = 3),
          true,
          /"preprocessing\.channels" must be 1 \(the model's inChannels\); found 3/,
        ],
        ["rule", (m) => (m.rule = "none"), true, /"rule" must be one of triangle, /],
        ["missing calibration", (m) => delete m.calibration, true, /"calibration" must be an object; it is missing/],
        [
          "creation.dataset",
          (m) => ((m.creation as Record<string, unknown>).dataset = {}),
          true,
          /"creation\.dataset\.name" must be a string; it is missing/,
        ],
        [
          "weight path",
          (m) => ((m.integrity as { weights: { expert: { file: string } } }).weights.expert.file = "../x"),
          false,
          /"integrity\.weights\.expert\.file" must be "expert\.safetensors"/,
        ],
        [
          "version 1",
          (m) => (m.version = 1),
          false,
          /version 1 bundles carry no integrity hashes .* re-run `badexpert defend`/,
        ],
      ];
      for (const [name, change, rehash, expected] of cases) {
        await edit(change, rehash);
        await assert.rejects(loadBundle(dir), expected, name);
      }
      await writeFile(join(dir, "detector.json"), JSON.stringify(good));
      await copyFile(join(dir, "model.safetensors"), join(dir, "expert.safetensors"));
      await assert.rejects(
        loadBundle(dir),
        /expert\.safetensors \(B\) does not match the size and SHA-256 recorded in detector\.json/,
      );
      // NaN weights with every hash recomputed: the finite check still refuses them, naming the tensor.
      const nanModel = createModel("compact-cnn", spec);
      noGrad(() => nanModel.parameters()[1]?.fill_(Number.POSITIVE_INFINITY));
      await saveTensors(join(dir, "expert.safetensors"), nanModel.stateDict());
      nanModel.dispose();
      await writeRehashed(dir, structuredClone(good));
      await assert.rejects(
        loadBundle(dir),
        /expert\.safetensors \(B\): .*tensor "[\w.]+" holds \d+ non-finite value\(s\)/,
      );
    });
  } finally {
    det.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("a signed bundle loads only with the matching public key and unchanged files", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  const keys = await mkdtemp(join(tmpdir(), "bx-keys-"));
  const other = await mkdtemp(join(tmpdir(), "bx-keys-"));
  try {
    const k = await writeKeyPair(keys);
    const k2 = await writeKeyPair(other);
    await assert.rejects(writeKeyPair(keys), /EEXIST/, "never overwrites a key");
    await withDir(async (dir) => {
      await saveBundle(dir, det, { signKey: k.privateKey });
      const ok = await loadBundle(dir, { verifyKey: k.publicKey });
      assert.deepEqual(decision(ok), decision(det));
      ok.dispose();
      await assert.rejects(loadBundle(dir, { verifyKey: k2.publicKey }), /the signature does not match/);
      const m = await readManifest(dir);
      (m.calibration as Record<string, number>).threshold = 99;
      m.threshold = 99;
      await writeRehashed(dir, m);
      await assert.rejects(
        loadBundle(dir, { verifyKey: k.publicKey }),
        /the signature does not match: the bundle was changed after it was signed/,
      );
      // Without a key, a threshold the triangle rule can never reach (its scores are <= 0) is still refused.
      await assert.rejects(
        loadBundle(dir, { env: {}, onWarning: () => undefined }),
        /"calibration\.threshold" must be a score the rule 'triangle' can give/,
      );
      await saveBundle(dir, det, { replace: true });
      await assert.rejects(
        loadBundle(dir, { verifyKey: k.publicKey }),
        /detector\.json\.sig not found: the bundle is not signed/,
      );
    });
  } finally {
    det.dispose();
    await rm(keys, { recursive: true, force: true });
    await rm(other, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});

async function siblings(dir: string): Promise<string[]> {
  return (await readdir(dirname(dir))).filter((n) => n !== "bundle");
}

test("saving over a bundle: refused without replace; a failed save leaves the old bundle and no temporary files", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  const other = quickDetector(5);
  try {
    await withDir(async (dir) => {
      await saveBundle(dir, det);
      await assert.rejects(
        saveBundle(dir, other),
        /bundle already exists and is not empty \(\d+ entries\); refusing to overwrite it \(replace: true replaces it\)/,
      );
      // A failure midway (M and B written, M' cannot be): the old bundle stays.
      const broken = new BadExpertDetector(
        { model: other.model, expert: other.expert, auxiliary: createModel("compact-cnn", spec) },
        other.info,
      );
      broken.auxiliary.dispose();
      await assert.rejects(saveBundle(dir, broken, { replace: true }), /disposed/);
      assert.deepEqual(await siblings(dir), [], "no temporary directory left");
      const back = await loadBundle(dir);
      assert.deepEqual(decision(back), decision(det));
      back.dispose();
      await saveBundle(dir, other, { replace: true });
      const replaced = await loadBundle(dir);
      assert.deepEqual(decision(replaced), decision(other));
      replaced.dispose();
    });
  } finally {
    det.dispose();
    other.dispose();
  }
  assert.equal(memory().numTensors, before);
});

async function killWhileSaving(dir: string, signal: NodeJS.Signals, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [join(here, "save-loop.js"), dir], {
    env: { ...process.env, BADEXPERT_THREADS: "1" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<string>((resolve) => child.on("exit", (code, sig) => resolve(sig ?? `exit ${code}`)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (b: Buffer) => {
      if (b.toString().includes("saving")) resolve();
    });
    child.on("exit", () => reject(new Error("save-loop exited before saving")));
  });
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill(signal);
  // Killed by the signal, or (while a save was in flight) exiting after cleaning up with 128 + 15.
  const end = await exited;
  assert.ok([signal, "exit 143"].includes(end), `the child ends by ${signal} (it ended by ${end})`);
}

test("a save killed midway (SIGTERM, SIGKILL) leaves a whole, loadable bundle; temporary files are removed", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  try {
    await withDir(async (dir) => {
      await saveBundle(dir, det);
      for (const [signal, delay] of [
        ["SIGTERM", 120],
        ["SIGKILL", 90],
      ] as const) {
        await killWhileSaving(dir, signal, delay);
        if (signal === "SIGTERM")
          assert.deepEqual(
            await siblings(dir),
            [],
            `SIGTERM after ${delay} ms: the handler removed the temporary directory`,
          );
        const back = await loadBundle(dir);
        assert.deepEqual(decision(back), decision(det), `${signal} after ${delay} ms`);
        back.dispose();
      }
      // SIGKILL cannot be handled: the next save removes what the dead process left.
      await saveBundle(dir, det, { replace: true });
      assert.deepEqual(await siblings(dir), []);
    });
  } finally {
    det.dispose();
  }
  assert.equal(memory().numTensors, before);
});
