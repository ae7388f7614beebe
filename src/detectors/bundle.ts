// A fitted baseline detector on disk: detector.json (its kind, resolved parameters, saved state,
// the calibrated threshold, the checkpoint it was fitted on and that checkpoint's weight hash)
// and, when the detector keeps tensors (STRIP's clean pool), state.safetensors. Loading refuses a
// checkpoint whose weights changed since (fail closed: the threshold belongs to that model).
// BaDExpert keeps its three models in its own layout (defense/bundle.ts); open.ts reads either by
// the manifest's kind. Like that one, it is written atomically, every manifest field is checked on
// load (the message names the file and field), the threshold must be a finite number equal to the
// calibration's and one its calibration record could have produced (checkCalibrationRecord), and
// the state file's SHA-256 must match the manifest. These bundles are not signed: loading one is
// reported as unsigned, and a verification key or a required signature refuses it.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Tensor } from "../engine/index.js";
import { sha256Hex } from "../io/safetensors.js";
import { tensorsFromBytes, saveTensors } from "../io/weights.js";
import { loadCheckpoint, MODEL_WEIGHTS } from "../train/checkpoint.js";
import type { DefenseSplitSpec } from "../defense/splits.js";
import { checkCalibrationRecord, type Calibration } from "../defense/threshold.js";
import { readCalibration } from "../defense/manifest.js";
import { FieldReader } from "../util/fields.js";
import { FileReadError, readRegularFile, sha256OfRegularFile } from "../util/read-regular-file.js";
import { writeDirAtomically, type OwnedDirKind } from "../util/atomic-dir.js";
import { BUNDLE_DIR, BUNDLE_WARNING_CODE } from "../defense/bundle.js";
import type { ParamValue } from "../attacks/attack.js";
import type { DetectorContext, InputDetector } from "./detector.js";
import { CalibratedDetector } from "./calibrated.js";
import { detectorInfo } from "./registry.js";
import { resolveDetectorParams } from "./params.js";
import { BadExpertError } from "../util/errors.js";

export const DETECTOR_BUNDLE_FORMAT = "badexpert-baseline-detector";
const MANIFEST = "detector.json";
const STATE = "state.safetensors";
/** The files of a baseline bundle (state only when the detector keeps tensors). */
export const BASELINE_BUNDLE_FILES = { manifest: MANIFEST, state: STATE } as const;
/** A baseline bundle as saveDetectorBundle writes it: what `--force` may replace. */
export const BASELINE_BUNDLE_DIR: OwnedDirKind = {
  what: "badexpert baseline detector bundle",
  manifest: MANIFEST,
  files: [MANIFEST, STATE],
  recognise: (m) =>
    typeof m === "object" && m !== null && (m as { format?: unknown }).format === DETECTOR_BUNDLE_FORMAT,
};
/** What a detector's --out may replace: a detector bundle of ours of either kind (a baseline's or BaDExpert's). */
export const DETECTOR_BUNDLE_DIRS: readonly OwnedDirKind[] = [BUNDLE_DIR, BASELINE_BUNDLE_DIR];
const HEX64 = /^[0-9a-f]{64}$/;
const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

interface Manifest {
  format: typeof DETECTOR_BUNDLE_FORMAT;
  version: 1;
  /** The detector's registry name (absent in bundles written before it was recorded: `detector` says it). */
  kind?: string;
  detector: string;
  params: Record<string, ParamValue>;
  state: Record<string, unknown>;
  /** SHA-256 of state.safetensors; absent when the detector keeps no tensors. */
  stateSha256?: string;
  calibration: Calibration;
  checkpoint: { path: string; weightsSha256: string };
  dataset: string;
  /** The defender's splits of the dataset's test split (evaluate-defense rebuilds them); absent in bundles written before they were recorded. */
  splits?: DefenseSplitSpec;
  /**
   * Secret key (32 random bytes, hex) of the per-input seeds (input-seeds.ts), drawn when the
   * bundle is written; absent in bundles written before it existed (their seeds are unkeyed).
   */
  inputSeedKey?: string;
}

