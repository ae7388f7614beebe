// A fitted baseline detector on disk: detector.json (name, resolved parameters, saved state, the
// calibrated threshold, the checkpoint it was fitted on and that checkpoint's weight hash) and,
// when the detector keeps tensors (STRIP's clean pool), state.safetensors. Loading refuses a
// checkpoint whose weights changed since (fail closed: the threshold belongs to that model).
// BaDExpert keeps its own bundle format (defense/bundle.ts).
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Tensor } from "../engine/index.js";
import { loadTensors, saveTensors } from "../io/weights.js";
import { loadCheckpoint, MODEL_WEIGHTS } from "../train/checkpoint.js";
import type { Calibration } from "../defense/threshold.js";
import type { ParamValue } from "../attacks/attack.js";
import type { InputDetector } from "./detector.js";
import { detectorInfo } from "./registry.js";
import { resolveDetectorParams } from "./params.js";

export const DETECTOR_BUNDLE_FORMAT = "badexpert-baseline-detector";
const MANIFEST = "detector.json";
const STATE = "state.safetensors";

interface Manifest {
  format: typeof DETECTOR_BUNDLE_FORMAT;
  version: 1;
  detector: string;
  params: Record<string, ParamValue>;
  state: Record<string, unknown>;
  calibration: Calibration;
  checkpoint: { path: string; weightsSha256: string };
  dataset: string;
}

async function weightsHash(checkpoint: string): Promise<string> {
  return createHash("sha256").update(await readFile(join(checkpoint, MODEL_WEIGHTS))).digest("hex");
}

export async function saveDetectorBundle(dir: string, det: InputDetector, o: { checkpoint: string; calibration: Calibration; dataset: string }): Promise<void> {
  const entry = detectorInfo(det.name);
  if (!det.state || !entry.restore) throw new RangeError(`saveDetectorBundle: '${det.name}' has its own bundle format; use its own save (badexpert: \`badexpert defend\`)`);
  if (!Number.isFinite(o.calibration.threshold)) throw new RangeError(`saveDetectorBundle: the threshold must be finite, got ${o.calibration.threshold}`);
  const state = det.state();
  await mkdir(dir, { recursive: true });
  if (state.tensors.size > 0) await saveTensors(join(dir, STATE), state.tensors, { format: DETECTOR_BUNDLE_FORMAT, detector: det.name });
  const manifest: Manifest = {
    format: DETECTOR_BUNDLE_FORMAT,
    version: 1,
    detector: det.name,
    params: { ...det.params },
    state: state.json,
    calibration: o.calibration,
    checkpoint: { path: resolve(o.checkpoint), weightsSha256: await weightsHash(o.checkpoint) },
    dataset: o.dataset,
  };
  await writeFile(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
}

export interface LoadedDetector {
  detector: InputDetector;
  calibration: Calibration;
  threshold: number;
  checkpoint: string;
  /** Frees the detector and the model it was rebuilt on. */
  dispose(): void;
}

export async function loadDetectorBundle(dir: string): Promise<LoadedDetector> {
  const raw: unknown = JSON.parse(await readFile(join(dir, MANIFEST), "utf8"));
  if (typeof raw !== "object" || raw === null || Reflect.get(raw, "format") !== DETECTOR_BUNDLE_FORMAT) {
    throw new Error(`${dir}: not a baseline detector bundle (${MANIFEST} must have format '${DETECTOR_BUNDLE_FORMAT}')`);
  }
  const m = raw as Manifest;
  const entry = detectorInfo(m.detector);
  if (!entry.restore) throw new Error(`${dir}: detector '${m.detector}' cannot be restored from a baseline bundle`);
  const hash = await weightsHash(m.checkpoint.path);
  if (hash !== m.checkpoint.weightsSha256) {
    throw new Error(`${dir}: the checkpoint ${m.checkpoint.path} changed since the detector was fitted (weights sha256 ${hash}, expected ${m.checkpoint.weightsSha256})`);
  }
  const params = resolveDetectorParams(m.detector, entry.params, m.params);
  const { model, meta } = await loadCheckpoint(m.checkpoint.path);
  let tensors = new Map<string, Tensor>();
  try {
    if (existsSync(join(dir, STATE))) tensors = (await loadTensors(join(dir, STATE))).tensors;
    const ctx = { model: model.eval(), spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames, dataset: m.dataset };
    const detector = entry.restore(ctx, params, { json: m.state, tensors });
    return {
      detector,
      calibration: m.calibration,
      threshold: m.calibration.threshold,
      checkpoint: m.checkpoint.path,
      dispose: () => {
        detector.dispose();
        model.dispose();
      },
    };
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    model.dispose();
    throw e;
  }
}
