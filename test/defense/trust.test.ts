// A bundle someone can write to must not become a detector that never fires: a threshold no
// calibration could give and a weight file copied from M are refused even with every hash
// recomputed; a signed bundle is verified whenever a key is known (option, BADEXPERT_VERIFY_KEY,
// default location); an unsigned or unverifiable one loads with a warning, or is refused under
// requireSignature.
import { test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/engine/index.js";
import {
  BUNDLE_WARNING_CODE,
  loadBundle,
  loadBundleWithTrust,
  saveBundle,
  type LoadBundleOptions,
} from "../../src/defense/bundle.js";
import { PUBLIC_KEY_FILE, writeKeyPair } from "../../src/defense/signature.js";
import { checkCalibrationRecord, type Calibration } from "../../src/defense/threshold.js";
import { SCORE_CEILING, SCORE_FLOOR } from "../../src/defense/scores.js";
import { saveTensors } from "../../src/io/weights.js";
import { FieldReader } from "../../src/util/fields.js";
import { quickDetector, readManifest, writeRehashed } from "./quick-detector.js";

type Json = Record<string, unknown>;

async function withTemp(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "bx-trust-"));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Loads with an environment of our own (no key unless the test puts one there) and collects the warnings. */
async function load(
  dir: string,
  env: Record<string, string>,
  o: LoadBundleOptions = {},
): Promise<{ warnings: string[]; trust: Awaited<ReturnType<typeof loadBundleWithTrust>>["trust"] }> {
  const warnings: string[] = [];
  const { detector, trust } = await loadBundleWithTrust(dir, { env, onWarning: (w) => warnings.push(w), ...o });
  detector.dispose();
  return { warnings, trust };
}

const cal = (m: Json) => m.calibration as Json;