/** Largest checkpoint weights file hashed (streamed, so memory stays one chunk): far above any zoo model. */
const MAX_WEIGHTS_BYTES = 2 ** 34;
/** Largest detector state file (STRIP's clean pool, ...), read whole. */
const MAX_STATE_BYTES = 2 ** 31;

async function weightsHash(checkpoint: string): Promise<string> {
  const file = join(checkpoint, MODEL_WEIGHTS);
  try {
    return (await sha256OfRegularFile(file, { maxBytes: MAX_WEIGHTS_BYTES, what: "checkpoint weights file" })).sha256;
  } catch (e) {
    if (e instanceof FileReadError)
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `${e.message}${e.reason === "ENOENT" ? ` (checkpoint weights)` : ""}`,
        { cause: e },
      );
    throw e;
  }
}

export interface SaveDetectorBundleOptions {
  checkpoint: string;
  calibration: Calibration;
  dataset: string;
  /** The splits the detector was fitted and calibrated on (recorded for evaluate-defense). */
  splits?: DefenseSplitSpec;
  /** Replace an existing non-empty directory when it is a detector bundle of ours (anything else is refused). */
  replace?: boolean;
  /** How the user allows replacing, for the refusal message (e.g. "--force"). */
  forceHint?: string;
  /** The option that named the directory, for messages (e.g. "--out"). */
  argument?: string;
}

export async function saveDetectorBundle(dir: string, det: InputDetector, o: SaveDetectorBundleOptions): Promise<void> {
  const entry = detectorInfo(det.name);
  if (!det.state || !entry.restore)
    throw new RangeError(
      `saveDetectorBundle: '${det.name}' has its own bundle format; use its own save (badexpert: \`badexpert defend\`)`,
    );
  if (!Number.isFinite(o.calibration.threshold))
    throw new RangeError(`saveDetectorBundle: the threshold must be finite, got ${o.calibration.threshold}`);
  const state = det.state();
  const checkpoint = { path: resolve(o.checkpoint), weightsSha256: await weightsHash(o.checkpoint) };
  await writeDirAtomically(
    dir,
    async (tmp) => {
      const written =
        state.tensors.size > 0
          ? await saveTensors(join(tmp, STATE), state.tensors, { format: DETECTOR_BUNDLE_FORMAT, detector: det.name })
          : undefined;
      const manifest: Manifest = {
        format: DETECTOR_BUNDLE_FORMAT,
        version: 1,
        kind: det.name,
        detector: det.name,
        params: { ...det.params },
        state: state.json,
        ...(written ? { stateSha256: written.sha256 } : {}),
        calibration: o.calibration,
        checkpoint,
        dataset: o.dataset,
        ...(o.splits
          ? { splits: { seed: o.splits.seed, reserved: o.splits.reserved, calibration: o.splits.calibration } }
          : {}),
        inputSeedKey: randomBytes(32).toString("hex"),
      };
      const text = `${JSON.stringify(manifest, null, 2)}\n`;
      // What we write must load: the reader's own checks, before anything is renamed into place.
      readManifest(JSON.parse(text), `saveDetectorBundle ${dir}: ${MANIFEST}`);
      await writeFile(join(tmp, MANIFEST), text);
    },
    {
      kinds: DETECTOR_BUNDLE_DIRS,
      ...(o.replace !== undefined ? { replace: o.replace } : {}),
      ...(o.forceHint ? { forceHint: o.forceHint } : {}),
      ...(o.argument ? { argument: o.argument } : {}),
    },
  );
}

