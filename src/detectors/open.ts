// Detector bundles of every kind through one door: detector.json names the kind (`kind`; older
// bundles say it by their format), and the kind decides how the rest is stored — BaDExpert's three
// models, signed or not (defense/bundle.ts), or a baseline's parameters and state over the
// checkpoint it was fitted on (bundle.ts). openDetector() gives a CalibratedDetector either way;
// saveDetector() writes one.
import { join } from "node:path";
import { loadBundleWithTrust, saveBundle, type BundleTrust, type LoadBundleOptions } from "../defense/bundle.js";
import type { BadExpertDetector } from "../defense/detector.js";
import { BADEXPERT_KIND, MANIFEST_FILE } from "../defense/manifest.js";
import type { KeyInput } from "../defense/signature.js";
import { readRegularFile } from "../util/read-regular-file.js";
import { BadExpertEntry } from "./badexpert.js";
import {
  BASELINE_BUNDLE_DIR,
  DETECTOR_BUNDLE_DIRS,
  baselineKind,
  loadBaselineBundle,
  refuseSignatureOptions,
  saveDetectorBundle,
} from "./bundle.js";
import { CalibratedDetector, MADE_HERE_TRUST, type DetectorOrigin } from "./calibrated.js";
import { detectorInfo } from "./registry.js";

export type OpenDetectorOptions = LoadBundleOptions;

/** A manifest is a few kilobytes; a larger one is not ours (its loader then says so). */
const MAX_KIND_MANIFEST_BYTES = 16 * 1024 * 1024;

/**
 * The kind of detector `dir` holds, read from its detector.json: its `kind`, else what its format
 * implies. "badexpert" when the manifest cannot be read or parsed: BaDExpert's loader then reports
 * what is wrong with it (a missing file, a bad manifest) in its own words.
 */
export async function bundleKind(dir: string): Promise<string> {
  let m: unknown;
  try {
    m = JSON.parse(
      (
        await readRegularFile(join(dir, MANIFEST_FILE), {
          maxBytes: MAX_KIND_MANIFEST_BYTES,
          what: "detector manifest",
        })
      ).toString("utf8"),
    );
  } catch {
    return BADEXPERT_KIND;
  }
  return baselineKind(m) ?? BADEXPERT_KIND;
}

/** Whether bundles of this kind can carry a signature (BaDExpert's); a key or a required signature refuses the others. */
export function signsBundles(kind: string): boolean {
  return detectorInfo(kind).signs === true;
}

/** Refuses, before any loading, load options that a bundle of `kind` rules out whatever its files say. */
export function checkOpenOptions(
  dir: string,
  kind: string,
  o: Pick<OpenDetectorOptions, "verifyKey" | "requireSignature">,
): void {
  if (!signsBundles(kind)) refuseSignatureOptions(dir, kind, o);
}

/** Where a BaDExpert detector came from, as its creation record says. */
function badexpertOrigin(d: BadExpertDetector): DetectorOrigin {
  const c = d.info.creation;
  return {
    dataset: c.dataset ?? null,
    splits: c.splits ?? null,
    checkpoint: c.checkpoint ?? null,
    checkpointSha256: null,
    attack: c.modelTraining?.attack ?? null,
  };
}

/** A BaDExpert detector as a CalibratedDetector (takes ownership: disposing it frees the three models). */
export function badexpertDetector(d: BadExpertDetector, trust: BundleTrust = MADE_HERE_TRUST): CalibratedDetector {
  const i = d.info;
  return new CalibratedDetector({
    kind: BADEXPERT_KIND,
    scorer: new BadExpertEntry(d),
    spec: i.spec,
    preprocessing: i.preprocessing,
    classNames: i.classNames,
    calibration: i.calibration,
    origin: badexpertOrigin(d),
    seeded: false,
    inputSeedKey: null,
    trust,
    release: () => d.dispose(),
  });
}

/**
 * Opens the detector bundle in `dir`, whatever its kind. A signed bundle is verified whenever a
 * key is known; warnings (unsigned, not verified, a thin calibration record) go to `o.onWarning`
 * (default process.emitWarning) and stay in the detector's `trust`.
 */
export async function openDetector(dir: string, o: OpenDetectorOptions = {}): Promise<CalibratedDetector> {
  const kind = await bundleKind(dir);
  if (kind === BADEXPERT_KIND) {
    const { detector, trust } = await loadBundleWithTrust(dir, o);
    return badexpertDetector(detector, trust);
  }
  return loadBaselineBundle(dir, o);
}

export interface SaveDetectorOptions {
  /** Replace an existing non-empty directory when it is a detector bundle of ours (anything else is refused). */
  replace?: boolean;
  /** Ed25519 private key: sign the bundle (kinds that sign bundles only). */
  signKey?: KeyInput;
  forceHint?: string;
  argument?: string;
}

/** Writes `det` as a bundle of its kind into `dir` (atomically; see defense/bundle.ts and bundle.ts). */
export async function saveDetector(dir: string, det: CalibratedDetector, o: SaveDetectorOptions = {}): Promise<void> {
  const where = {
    ...(o.replace !== undefined ? { replace: o.replace } : {}),
    ...(o.forceHint ? { forceHint: o.forceHint } : {}),
    ...(o.argument ? { argument: o.argument } : {}),
  };
  const d = det.badexpert;
  if (d !== null) {
    await saveBundle(dir, d, {
      ...where,
      alsoReplaces: [BASELINE_BUNDLE_DIR],
      ...(o.signKey !== undefined ? { signKey: o.signKey } : {}),
    });
    return;
  }
  if (o.signKey !== undefined)
    throw new RangeError(
      `signKey: ${det.kind} detector bundles are not signed (their checkpoint's weights are hash-checked on load); only BaDExpert's bundles carry a signature`,
    );
  const { checkpoint, dataset, splits } = det.origin;
  if (checkpoint === null || dataset === null)
    throw new RangeError(
      `saveDetector ${dir}: a ${det.kind} bundle refers to the checkpoint and dataset it was fitted on, and this detector records none`,
    );
  await saveDetectorBundle(dir, det.scorer, {
    checkpoint,
    calibration: det.calibration,
    dataset: dataset.name,
    ...(splits ? { splits } : {}),
    ...where,
  });
}

export { DETECTOR_BUNDLE_DIRS };
