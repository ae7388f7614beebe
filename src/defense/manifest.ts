// detector.json, the manifest of a bundle: the decision (architecture, preprocessing, class
// names, score rule, threshold, target FPR, calibration statistics), how the detector was made,
// and its integrity record — the size and SHA-256 of each weight file and a SHA-256 over every
// other field. Editing the threshold or swapping a weight file is then refused on load, naming
// the file. A hash kept in the same file only catches edits by someone who does not recompute
// it; the Ed25519 signature (signature.ts) over the manifest's bytes covers that, and without one
// a threshold no calibration could give is still refused (checkCalibrationRecord).
import { createHash } from "node:crypto";
import { FieldReader } from "../util/fields.js";
import { TORCHSCRIPT_ARCH, TORCHSCRIPT_FILE } from "../models/model-source.js";
import { readClassNames, readModelSpec, readPreprocessing } from "../train/spec.js";
import { readCreation } from "./creation.js";
import type { DetectorInfo } from "./detector.js";
import { SCORE_CEILING, SCORE_FLOOR, SCORE_RULES } from "./scores.js";
import { checkCalibrationRecord, type Calibration } from "./threshold.js";
import { BadExpertError } from "../util/errors.js";

export const BUNDLE_FORMAT = "badexpert-detector";
/** The detector kind a BaDExpert manifest names (`kind`; absent in bundles written before it was recorded). */
export const BADEXPERT_KIND = "badexpert";
/** 2: integrity hashes, strict numbers (version 1 bundles had neither and are refused). */
export const BUNDLE_VERSION = 2;

export const WEIGHT_ROLES = ["model", "expert", "auxiliary"] as const;
export type WeightRole = (typeof WEIGHT_ROLES)[number];
export const WEIGHT_FILES: Readonly<Record<WeightRole, string>> = {
  model: "model.safetensors",
  expert: "expert.safetensors",
  auxiliary: "auxiliary.safetensors",
};
export const ROLE_NAMES: Readonly<Record<WeightRole, string>> = { model: "M", expert: "B", auxiliary: "M'" };
export const MANIFEST_FILE = "detector.json";

export interface WeightFileRecord {
  file: string;
  bytes: number;
  sha256: string;
}

export interface Integrity {
  algorithm: "sha256";
  weights: Record<WeightRole, WeightFileRecord>;
  /** The TorchScript program of an imported model ("torchscript" spec): it defines the computation, so it is hashed too. */
  program?: WeightFileRecord;
  /** SHA-256 of the canonical JSON of the whole manifest without this field. */
  manifest: string;
}

export interface BundleManifest extends DetectorInfo {
  format: typeof BUNDLE_FORMAT;
  kind: typeof BADEXPERT_KIND;
  version: number;
  integrity: Integrity;
}