/** Checks a parsed baseline manifest field by field; the message names the file and the field. Warnings go onto `warnings`. */
function readManifest(x: unknown, where: string, warnings: string[] = []): Manifest {
  const r = new FieldReader(where, "E_BUNDLE_INTEGRITY");
  const m = r.object(x, "(top level)");
  if (m.format !== DETECTOR_BUNDLE_FORMAT)
    r.fail("format", `"${DETECTOR_BUNDLE_FORMAT}" (a baseline detector bundle)`, m.format);
  if (m.version !== 1) r.fail("version", "1 (the version this badexpert reads)", m.version);
  const params: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries(r.object(m.params, "params"))) {
    if (typeof v !== "number" && typeof v !== "string" && typeof v !== "boolean")
      r.fail(`params.${k}`, "a number, string or boolean", v);
    Object.defineProperty(params, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  const calibration = readCalibration(r, m.calibration);
  if (!Number.isFinite(calibration.threshold))
    r.fail("calibration.threshold", "a finite number", calibration.threshold);
  // A baseline's scores have no range of their own here: the threshold is checked against the calibration record.
  warnings.push(...checkCalibrationRecord(calibration, r));
  const c = r.object(m.checkpoint, "checkpoint");
  const weightsSha256 = r.string(c.weightsSha256, "checkpoint.weightsSha256");
  if (!HEX64.test(weightsSha256)) r.fail("checkpoint.weightsSha256", "64 lowercase hex digits", weightsSha256);
  const stateSha256 = r.optional(m.stateSha256, (v) => r.string(v, "stateSha256"));
  const splits = r.optional(m.splits, (v): DefenseSplitSpec => {
    const o = r.object(v, "splits");
    const count = (x: unknown, k: string): number => r.number(x, `splits.${k}`, { integer: true, min: 0 });
    return {
      seed: count(o.seed, "seed"),
      reserved: count(o.reserved, "reserved"),
      calibration: count(o.calibration, "calibration"),
    };
  });
  if (stateSha256 !== undefined && !HEX64.test(stateSha256))
    r.fail("stateSha256", "64 lowercase hex digits", stateSha256);
  const inputSeedKey = r.optional(m.inputSeedKey, (v) => r.string(v, "inputSeedKey"));
  if (inputSeedKey !== undefined && !HEX64.test(inputSeedKey))
    r.fail("inputSeedKey", "64 lowercase hex digits", "(a value of another form; not shown, it is a secret)");
  const detector = r.string(m.detector, "detector", { maxLength: 100 });
  if (m.kind !== undefined && m.kind !== detector) r.fail("kind", `"${detector}" (the detector it names)`, m.kind);
  return {
    format: DETECTOR_BUNDLE_FORMAT,
    version: 1,
    ...(m.kind !== undefined ? { kind: detector } : {}),
    detector,
    params,
    state: r.object(m.state, "state"),
    ...(stateSha256 !== undefined ? { stateSha256 } : {}),
    calibration,
    checkpoint: { path: r.string(c.path, "checkpoint.path"), weightsSha256 },
    dataset: r.string(m.dataset, "dataset", { maxLength: 200 }),
    ...(splits !== undefined ? { splits } : {}),
    ...(inputSeedKey !== undefined ? { inputSeedKey } : {}),
  };
}

async function readBounded(path: string, max: number, what: string): Promise<Buffer> {
  try {
    return await readRegularFile(path, { maxBytes: max, what });
  } catch (e) {
    if (e instanceof FileReadError)
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        e.reason === "ENOENT" ? `${path} not found (${what})` : e.message,
        { cause: e },
      );
    throw e;
  }
}

export interface LoadBaselineOptions {
  /** A verification key or a required signature refuses the bundle: baseline bundles are not signed. */
  verifyKey?: unknown;
  requireSignature?: boolean;
  /** Receives each warning of the load (unsigned; a calibration record without a score range). Default: process.emitWarning. */
  onWarning?: (message: string) => void;
}

/** The kind a parsed detector.json of this format names (its `kind`, else its `detector`); null for another format. */
export function baselineKind(m: unknown): string | null {
  if (typeof m !== "object" || m === null || Reflect.get(m, "format") !== DETECTOR_BUNDLE_FORMAT) return null;
  const kind: unknown = Reflect.get(m, "kind") ?? Reflect.get(m, "detector");
  return typeof kind === "string" ? kind : "(unnamed)";
}

