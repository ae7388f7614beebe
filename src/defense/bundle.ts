// A detector bundle: one directory with the three models' weights (safetensors, PyTorch key
// names), `detector.json` (see manifest.ts: the decision, how it was made, and the SHA-256 of
// every file and field) and, when signed, `detector.json.sig`. The directory is written whole
// into a temporary sibling and renamed into place, so an interrupted write leaves the old bundle.
// Loading checks everything before a detector exists: the signature (always, when a key is known:
// signature.ts says where keys are looked up), manifest fields, a threshold the rule and the
// calibration record could have produced, hashes, finite weights, that the weights fit the
// architecture, and that B and M' are not copies of M. An unsigned or unverified bundle loads
// with a warning the caller sees (refused under requireSignature). Loading it back gives a
// detector that produces identical scores.
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dispose } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { modelForSpec, saveModelSource, TORCHSCRIPT_FILE } from "../models/model-source.js";
import { saveTensors, tensorsFromFile } from "../io/weights.js";
import { parseSafetensors, readSafetensorsBytes, sha256Hex } from "../io/safetensors.js";
import { WEIGHTS_MAX_HEADER_BYTES } from "../train/checkpoint.js";
import { writeDirAtomically, type OwnedDirKind } from "../util/atomic-dir.js";
import { escapeControls } from "../util/printable.js";
import { FileReadError, readRegularFile } from "../util/read-regular-file.js";
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
import {
  MAX_SIGNATURE_BYTES,
  SIGNATURE_FILE,
  VERIFY_KEY_ENV,
  defaultVerifyKeyPath,
  resolveVerifyKey,
  signBytes,
  signingKey,
  verifyBytes,
  type KeyEnvironment,
  type KeyInput,
  type KeySource,
} from "./signature.js";
import { BadExpertError } from "../util/errors.js";

export { BUNDLE_FORMAT, BUNDLE_VERSION } from "./manifest.js";

/** A BaDExpert bundle as saveBundle writes it: what `--force` may replace. */
export const BUNDLE_DIR: OwnedDirKind = {
  what: "badexpert detector bundle",
  manifest: MANIFEST_FILE,
  files: [MANIFEST_FILE, SIGNATURE_FILE, ...Object.values(WEIGHT_FILES), TORCHSCRIPT_FILE],
  recognise: (m) => typeof m === "object" && m !== null && (m as { format?: unknown }).format === BUNDLE_FORMAT,
};

/** A manifest is tens of kilobytes at most; a larger one is not ours. */
export const MAX_MANIFEST_BYTES = 16 * 1024 * 1024;

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
  /** Refuse a bundle that is not signed, or whose signature cannot be checked because no key is known. */
  requireSignature?: boolean;
  /**
   * Receives each warning of the load (unsigned, signed but not verified, calibration record
   * without a score range). Default: process.emitWarning, which Node prints on stderr.
   */
  onWarning?: (message: string) => void;
  /** Where BADEXPERT_VERIFY_KEY, XDG_CONFIG_HOME and HOME are read to find a key (default: process.env). */
  env?: KeyEnvironment;
}

/** What the loader could establish about who made the bundle's decision. */
export interface BundleTrust {
  /**
   * verified: signed, and the signature checked with a known key; unsigned: no signature file;
   * signed-unverified: signed, but no key was known to check it with.
   */
  signature: "verified" | "unsigned" | "signed-unverified";
  /** The key the signature was checked with, and where it came from; null when no key was known. */
  key: { source: KeySource; path: string | null } | null;
  /** Everything the caller must be told (also passed to onWarning, one call each). */
  warnings: string[];
}

export interface LoadedBundle {
  detector: BadExpertDetector;
  trust: BundleTrust;
}

/** Code of the process warnings loadBundle emits when the caller gives no onWarning. */
export const BUNDLE_WARNING_CODE = "BADEXPERT_BUNDLE_TRUST";