test("a re-hashed threshold that no calibration could give is refused", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  try {
    await withTemp(async (root) => {
      const dir = join(root, "bundle");
      const env = { HOME: join(root, "home") };
      await saveBundle(dir, det);
      const good = await readManifest(dir);
      const c = cal(good) as unknown as Calibration;
      assert.equal(typeof c.scoreMin, "number", "the calibration record holds the clean scores' range");
      assert.ok((c.scoreMin as number) <= c.threshold && c.threshold <= (c.scoreMax as number));
      const ok = await load(dir, env);
      assert.equal(ok.trust.signature, "unsigned");

      const setThreshold = (m: Json, t: number) => {
        m.threshold = t;
        cal(m).threshold = t;
      };
      const cases: [string, (m: Json) => void, RegExp][] = [
        [
          "1e9",
          (m) => setThreshold(m, 1e9),
          /"calibration\.threshold" must be a score the rule 'triangle' can give, at least -100000000 and below its ceiling 0 .*; found 1000000000/,
        ],
        [
          "the ceiling",
          (m) => setThreshold(m, 0),
          /"calibration\.threshold" must be a score the rule 'triangle' can give.*found 0/,
        ],
        [
          "below the floor",
          (m) => setThreshold(m, -1e12),
          /"calibration\.threshold" must be a score the rule 'triangle' can give/,
        ],
        // At a 5% target FPR over 64 scores the threshold is taken above the 90th percentile.
        [
          "the median",
          (m) => setThreshold(m, c.scoreQuantiles.p50),
          /"calibration\.threshold" must be at least scoreQuantiles\.p90/,
        ],
        // A careful edit (target FPR and FPR achieved agree with it): over 64 scores the 99.9% quantile is the 99th percentile.
        [
          "above every clean score",
          (m) => {
            setThreshold(m, (c.scoreMax as number) / 2);
            m.targetFpr = 0.001;
            cal(m).targetFpr = 0.001;
            cal(m).achievedFpr = 0;
          },
          /"calibration\.threshold" must be equal to scoreQuantiles\.p99/,
        ],
        [
          "scores outside the rule",
          (m) => (cal(m).scoreMax = 5),
          /"calibration\.scoreMax" must be a score the rule 'triangle' can give, in \[-100000000, 0\]/,
        ],
        [
          "rule single",
          (m) => (m.rule = "single"),
          /"calibration\.threshold" must be a score the rule 'single' can give, at least 0/,
        ],
      ];
      for (const [name, change, expected] of cases) {
        const m = structuredClone(good);
        change(m);
        await writeRehashed(dir, m);
        await assert.rejects(loadBundle(dir, { env }), expected, name);
      }

      // A bundle whose record has no range (written before it was recorded) loads, and says so.
      const old = structuredClone(good);
      delete cal(old).scoreMin;
      delete cal(old).scoreMax;
      await writeRehashed(dir, old);
      const r = await load(dir, env);
      assert.equal(r.warnings.length, 2, r.warnings.join("\n"));
      assert.match(r.warnings[1] as string, /records no range of clean scores \(calibration\.scoreMin\/scoreMax\)/);
      assert.deepEqual(r.trust.warnings, r.warnings);
      // ... and without the range, the quantiles still hold an edited threshold.
      setThreshold(old, c.scoreQuantiles.p99 + 1e-9);
      await writeRehashed(dir, old);
      await assert.rejects(loadBundle(dir, { env }), /"calibration\.threshold" must be at most scoreQuantiles\.p99/);
    });
  } finally {
    det.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("B or M' swapped for a copy of M (and re-hashed) is refused, however the copy is stored", async () => {
  const before = memory().numTensors;
  const det = quickDetector(3);
  try {
    await withTemp(async (root) => {
      const dir = join(root, "bundle");
      const env = { HOME: join(root, "home") };
      await saveBundle(dir, det);
      const good = await readManifest(dir);
      await copyFile(join(dir, "model.safetensors"), join(dir, "auxiliary.safetensors"));
      await writeRehashed(dir, structuredClone(good));
      await assert.rejects(
        loadBundle(dir, { env }),
        /auxiliary\.safetensors \(M'\) holds the same weights as model\.safetensors \(M\): .*cannot tell backdoored inputs apart/,
      );
      // M's weights written again with other metadata: another file hash, the same weights.
      await saveTensors(join(dir, "auxiliary.safetensors"), det.model.stateDict(), {
        role: "M'",
        note: "not M, honestly",
      });
      await writeRehashed(dir, structuredClone(good));
      await assert.rejects(
        loadBundle(dir, { env }),
        /auxiliary\.safetensors \(M'\) holds the same weights as model\.safetensors \(M\)/,
      );
      await saveBundle(dir, det, { replace: true });
      await copyFile(join(dir, "model.safetensors"), join(dir, "expert.safetensors"));
      await writeRehashed(dir, structuredClone(await readManifest(dir)));
      await assert.rejects(
        loadBundle(dir, { env }),
        /expert\.safetensors \(B\) holds the same weights as model\.safetensors \(M\)/,
      );
      await saveBundle(dir, det, { replace: true });
      await copyFile(join(dir, "expert.safetensors"), join(dir, "auxiliary.safetensors"));
      await writeRehashed(dir, structuredClone(await readManifest(dir)));
      await assert.rejects(
        loadBundle(dir, { env }),
        /auxiliary\.safetensors \(M'\) holds the same weights as expert\.safetensors \(B\)/,
      );
    });
  } finally {
    det.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("a signed bundle is verified whenever a key is known; unsigned or unverifiable ones warn, or are refused under requireSignature", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  try {
    await withTemp(async (root) => {
      const keys = join(root, "keys");
      await mkdir(keys);
      const k = await writeKeyPair(keys);
      const signed = join(root, "signed");
      const unsigned = join(root, "unsigned");
      await saveBundle(signed, det, { signKey: k.privateKey });
      await saveBundle(unsigned, det);
      const noKey = { HOME: join(root, "home") };
      const fromEnv = { ...noKey, BADEXPERT_VERIFY_KEY: k.publicKey };
      const config = join(root, "config");
      await mkdir(join(config, "badexpert"), { recursive: true });
      await copyFile(k.publicKey, join(config, "badexpert", PUBLIC_KEY_FILE));
      const fromDefault = { ...noKey, XDG_CONFIG_HOME: config };

      // Verified with the key from the option, the environment or the default location.
      const byOption = await load(signed, noKey, { verifyKey: k.publicKey });
      assert.deepEqual(byOption.trust, {
        signature: "verified",
        key: { source: "option", path: k.publicKey },
        warnings: [],
      });
      assert.deepEqual(byOption.warnings, []);
      assert.deepEqual((await load(signed, fromEnv)).trust.key, { source: "environment", path: k.publicKey });
      assert.deepEqual((await load(signed, fromDefault)).trust.key, {
        source: "default location",
        path: join(config, "badexpert", PUBLIC_KEY_FILE),
      });

      // Signed, then edited and re-hashed: refused wherever the key comes from.
      const m = await readManifest(signed);
      (m.classNames as string[])[0] = "renamed";
      await writeRehashed(signed, m);
      await assert.rejects(
        loadBundle(signed, { env: fromEnv }),
        /the signature does not match: the bundle was changed after it was signed/,
      );
      await assert.rejects(loadBundle(signed, { env: fromDefault }), /the signature does not match/);
      // With no key known it loads, loudly: the edit cannot be seen without one.
      const blind = await load(signed, noKey);
      assert.equal(blind.trust.signature, "signed-unverified");
      assert.equal(blind.trust.key, null);
      assert.match(
        blind.warnings[0] as string,
        /is signed but not verified: no key \(give --verify-key, set BADEXPERT_VERIFY_KEY, or put the public key at .*badexpert-signing\.pub\)/,
      );
      await assert.rejects(
        loadBundle(signed, { env: noKey, requireSignature: true }),
        /is signed but cannot be verified: no key .*a signature is required/,
      );

      // Unsigned: a warning, or refused where a signature is demanded.
      const plain = await load(unsigned, noKey);
      assert.equal(plain.trust.signature, "unsigned");
      assert.match(
        plain.warnings[0] as string,
        /bundle: .*unsigned is not signed: anyone who can write to it can change what it flags/,
      );
      await assert.rejects(
        loadBundle(unsigned, { env: noKey, requireSignature: true }),
        /detector\.json\.sig not found: the bundle is not signed, and a signature is required/,
      );
      await assert.rejects(
        loadBundle(unsigned, { env: fromEnv }),
        /the bundle is not signed, and BADEXPERT_VERIFY_KEY names a verification key/,
      );
      await assert.rejects(
        loadBundle(unsigned, { env: noKey, verifyKey: k.publicKey }),
        /the bundle is not signed, and a verification key was given/,
      );
      // A key at the default location verifies signed bundles; an unsigned one still loads, with the warning.
      assert.equal((await load(unsigned, fromDefault)).trust.signature, "unsigned");
      await assert.rejects(
        loadBundle(unsigned, { env: fromDefault, requireSignature: true }),
        /a signature is required/,
      );

      // A key that is named but unusable is an error, never a silent "no key".
      await assert.rejects(
        loadBundle(unsigned, { env: { ...noKey, BADEXPERT_VERIFY_KEY: join(root, "missing.pub") } }),
        /BADEXPERT_VERIFY_KEY: verification key .*missing\.pub: cannot read \(no such file\)/,
      );
      await writeFile(join(config, "badexpert", PUBLIC_KEY_FILE), "not a key\n");
      await assert.rejects(
        loadBundle(unsigned, { env: fromDefault }),
        /verification key .*badexpert-signing\.pub: not a PEM public key/,
      );

      // Without onWarning the warning is a process warning (Node prints it on stderr).
      const seen: Error[] = [];
      const listener = (w: Error) => seen.push(w);
      process.on("warning", listener);
      try {
        (await loadBundle(unsigned, { env: noKey })).dispose();
        await new Promise((r) => setImmediate(r));
      } finally {
        process.off("warning", listener);
      }
      assert.equal(seen.length, 1);
      assert.equal((seen[0] as Error & { code?: string }).code, BUNDLE_WARNING_CODE);
      assert.match((seen[0] as Error).message, /is not signed/);
    });
  } finally {
    det.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("checkCalibrationRecord: what each rule can produce, and the record's own consistency", () => {
  const r = new FieldReader("test", "E_BUNDLE_INTEGRITY");
  const base: Calibration = {
    threshold: -0.2,
    targetFpr: 0.01,
    count: 1000,
    achievedFpr: 0.009,
    scoreMean: -3,
    scoreStd: 1,
    scoreQuantiles: { p50: -3, p90: -1, p99: -0.2 },
    scoreMin: -8,
    scoreMax: -0.01,
  };
  const range = (rule: keyof typeof SCORE_CEILING) => ({
    rule,
    floor: SCORE_FLOOR[rule],
    ceiling: SCORE_CEILING[rule],
  });
  assert.deepEqual(checkCalibrationRecord(base, r, range("triangle")), []);
  assert.throws(
    () => checkCalibrationRecord(base, r, range("single")),
    /must be a score the rule 'single' can give, at least 0/,
  );
  assert.throws(
    () => checkCalibrationRecord(base, r, range("rectangle")),
    /"calibration\.scoreQuantiles\.p50" must be a score the rule 'rectangle' can give, in \[-1, 0\]/,
  );
  // At FPR 0.001 over 1000 scores the threshold is taken above the 99th percentile: only the range bounds it from above.
  assert.throws(
    () =>
      checkCalibrationRecord({ ...base, targetFpr: 0.001, threshold: -0.005, achievedFpr: 0 }, r, range("triangle")),
    /"calibration\.threshold" must be within the clean calibration scores it was picked from, \[scoreMin -8, scoreMax -0\.01\]; found -0\.005/,
  );
  // At FPR 0.01 over 1000 scores the threshold is the 99th percentile itself (unless lowered below the ceiling).
  assert.throws(() => checkCalibrationRecord({ ...base, threshold: -0.1 }, r), /must be equal to scoreQuantiles\.p99/);
  assert.deepEqual(
    checkCalibrationRecord({ ...base, threshold: -0.3, atCeiling: 20, achievedFpr: 0.02 }, r, range("triangle")),
    [],
  );
  assert.throws(
    () => checkCalibrationRecord({ ...base, achievedFpr: 0.5 }, r),
    /"calibration\.achievedFpr" must be at most the target FPR 0\.01/,
  );
  assert.throws(
    () => checkCalibrationRecord({ ...base, scoreQuantiles: { p50: -3, p90: -4, p99: -0.2 } }, r),
    /"calibration\.scoreQuantiles\.p90" must be at least p50/,
  );
  assert.throws(
    () => checkCalibrationRecord({ ...base, scoreMean: -9 }, r),
    /"calibration\.scoreMean" must be within \[scoreMin -8, scoreMax -0\.01\]/,
  );
  assert.throws(
    () => checkCalibrationRecord({ ...base, scoreStd: 5 }, r),
    /"calibration\.scoreStd" must be at most half the range/,
  );
  assert.throws(
    () => checkCalibrationRecord({ ...base, scoreMax: -0.5 }, r),
    /"calibration\.scoreMax" must be at least scoreQuantiles\.p99/,
  );
  const oneEnd = { ...base };
  delete oneEnd.scoreMax;
  assert.throws(
    () => checkCalibrationRecord(oneEnd, r),
    /"calibration\.scoreMax" must be recorded together with the other end of the range/,
  );
  const none = { ...oneEnd };
  delete none.scoreMin;
  assert.match(checkCalibrationRecord(none, r, range("triangle"))[0] as string, /records no range of clean scores/);
});