/** Refuses what `o` rules out for an unsigned bundle, before it is read (the message names the option). */
export function refuseSignatureOptions(
  dir: string,
  kind: string,
  o: { verifyKey?: unknown; requireSignature?: boolean },
): void {
  if (o.verifyKey !== undefined)
    throw new BadExpertError(
      "E_USAGE",
      `verifyKey (--verify-key): ${dir} is a ${kind} detector bundle, which is not signed; its checkpoint's weights are hash-checked on load instead`,
    );
  if (o.requireSignature === true)
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${dir} is a ${kind} detector bundle, which is not signed, and a signature is required (requireSignature, --require-signature)`,
    );
}

export async function loadBaselineBundle(dir: string, o: LoadBaselineOptions = {}): Promise<CalibratedDetector> {
  const path = join(dir, MANIFEST);
  const text = (await readBounded(path, MAX_MANIFEST_BYTES, "detector manifest")).toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BadExpertError("E_BUNDLE_INTEGRITY", `${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  refuseSignatureOptions(dir, baselineKind(raw) ?? "baseline", o);
  const warnings = [
    `${dir} is a baseline detector bundle, which is not signed: anyone who can write to it can change what it flags`,
  ];
  const recordWarnings: string[] = [];
  const m = readManifest(raw, path, recordWarnings);
  warnings.push(...recordWarnings.map((w) => `${path}: ${w}`));
  const entry = detectorInfo(m.detector);
  if (!entry.restore)
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${dir}: detector '${m.detector}' cannot be restored from a baseline bundle`,
    );
  const hash = await weightsHash(m.checkpoint.path);
  if (hash !== m.checkpoint.weightsSha256) {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${dir}: the checkpoint ${m.checkpoint.path} changed since the detector was fitted (weights sha256 ${hash}, expected ${m.checkpoint.weightsSha256})`,
    );
  }
  // The state (STRIP's clean pool, ...) decides scores as much as the threshold: hashed, checked on the bytes read.
  let stateBytes: Uint8Array | undefined;
  if (m.stateSha256 !== undefined) {
    const p = join(dir, STATE);
    stateBytes = await readBounded(p, MAX_STATE_BYTES, "detector state");
    if (sha256Hex(stateBytes) !== m.stateSha256)
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `${p} does not match the SHA-256 recorded in ${path}: the file was changed or replaced after the bundle was written`,
      );
  }
  let params: Record<string, ParamValue>;
  try {
    params = resolveDetectorParams(m.detector, entry.params, m.params);
  } catch (e) {
    // The parameters come from the bundle, not from the caller: a bundle problem, not a usage error.
    throw new BadExpertError("E_BUNDLE_INTEGRITY", `${path}: ${(e as Error).message}`, { cause: e });
  }
  const { model, meta } = await loadCheckpoint(m.checkpoint.path);
  let tensors = new Map<string, Tensor>();
  try {
    if (stateBytes) tensors = tensorsFromBytes(stateBytes, join(dir, STATE));
    const ctx: DetectorContext = {
      model: model.eval(),
      spec: meta.model,
      preprocessing: meta.preprocessing,
      classNames: meta.classNames,
      dataset: m.dataset,
    };
    const detector = entry.restore(ctx, params, { json: m.state, tensors });
    const report = o.onWarning ?? ((w: string) => process.emitWarning(w, { code: BUNDLE_WARNING_CODE }));
    for (const w of warnings) report(w);
    const path0 = m.dataset === meta.dataset.name ? meta.dataset.path : undefined;
    return new CalibratedDetector({
      kind: m.detector,
      scorer: detector,
      spec: meta.model,
      preprocessing: meta.preprocessing,
      classNames: meta.classNames,
      calibration: m.calibration,
      origin: {
        dataset: { name: m.dataset, ...(path0 !== undefined ? { path: path0 } : {}) },
        splits: m.splits ?? null,
        checkpoint: m.checkpoint.path,
        checkpointSha256: m.checkpoint.weightsSha256,
        attack: meta.training.attack ?? null,
      },
      seeded: entry.randomness === "seeded",
      inputSeedKey: m.inputSeedKey !== undefined ? Buffer.from(m.inputSeedKey, "hex") : null,
      trust: { signature: "unsigned", key: null, warnings },
      release: () => {
        detector.dispose();
        model.dispose();
      },
    });
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    model.dispose();
    throw e;
  }
}