/** Refuses a detector that could not judge (threshold NaN or ±Infinity: not calibrated, or calibration failed). */
function assertCalibrated(d: BadExpertDetector, dir: string): void {
  const t = d.info.threshold;
  if (!Number.isFinite(t) || !Number.isFinite(d.info.calibration.threshold)) {
    throw new Error(
      `saveBundle ${dir}: the detector's threshold is ${t}, not a finite number: it was never calibrated or its calibration failed; refusing to save a detector that would pass inputs it cannot judge`,
    );
  }
  if (t !== d.info.calibration.threshold)
    throw new Error(
      `saveBundle ${dir}: threshold ${t} differs from calibration.threshold ${d.info.calibration.threshold}`,
    );
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
        ...(await saveTensors(join(tmp, WEIGHT_FILES[role]), parts[role].stateDict(), {
          ...meta,
          role: ROLE_NAMES[role],
        })),
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

/** A bundle file's bytes (type and size checked before reading), or null when it does not exist. */
async function readBundleFile(path: string, what: string, maxBytes: number): Promise<Buffer | null> {
  try {
    return await readRegularFile(path, { maxBytes, what });
  } catch (e) {
    if (e instanceof FileReadError && e.reason === "ENOENT") return null;
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `bundle: ${e instanceof FileReadError ? e.message : `${path}: cannot read the ${what} (${(e as Error).message})`}`,
      { cause: e },
    );
  }
}

