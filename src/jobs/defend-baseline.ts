// `defend --detector NAME` for a baseline detector: the same defender splits as BaDExpert's
// `defend` (jobs/compare.ts's defenderData, defense/splits.ts), fitted on the reserved split,
// calibrated at the target FPR on the calibration split with the shared code, and written as a
// baseline detector bundle (detectors/bundle.ts) that `scan --bundle` reads.
import type { ParamValue } from "../attacks/attack.js";
import { manualSeed } from "../engine/index.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { subset } from "../data/splits.js";
import { assertWritableDir } from "../util/atomic-dir.js";
import type { Calibration } from "../defense/threshold.js";
import { detectorInfo, fitDetector } from "../detectors/registry.js";
import { calibrateDetector } from "../detectors/calibrate.js";
import { DETECTOR_BUNDLE_DIRS, saveDetectorBundle } from "../detectors/bundle.js";
import { resolveDetectorParams } from "../detectors/params.js";
import { defenderData } from "./compare.js";
import { minCalibrationCount } from "./defend.js";
import { OptionError } from "./errors.js";

export interface DefendBaselineOptions {
  checkpoint: string;
  out: string;
  detector: string;
  params?: Readonly<Record<string, ParamValue>>;
  dataset?: string;
  dataPath?: string;
  reserved?: number;
  calibration?: number;
  splitSeed?: number;
  targetFpr?: number;
  seed?: number;
  force?: boolean;
  log?: (line: string) => void;
}

export interface DefendBaselineResult {
  bundle: string;
  detector: string;
  params: Record<string, ParamValue>;
  fitted: Record<string, unknown>;
  threshold: number;
  calibration: Calibration;
  splits: { reserved: number; calibration: number; evaluation: number };
  seconds: { fit: number; calibration: number };
}

export async function defendBaseline(o: DefendBaselineOptions): Promise<DefendBaselineResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const entry = detectorInfo(o.detector);
  if (!entry.restore) throw new OptionError("detector", `'${o.detector}' has its own bundle format; build it with plain \`badexpert defend\``);
  // Bad parameters are refused before any work (fitDetector resolves them again, the same way).
  resolveDetectorParams(o.detector, entry.params, o.params ?? {});
  const targetFpr = o.targetFpr ?? 0.01;
  if (!(targetFpr > 0 && targetFpr < 1)) throw new OptionError("targetFpr", `expected a number in (0, 1), got ${targetFpr}`);
  await assertWritableDir(o.out, { kinds: DETECTOR_BUNDLE_DIRS, replace: o.force === true, forceHint: "--force", argument: "--out" });
  const { model, meta } = await loadCheckpoint(o.checkpoint);
  try {
    const { name, test, spec, splits, reserved } = await defenderData(meta, o);
    const need = minCalibrationCount(targetFpr);
    if (splits.calibration.length < need) throw new OptionError("calibration", `${splits.calibration.length} calibration images cannot calibrate a threshold at FPR ${targetFpr}: it needs at least 1/FPR = ${need}`);
    const calibration = subset(test, splits.calibration);
    log(`reserved ${reserved.count}, calibration ${calibration.count}, evaluation ${splits.evaluation.length} images of ${name}/test (split seed ${spec.seed})`);
    manualSeed(o.seed ?? 0);
    const ctx = { model: model.eval(), spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames, dataset: name };
    const t0 = process.hrtime.bigint();
    const det = await fitDetector(o.detector, ctx, { reserved, calibration }, o.params ?? {}, log);
    try {
      const fit = Number(process.hrtime.bigint() - t0) / 1e9;
      const cal = calibrateDetector(det, calibration, targetFpr, { progressLabel: `${o.detector}: calibration` });
      await saveDetectorBundle(o.out, det, { checkpoint: o.checkpoint, calibration: cal.calibration, dataset: name, splits: spec, replace: o.force === true, forceHint: "--force", argument: "--out" });
      return {
        bundle: o.out,
        detector: o.detector,
        params: { ...det.params },
        fitted: { ...det.fitted },
        threshold: cal.calibration.threshold,
        calibration: cal.calibration,
        splits: { reserved: reserved.count, calibration: calibration.count, evaluation: splits.evaluation.length },
        seconds: { fit, calibration: cal.scores.seconds },
      };
    } finally {
      det.dispose();
    }
  } finally {
    model.dispose();
  }
}
