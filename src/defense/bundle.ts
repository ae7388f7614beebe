// A detector bundle: one directory with the three models' weights (safetensors, PyTorch key
// names), `detector.json` (see manifest.ts: the decision, how it was made, and the SHA-256 of
// every file and field) and, when signed, `detector.json.sig`. The directory is written whole
// into a temporary sibling and renamed into place, so an interrupted write leaves the old bundle.
// Loading checks everything before a detector exists: signature (when asked for), manifest
// fields, hashes, finite weights, and that the weights fit the architecture. Loading it back
// gives a detector that produces identical scores.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dispose } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { modelForSpec, saveModelSource, TORCHSCRIPT_FILE } from "../models/model-source.js";
import { saveTensors, tensorsFromFile } from "../io/weights.js";
import { parseSafetensors, readSafetensorsBytes, sha256Hex } from "../io/safetensors.js";
import { WEIGHTS_MAX_HEADER_BYTES } from "../train/checkpoint.js";
import { writeDirAtomically, type OwnedDirKind } from "../util/atomic-dir.js";
import { escapeControls } from "../util/printable.js";
import { BadExpertDetector, type DetectorInfo } from "./detector.js";
import {
  BUNDLE_FORMAT,
  MANIFEST_FILE,
  ROLE_NAMES,
  WEIGHT_FILES,
  buildManifest,
  validateManifest,
  type BundleManifest,
  type WeightFileRecord,
  type WeightRole,
} from "./manifest.js";
import { SIGNATURE_FILE, signBytes, signingKey, verifyBytes, verifyingKey, type KeyInput } from "./signature.js";

export { BUNDLE_FORMAT, BUNDLE_VERSION } from "./manifest.js";

/** A BaDExpert bundle as saveBundle writes it: what `--force` may replace. */
export const BUNDLE_DIR: OwnedDirKind = {
  what: "badexpert detector bundle",
  manifest: MANIFEST_FILE,
  files: [MANIFEST_FILE, SIGNATURE_FILE, ...Object.values(WEIGHT_FILES), TORCHSCRIPT_FILE],
  recognise: (m) => typeof m === "object" && m !== null && (m as { format?: unknown }).format === BUNDLE_FORMAT,
};

/** A manifest is a few kilobytes (tens with canary tables); a larger one is not ours. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface SaveBundleOptions {
  /** Replace an existing non-empty directory when it is a detector bundle of ours (anything else is refused). */
  replace?: boolean;
  /** Other kinds of directory of ours that may be replaced too (e.g. a baseline detector's bundle). */
  alsoReplaces?: readonly OwnedDirKind[];
  /** Ed25519 private key (KeyObject or PEM path): also writes detector.json.sig. */
  signKey?: KeyInput;
  /** How the user allows replacing, for the refusal message (e.g. "--force"). */
  forceHint?: string;
  /** The option that named the directory, for messages (e.g. "--out"). */
  argument?: string;
}

export interface LoadBundleOptions {
  /** Ed25519 public key (KeyObject or PEM path): refuse the bundle unless detector.json is signed by its private key. */
  verifyKey?: KeyInput;
}

/** Refuses a detector that could not judge (threshold NaN or ±Infinity: not calibrated, or calibration failed). */
function assertCalibrated(d: BadExpertDetector, dir: string): void {
  const t = d.info.threshold;
  if (!Number.isFinite(t) || !Number.isFinite(d.info.calibration.threshold)) {
    throw new Error(`saveBundle ${dir}: the detector's threshold is ${t}, not a finite number: it was never calibrated or its calibration failed; refusing to save a detector that would pass inputs it cannot judge`);
  }
  if (t !== d.info.calibration.threshold) throw new Error(`saveBundle ${dir}: threshold ${t} differs from calibration.threshold ${d.info.calibration.threshold}`);
}

export async function saveBundle(dir: string, d: BadExpertDetector, o: SaveBundleOptions = {}): Promise<void> {
  assertCalibrated(d, dir);
  const key = o.signKey === undefined ? undefined : await signingKey(o.signKey);
  const parts: Record<WeightRole, Module> = { model: d.model, expert: d.expert, auxiliary: d.auxiliary };
  await writeDirAtomically(
    dir,
    async (tmp) => {
      const meta = { format: BUNDLE_FORMAT, architecture: d.info.spec.name };
      const save = async (role: WeightRole): Promise<WeightFileRecord> => ({
        file: WEIGHT_FILES[role],
        ...(await saveTensors(join(tmp, WEIGHT_FILES[role]), parts[role].stateDict(), { ...meta, role: ROLE_NAMES[role] })),
      });
      const weights = { model: await save("model"), expert: await save("expert"), auxiliary: await save("auxiliary") };
      // An imported TorchScript model also needs its program (hashed like the weights).
      const source = saveModelSource(tmp, d.model, d.info.spec);
      const program: WeightFileRecord | undefined = source ? { file: TORCHSCRIPT_FILE, ...source } : undefined;
      const manifest = buildManifest(d.info, weights, program);
      const text = `${JSON.stringify(manifest, null, 2)}\n`;
      // What we write must load: the same validation a reader runs, before anything is renamed into place.
      validateManifest(JSON.parse(text), `saveBundle ${dir}: ${MANIFEST_FILE}`);
      const bytes = Buffer.from(text, "utf8");
      await writeFile(join(tmp, MANIFEST_FILE), bytes);
      if (key) await writeFile(join(tmp, SIGNATURE_FILE), signBytes(bytes, key));
    },
    {
      kinds: [BUNDLE_DIR, ...(o.alsoReplaces ?? [])],
      ...(o.replace !== undefined ? { replace: o.replace } : {}),
      ...(o.forceHint ? { forceHint: o.forceHint } : {}),
      ...(o.argument ? { argument: o.argument } : {}),
    },
  );
}