/** SHA-256 over a model's state_dict (names, dtypes, shapes, values): equal for models with equal weights however they were stored. */
function weightsDigest(m: Module): string {
  const h = createHash("sha256");
  for (const [k, t] of [...m.stateDict()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const d = t.data();
    h.update(`${k}\0${t.dtype}\0${t.shape.join(",")}\0`).update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest("hex");
}

/** Loads weights for one role, checking size and SHA-256 against the manifest and refusing NaN/Infinity. */
async function loadWeights(
  dir: string,
  role: WeightRole,
  rec: WeightFileRecord,
  name: string,
  build: () => Module,
): Promise<Module> {
  const p = join(dir, rec.file);
  const what = `bundle: ${p} (${ROLE_NAMES[role]})`;
  let bytes: Uint8Array;
  try {
    // At most the size the manifest records: a larger file (or a device) is refused before it is read.
    bytes = await readSafetensorsBytes(p, { maxHeaderBytes: WEIGHTS_MAX_HEADER_BYTES, maxFileBytes: rec.bytes });
  } catch (e) {
    throw new BadExpertError("E_BUNDLE_INTEGRITY", `${what}: ${(e as Error).message}`, { cause: e });
  }
  if (bytes.length !== rec.bytes || sha256Hex(bytes) !== rec.sha256) {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${what} does not match the size and SHA-256 recorded in ${MANIFEST_FILE}: the file was changed or replaced after the bundle was written`,
    );
  }
  let tensors;
  try {
    tensors = tensorsFromFile(parseSafetensors(bytes, p, { maxHeaderBytes: WEIGHTS_MAX_HEADER_BYTES }), p, {
      requireFinite: true,
    });
  } catch (e) {
    throw new BadExpertError("E_BUNDLE_INTEGRITY", `${what}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const model = build();
    try {
      model.loadStateDict(tensors, { strict: true });
    } catch (e) {
      model.dispose();
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `${what} does not fit the manifest's ${name}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return model;
  } finally {
    dispose(tensors);
  }
}

/** detector.json's bytes → a validated manifest whose digest matches (the weight files are checked by loadBundle). */
export function parseManifest(bytes: Uint8Array, where: string, warnings: string[] = []): BundleManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${where}: not valid UTF-8 JSON (${escapeControls((e as Error).message)})`,
      { cause: e },
    );
  }
  return validateManifest(raw, where, warnings);
}

/** The signature's verdict, read and checked before the manifest is parsed; throws where the bundle must be refused. */
async function checkSignature(
  dir: string,
  manifest: Uint8Array,
  o: LoadBundleOptions,
): Promise<Omit<BundleTrust, "warnings"> & { warning: string | null }> {
  const where = `bundle: ${dir}`;
  const sigPath = join(dir, SIGNATURE_FILE);
  const sig = await readBundleFile(sigPath, "signature", MAX_SIGNATURE_BYTES);
  const resolved = await resolveVerifyKey(o.verifyKey, o.env ?? process.env);
  const key = resolved ? { source: resolved.source, path: resolved.path } : null;
  const required = "a signature is required (requireSignature, --require-signature)";
  if (sig !== null) {
    if (resolved) {
      verifyBytes(manifest, sig.toString("utf8"), resolved.key, where);
      return { signature: "verified", key, warning: null };
    }
    const how = `give --verify-key, set ${VERIFY_KEY_ENV}, or put the public key at ${defaultVerifyKeyPath(o.env ?? process.env)}`;
    if (o.requireSignature)
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `${where} is signed but cannot be verified: no key (${how}); ${required}`,
      );
    return {
      signature: "signed-unverified",
      key: null,
      warning: `${where} is signed but not verified: no key (${how})`,
    };
  }
  if (resolved && resolved.source !== "default location") {
    const given =
      resolved.source === "option" ? "a verification key was given" : `${VERIFY_KEY_ENV} names a verification key`;
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${sigPath} not found: the bundle is not signed, and ${given} (sign it with \`badexpert defend --sign-key\`)`,
    );
  }
  if (o.requireSignature)
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${sigPath} not found: the bundle is not signed, and ${required} (sign it with \`badexpert defend --sign-key\`)`,
    );
  return {
    signature: "unsigned",
    key,
    warning: `${where} is not signed: anyone who can write to it can change what it flags (sign it with \`badexpert defend --sign-key\`; --require-signature refuses unsigned bundles)`,
  };
}

/** Loads a bundle (see the file's comment for what is checked); warnings go to o.onWarning, or to process.emitWarning. */
export async function loadBundle(dir: string, o: LoadBundleOptions = {}): Promise<BadExpertDetector> {
  return (await loadBundleWithTrust(dir, o)).detector;
}

/** loadBundle, also returning what could be established about the bundle's origin (for a caller that reports it). */
export async function loadBundleWithTrust(dir: string, o: LoadBundleOptions = {}): Promise<LoadedBundle> {
  const path = join(dir, MANIFEST_FILE);
  const where = `bundle: ${path}`;
  const bytes = await readBundleFile(path, "manifest", MAX_MANIFEST_BYTES);
  if (bytes === null)
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${where} not found (is ${dir} a detector bundle made by \`badexpert defend\`?)`,
    );
  const { warning, ...signature } = await checkSignature(dir, bytes, o);
  const warnings = warning === null ? [] : [warning];
  const manifestWarnings: string[] = [];
  const m = parseManifest(bytes, where, manifestWarnings);
  warnings.push(...manifestWarnings.map((w) => `bundle: ${dir}: ${w}`));
  // The TorchScript program of an imported model is checked on the very bytes libtorch loads.
  const program = m.integrity.program ? { sha256: m.integrity.program.sha256, recordedIn: path } : {};
  const made: Module[] = [];
  try {
    const load = async (role: WeightRole): Promise<Module> => {
      const model = await loadWeights(dir, role, m.integrity.weights[role], m.spec.name, () =>
        modelForSpec(m.spec, dir, program),
      );
      made.push(model);
      return model;
    };
    const model = await load("model");
    const expert = await load("expert");
    const auxiliary = await load("auxiliary");
    refuseCopies(dir, { model, expert, auxiliary });
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
    const detector = new BadExpertDetector({ model, expert, auxiliary }, info);
    const report = o.onWarning ?? ((w: string) => process.emitWarning(w, { code: BUNDLE_WARNING_CODE }));
    for (const w of warnings) report(w);
    return { detector, trust: { ...signature, warnings } };
  } catch (e) {
    for (const x of made) x.dispose();
    throw e;
  }
}

/**
 * B and M' are M changed by two different finetunings (unlearning, clean finetuning). A file
 * holding M's weights, or the other one's, makes b or a M's own confidence, and the score no
 * longer separates backdoored inputs: a detector that cannot work, which is what copying M over
 * a weight file and re-hashing the manifest would make. Compared on the loaded values, so a copy
 * stored in another dtype, tensor order or metadata is still one.
 */
function refuseCopies(dir: string, parts: Record<WeightRole, Module>): void {
  const digest = {
    model: weightsDigest(parts.model),
    expert: weightsDigest(parts.expert),
    auxiliary: weightsDigest(parts.auxiliary),
  };
  const pairs: [WeightRole, WeightRole][] = [
    ["expert", "model"],
    ["auxiliary", "model"],
    ["auxiliary", "expert"],
  ];
  for (const [a, b] of pairs) {
    if (digest[a] === digest[b]) {
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `bundle: ${dir}: ${WEIGHT_FILES[a]} (${ROLE_NAMES[a]}) holds the same weights as ${WEIGHT_FILES[b]} (${ROLE_NAMES[b]}): ${ROLE_NAMES[a]} must be ${ROLE_NAMES[b]} changed by its own finetuning, and a copy makes a detector that cannot tell backdoored inputs apart; rebuild the bundle with \`badexpert defend\``,
      );
    }
  }
}