/** JSON with object keys sorted at every level: the same value always gives the same bytes. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** The digest recorded in integrity.manifest, computed over the manifest as parsed from JSON. */
export function manifestDigest(m: unknown): string {
  if (typeof m !== "object" || m === null || Array.isArray(m)) return "";
  const integrity: unknown = "integrity" in m ? m.integrity : undefined;
  const withoutDigest =
    typeof integrity === "object" && integrity !== null && !Array.isArray(integrity)
      ? { ...integrity, manifest: undefined }
      : integrity;
  // canonicalJson skips undefined fields: the digest covers everything except itself.
  return createHash("sha256")
    .update(canonicalJson({ ...m, integrity: withoutDigest }))
    .digest("hex");
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Reads a calibration record field by field (also used by the baseline detectors' bundles). */
export function readCalibration(r: FieldReader, v: unknown): Calibration {
  const c = r.object(v, "calibration");
  const q = r.object(c.scoreQuantiles, "calibration.scoreQuantiles");
  const n = (x: unknown, p: string) => r.number(x, `calibration.${p}`);
  return {
    threshold: n(c.threshold, "threshold"),
    targetFpr: r.number(c.targetFpr, "calibration.targetFpr", { positive: true, max: 1 }),
    count: r.number(c.count, "calibration.count", { integer: true, min: 1 }),
    achievedFpr: r.number(c.achievedFpr, "calibration.achievedFpr", { min: 0, max: 1 }),
    scoreMean: n(c.scoreMean, "scoreMean"),
    scoreStd: r.number(c.scoreStd, "calibration.scoreStd", { min: 0 }),
    scoreQuantiles: {
      p50: n(q.p50, "scoreQuantiles.p50"),
      p90: n(q.p90, "scoreQuantiles.p90"),
      p99: n(q.p99, "scoreQuantiles.p99"),
    },
    ...(c.scoreMin !== undefined ? { scoreMin: n(c.scoreMin, "scoreMin") } : {}),
    ...(c.scoreMax !== undefined ? { scoreMax: n(c.scoreMax, "scoreMax") } : {}),
    ...(c.atCeiling !== undefined
      ? { atCeiling: r.number(c.atCeiling, "calibration.atCeiling", { integer: true, min: 1 }) }
      : {}),
  };
}

/**
 * Checks a parsed detector.json field by field (the message names the file and the field), that
 * the threshold is a finite JSON number equal to calibration.threshold that its rule and
 * calibration record could have produced (checkCalibrationRecord), and that the recorded SHA-256
 * matches the fields. The weight files' hashes are checked by the loader as it reads them.
 * Warnings (a manifest that loads but records less than it should) are pushed onto `warnings`.
 */
export function validateManifest(x: unknown, where: string, warnings: string[] = []): BundleManifest {
  const r = new FieldReader(where, "E_BUNDLE_INTEGRITY");
  const m = r.object(x, "(top level)");
  if (m.format !== BUNDLE_FORMAT) r.fail("format", `"${BUNDLE_FORMAT}"`, m.format);
  if (m.version === 1) {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${where}: version 1 bundles carry no integrity hashes and cannot be checked for tampering; re-run \`badexpert defend\` to rebuild the bundle`,
    );
  }
  if (m.version !== BUNDLE_VERSION)
    r.fail("version", `${BUNDLE_VERSION} (the version this badexpert reads)`, m.version);
  if (m.kind !== undefined && m.kind !== BADEXPERT_KIND)
    r.fail("kind", `"${BADEXPERT_KIND}" (the kind this format holds)`, m.kind);
  const spec = readModelSpec(r, m.spec, "spec");
  const calibration = readCalibration(r, m.calibration);
  const threshold = r.number(m.threshold, "threshold");
  const targetFpr = r.number(m.targetFpr, "targetFpr", { positive: true, max: 1 });
  if (threshold !== calibration.threshold)
    r.fail("threshold", `equal to calibration.threshold (${calibration.threshold})`, threshold);
  if (targetFpr !== calibration.targetFpr)
    r.fail("targetFpr", `equal to calibration.targetFpr (${calibration.targetFpr})`, targetFpr);
  const integrity = r.object(m.integrity, "integrity");
  if (integrity.algorithm !== "sha256") r.fail("integrity.algorithm", '"sha256"', integrity.algorithm);
  const w = r.object(integrity.weights, "integrity.weights");
  const weight = (role: WeightRole): WeightFileRecord => {
    const e = r.object(w[role], `integrity.weights.${role}`);
    // The loader opens only these fixed names, never a path taken from the manifest.
    if (e.file !== WEIGHT_FILES[role]) r.fail(`integrity.weights.${role}.file`, `"${WEIGHT_FILES[role]}"`, e.file);
    const sha = r.string(e.sha256, `integrity.weights.${role}.sha256`);
    if (!HEX64.test(sha)) r.fail(`integrity.weights.${role}.sha256`, "64 lowercase hex digits", sha);
    return {
      file: WEIGHT_FILES[role],
      bytes: r.number(e.bytes, `integrity.weights.${role}.bytes`, { integer: true, min: 8 }),
      sha256: sha,
    };
  };
  const weights: Record<WeightRole, WeightFileRecord> = {
    model: weight("model"),
    expert: weight("expert"),
    auxiliary: weight("auxiliary"),
  };
  let program: WeightFileRecord | undefined;
  if (spec.name === TORCHSCRIPT_ARCH) {
    const e = r.object(integrity.program, "integrity.program");
    if (e.file !== TORCHSCRIPT_FILE) r.fail("integrity.program.file", `"${TORCHSCRIPT_FILE}"`, e.file);
    const sha = r.string(e.sha256, "integrity.program.sha256");
    if (!HEX64.test(sha)) r.fail("integrity.program.sha256", "64 lowercase hex digits", sha);
    program = {
      file: TORCHSCRIPT_FILE,
      bytes: r.number(e.bytes, "integrity.program.bytes", { integer: true, min: 1 }),
      sha256: sha,
    };
  }
  const digest = r.string(integrity.manifest, "integrity.manifest");
  if (!HEX64.test(digest)) r.fail("integrity.manifest", "64 lowercase hex digits", digest);
  const info: DetectorInfo = {
    spec,
    preprocessing: readPreprocessing(r, m.preprocessing, "preprocessing", spec),
    classNames: readClassNames(r, m.classNames, "classNames", spec),
    rule: r.oneOf(m.rule, "rule", SCORE_RULES),
    threshold,
    targetFpr,
    calibration,
    creation: m.creation === undefined ? {} : readCreation(r, m.creation),
  };
  if (manifestDigest(x) !== digest) {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${where}: its fields do not match the SHA-256 recorded in integrity.manifest: the manifest was edited after \`badexpert defend\` wrote it; rebuild the bundle rather than editing it`,
    );
  }
  // After the digest: an edit nobody re-hashed is reported as an edit.
  warnings.push(
    ...checkCalibrationRecord(calibration, r, {
      rule: info.rule,
      floor: SCORE_FLOOR[info.rule],
      ceiling: SCORE_CEILING[info.rule],
    }),
  );
  return {
    format: BUNDLE_FORMAT,
    kind: BADEXPERT_KIND,
    version: BUNDLE_VERSION,
    integrity: { algorithm: "sha256", weights, ...(program ? { program } : {}), manifest: digest },
    ...info,
  };
}

/** The manifest for `info` and the written weight files, with its digest filled in. */
export function buildManifest(
  info: DetectorInfo,
  weights: Record<WeightRole, WeightFileRecord>,
  program?: WeightFileRecord,
): BundleManifest {
  const draft = {
    format: BUNDLE_FORMAT as typeof BUNDLE_FORMAT,
    kind: BADEXPERT_KIND as typeof BADEXPERT_KIND,
    version: BUNDLE_VERSION,
    ...info,
    integrity: { algorithm: "sha256" as const, weights, ...(program ? { program } : {}), manifest: "" },
  };
  // Hash what a reader will parse: JSON drops undefined fields and turns NaN into null.
  const parsed: unknown = JSON.parse(JSON.stringify(draft));
  return { ...draft, integrity: { ...draft.integrity, manifest: manifestDigest(parsed) } };
}
