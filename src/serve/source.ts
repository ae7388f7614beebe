// Where the scoring workers get the detector from. Workers are separate JS environments: a
// tensor made on the main thread cannot cross into them, so a detector is either a bundle
// directory each worker loads itself, or the three models' weights serialised to safetensors
// bytes (the same codec as bundle files) that each worker copies into its own models.
import { createHash } from "node:crypto";
import { access, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { BadExpertDetector, DetectorInfo } from "../defense/detector.js";
import { serializeSafetensors, type RawTensor } from "../io/safetensors.js";
import { toRaw } from "../io/weights.js";
import type { Module } from "../nn/index.js";
import { BASELINE_BUNDLE_FILES, baselineBundleDetector } from "../detectors/bundle.js";

export const ROLES = ["model", "expert", "auxiliary"] as const;
export type Role = (typeof ROLES)[number];

export type DetectorSource =
  | { kind: "bundle"; dir: string }
  /** A baseline detector bundle (`defend --detector NAME`): loaded through the detector registry. */
  | { kind: "baseline"; dir: string; detector: string }
  | { kind: "weights"; info: DetectorInfo; weights: Record<Role, Uint8Array> };

/** A source read from a bundle directory (BaDExpert's or a baseline's). */
export type BundleSource = Exclude<DetectorSource, { kind: "weights" }>;

/** A bundle directory as a source: which kind it holds is decided here, once per (re)load. */
export async function bundleSource(dir: string): Promise<BundleSource> {
  const detector = await baselineBundleDetector(dir);
  return detector === null ? { kind: "bundle", dir } : { kind: "baseline", dir, detector };
}

function weightsOf(m: Module): Uint8Array {
  const raw = new Map<string, RawTensor>();
  for (const [k, t] of m.stateDict()) raw.set(k, toRaw(t, k));
  return serializeSafetensors(raw);
}

/** Copies a detector living on this thread into a source workers can rebuild it from. */
export function sourceFromDetector(d: BadExpertDetector): DetectorSource {
  // workerData is structured-cloned; cloning here makes a manifest that cannot cross fail now, clearly.
  const info = structuredClone(d.info);
  return { kind: "weights", info, weights: { model: weightsOf(d.model), expert: weightsOf(d.expert), auxiliary: weightsOf(d.auxiliary) } };
}

const BUNDLE_FILES: Record<Role | "manifest", string> = {
  model: "model.safetensors",
  expert: "expert.safetensors",
  auxiliary: "auxiliary.safetensors",
  manifest: "detector.json",
};

/**
 * SHA-256 of what the workers load, for GET /v1/detector: an operator can check which bundle
 * is live (and that a SIGHUP reload took). For a bundle the file bytes, for in-memory weights
 * the serialised weights.
 */
export async function sourceHashes(s: DetectorSource): Promise<Record<string, string>> {
  const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
  if (s.kind === "weights") return Object.fromEntries(ROLES.map((r) => [r, sha(s.weights[r])]));
  const out: Record<string, string> = {};
  // A baseline bundle: its manifest and, when the detector keeps tensors, its state file (the
  // checkpoint's weights hash is in the manifest, checked by the loader).
  const files = s.kind === "bundle" ? Object.entries(BUNDLE_FILES) : Object.entries(BASELINE_BUNDLE_FILES);
  for (const [role, file] of files) {
    if (s.kind === "baseline" && role === "state" && !(await exists(join(s.dir, file)))) continue;
    try {
      out[file] = sha(await readFile(join(s.dir, file)));
    } catch (e) {
      throw new Error(`bundle: ${join(s.dir, file)} (${role}): cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
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
