// Where the scoring workers get the detector from. Workers are separate JS environments: a
// tensor made on the main thread cannot cross into them, so a detector is either a bundle
// directory each worker opens itself (any kind: detectors/open.ts), or BaDExpert's three models'
// weights serialised to safetensors bytes (the same codec as bundle files) that each worker copies
// into its own models.
import { createHash } from "node:crypto";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { MAX_MANIFEST_BYTES, type BundleTrust } from "../defense/bundle.js";
import type { KeyEnvironment, KeyInput } from "../defense/signature.js";
import type { BadExpertDetector, DetectorInfo } from "../defense/detector.js";
import { serializeSafetensors, type RawTensor } from "../io/safetensors.js";
import { toRaw } from "../io/weights.js";
import type { Module } from "../nn/index.js";
import { BASELINE_BUNDLE_FILES } from "../detectors/bundle.js";
import { bundleKind, checkOpenOptions, signsBundles } from "../detectors/open.js";
import { FileReadError, sha256OfRegularFile } from "../util/read-regular-file.js";
import { BadExpertError, codeOr } from "../util/errors.js";

export const ROLES = ["model", "expert", "auxiliary"] as const;
export type Role = (typeof ROLES)[number];

export type DetectorSource =
  /** A detector bundle directory; `detector` is the kind its manifest names. */
  | { kind: "bundle"; dir: string; detector: string }
  /** `trust`: what loading the bundle it came from established; null for a detector made in this process. */
  | { kind: "weights"; info: DetectorInfo; weights: Record<Role, Uint8Array>; trust: BundleTrust | null };

/**
 * How each worker loads a bundle (start-up and SIGHUP reloads alike): `verifyKey`, a path to an
 * Ed25519 public key the signature must verify against (default: BADEXPERT_VERIFY_KEY, then the
 * default key location; see defense/signature.ts); `requireSignature` refuses a bundle that is
 * unsigned or cannot be verified.
 */
export interface BundleLoad {
  verifyKey?: KeyInput;
  requireSignature?: boolean;
  /** Where BADEXPERT_VERIFY_KEY, XDG_CONFIG_HOME and HOME are read (default: the process's environment). */
  env?: KeyEnvironment;
}

/** What the service reports of a detector that did not come from a bundle it loaded: none was verified. */
const IN_MEMORY_TRUST: BundleTrust = {
  signature: "unsigned",
  key: null,
  warnings: ["the detector was handed to the service in memory, not loaded from a signed bundle: nothing was verified"],
};

/** The trust a weights source carries into the workers' reports. */
export function weightsTrust(s: Extract<DetectorSource, { kind: "weights" }>): BundleTrust {
  return s.trust ?? IN_MEMORY_TRUST;
}

/**
 * Refuses, before any worker starts, a source that `bundleLoad` rules out whatever its files say:
 * a bundle of a kind that is never signed with a key or requireSignature, and an in-memory
 * detector not loaded from a verified bundle under requireSignature. Bundles are checked by each
 * worker's load.
 */
export function checkSourceAgainst(s: DetectorSource, bundleLoad: BundleLoad): void {
  if (s.kind === "bundle") {
    try {
      checkOpenOptions(s.dir, s.detector, bundleLoad);
    } catch (e) {
      throw new BadExpertError(
        codeOr(e, "E_USAGE"),
        `serve: ${(e as Error).message.replace(/^verifyKey \(--verify-key\)/, "bundleLoad.verifyKey (--verify-key)")}`,
        { cause: e },
      );
    }
    return;
  }
  if (bundleLoad.requireSignature === true && weightsTrust(s).signature !== "verified") {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      "serve: the detector was not loaded from a verified signed bundle, and a signature is required (bundleLoad.requireSignature); load it with Detector.load(dir, { requireSignature: true }) or serve the bundle directory",
    );
  }
}

/** A source read from a bundle directory. */
export type BundleSource = Extract<DetectorSource, { kind: "bundle" }>;

/** A bundle directory as a source: which kind it holds is decided here, once per (re)load. */
export async function bundleSource(dir: string): Promise<BundleSource> {
  return { kind: "bundle", dir, detector: await bundleKind(dir) };
}

function weightsOf(m: Module): Uint8Array {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of m.stateDict()) raw.set(k, toRaw(t, k));
  return serializeSafetensors(raw);
}

/** Copies a detector living on this thread into a source workers can rebuild it from; `trust`: its bundle's, when it was loaded from one. */
export function sourceFromDetector(d: BadExpertDetector, trust: BundleTrust | null = null): DetectorSource {
  // workerData is structured-cloned; cloning here makes a manifest that cannot cross fail now, clearly.
  const info = structuredClone(d.info);
  return {
    kind: "weights",
    info,
    weights: { model: weightsOf(d.model), expert: weightsOf(d.expert), auxiliary: weightsOf(d.auxiliary) },
    trust: trust ? structuredClone(trust) : null,
  };
}

/** The largest weight or state file hashed: far above any model the service can hold. */
const MAX_HASHED_BYTES = 2 ** 34;

const BUNDLE_FILES: Record<string, string> = {
  model: "model.safetensors",
  expert: "expert.safetensors",
  auxiliary: "auxiliary.safetensors",
  manifest: "detector.json",
};

/**
 * SHA-256 of what the workers load, for GET /v1/detector: an operator can check which bundle
 * is live (and that a SIGHUP reload took). For a bundle the file bytes (BaDExpert's three weight
 * files, or a baseline's state file, and the manifest), for in-memory weights the serialised
 * weights. A baseline's checkpoint weights hash is in its manifest, checked by the loader.
 */
export async function sourceHashes(s: DetectorSource): Promise<Record<string, string>> {
  const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
  if (s.kind === "weights") return Object.fromEntries(ROLES.map((r) => [r, sha(s.weights[r])]));
  const out: Record<string, string> = {};
  const files = signsBundles(s.detector) ? Object.entries(BUNDLE_FILES) : Object.entries(BASELINE_BUNDLE_FILES);
  for (const [role, file] of files) {
    // A baseline that keeps no tensors writes no state file.
    if (role === "state" && !(await exists(join(s.dir, file)))) continue;
    try {
      // Streamed, with the file's type and size checked first (a FIFO or a device is refused, not waited on).
      out[file] = (
        await sha256OfRegularFile(join(s.dir, file), {
          maxBytes: role === "manifest" ? MAX_MANIFEST_BYTES : MAX_HASHED_BYTES,
          what: `${role} file`,
        })
      ).sha256;
    } catch (e) {
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `bundle: ${join(s.dir, file)} (${role}): cannot read (${e instanceof FileReadError ? e.problem : (e as Error).message})`,
        { cause: e },
      );
    }
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