async function readSmall(path: string, what: string, max: number): Promise<Buffer | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw new Error(`bundle: ${path}: cannot read ${what} (${code ?? (e as Error).message})`, { cause: e });
  }
  if (bytes.length > max) throw new Error(`bundle: ${path}: ${bytes.length} bytes, more than a ${what} can be (${max})`);
  return bytes;
}

/** Loads weights for one role, checking size and SHA-256 against the manifest and refusing NaN/Infinity. */
async function loadWeights(dir: string, role: WeightRole, rec: WeightFileRecord, name: string, build: () => Module): Promise<Module> {
  const p = join(dir, rec.file);
  const what = `bundle: ${p} (${ROLE_NAMES[role]})`;
  let bytes: Uint8Array;
  try {
    bytes = await readSafetensorsBytes(p, { maxHeaderBytes: WEIGHTS_MAX_HEADER_BYTES, maxFileBytes: rec.bytes });
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`, { cause: e });
  }
  if (bytes.length !== rec.bytes || sha256Hex(bytes) !== rec.sha256) {
    throw new Error(`${what} does not match the size and SHA-256 recorded in ${MANIFEST_FILE}: the file was changed or replaced after the bundle was written`);
  }
  let tensors;
  try {
    tensors = tensorsFromFile(parseSafetensors(bytes, p, { maxHeaderBytes: WEIGHTS_MAX_HEADER_BYTES }), p, { requireFinite: true });
  } catch (e) {
    throw new Error(`${what}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const model = build();
    try {
      model.loadStateDict(tensors, { strict: true });
    } catch (e) {
      model.dispose();
      throw new Error(`${what} does not fit the manifest's ${name}: ${(e as Error).message}`, { cause: e });
    }
    return model;
  } finally {
    dispose(tensors);
  }
}

/** detector.json's bytes → a validated manifest whose digest matches (the weight files are checked by loadBundle). */
export function parseManifest(bytes: Uint8Array, where: string): BundleManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new Error(`${where}: not valid UTF-8 JSON (${escapeControls((e as Error).message)})`, { cause: e });
  }
  return validateManifest(raw, where);
}

export async function loadBundle(dir: string, o: LoadBundleOptions = {}): Promise<BadExpertDetector> {
  const path = join(dir, MANIFEST_FILE);
  const where = `bundle: ${path}`;
  const bytes = await readSmall(path, "manifest", MAX_MANIFEST_BYTES);
  if (bytes === null) throw new Error(`${where} not found (is ${dir} a detector bundle made by \`badexpert defend\`?)`);
  if (o.verifyKey !== undefined) {
    const key = await verifyingKey(o.verifyKey);
    const sig = await readSmall(join(dir, SIGNATURE_FILE), "signature", 1024);
    if (sig === null) throw new Error(`bundle: ${join(dir, SIGNATURE_FILE)} not found: the bundle is not signed, and a verification key was given (sign it with \`badexpert defend --sign-key\`)`);
    verifyBytes(bytes, sig.toString("utf8"), key, `bundle: ${dir}`);
  }
  const m = parseManifest(bytes, where);
  // The TorchScript program of an imported model is checked on the very bytes libtorch loads.
  const program = m.integrity.program ? { sha256: m.integrity.program.sha256, recordedIn: path } : {};
  const made: Module[] = [];
  try {
    const load = async (role: WeightRole): Promise<Module> => {
      const model = await loadWeights(dir, role, m.integrity.weights[role], m.spec.name, () => modelForSpec(m.spec, dir, program));
      made.push(model);
      return model;
    };
    const model = await load("model");
    const expert = await load("expert");
    const auxiliary = await load("auxiliary");
    const info: DetectorInfo = {
      spec: m.spec,
      preprocessing: m.preprocessing,
      classNames: m.classNames,
      rule: m.rule,
      threshold: m.threshold,
      targetFpr: m.targetFpr,
      calibration: m.calibration,
      creation: m.creation,
    };
    return new BadExpertDetector({ model, expert, auxiliary }, info);
  } catch (e) {
    for (const x of made) x.dispose();
    throw e;
  }
}
