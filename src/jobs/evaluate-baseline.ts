// evaluate-defense on a baseline detector bundle (`defend --detector NAME`): the bundle's recorded
// splits of the test set are rebuilt, the attack is applied to the evaluation split, and the
// baseline is measured with the same calibration and metric code as BaDExpert
// (detectors/calibrate.ts, detectors/evaluate.ts over defense/threshold.ts and defense/metrics.ts).
// The report leaves out what needs B and M' (the (b, a) plane, "What the detector saw") and says why.
import { loadAttack } from "../attacks/load.js";
import { manualSeed } from "../engine/index.js";
import { subset } from "../data/splits.js";
import { defenseSplits } from "../defense/splits.js";
import { loadDetectorBundle } from "../detectors/bundle.js";
import { calibrateDetector } from "../detectors/calibrate.js";
import { evaluateDetector } from "../detectors/evaluate.js";
import { writeReport } from "../report/report.js";
import { limited, recordedAttack } from "./compare.js";
import { testSplit } from "./defend.js";
import { OptionError } from "./errors.js";
import type { EvaluateBundleOptions, EvaluateBundleResult } from "./evaluate-types.js";
import { BadExpertError } from "../util/errors.js";

/** Seed of libtorch's generator before scoring (TeCo's and CD's random draws), so a rerun gives the same figures. */
const SCORING_SEED = 0;

export async function evaluateBaselineBundle(o: EvaluateBundleOptions, detector: string): Promise<EvaluateBundleResult> {
  // Options that only mean something for BaDExpert's bundle are refused before any work.
  if (o.parts === true) throw new OptionError("parts", `M, B and M' on their own are BaDExpert's; ${o.bundle} is a baseline detector bundle (${detector})`);
  if (o.rule !== undefined) throw new OptionError("rule", `score rules are BaDExpert's; ${o.bundle} is a baseline detector bundle (${detector})`);
  if (o.verifyKey !== undefined) throw new OptionError("verifyKey", `${o.bundle} is a baseline detector bundle (${detector}), which is not signed; its checkpoint's weights are hash-checked on load instead`);
  if (o.targetFpr !== undefined && !(o.targetFpr > 0 && o.targetFpr < 1)) throw new OptionError("targetFpr", `expected a number in (0, 1), got ${o.targetFpr}`);
  const loaded = await loadDetectorBundle(o.bundle);
  try {
    const det = loaded.detector;
    if (!loaded.splits) throw new BadExpertError("E_BUNDLE_INTEGRITY", `${o.bundle}: the bundle does not record its splits (written by an older badexpert); fit it again with \`badexpert defend --detector ${detector}\``);
    const meta = loaded.checkpointMeta;
    const recorded = recordedAttack(meta.training.attack);
    const attackName = o.attack ?? recorded?.name;
    if (!attackName) throw new Error("an attack is needed: the model's checkpoint records none (give --attack)");
    const params = o.attack && o.attack !== recorded?.name ? (o.attackParams ?? {}) : { ...(recorded?.params ?? {}), ...(o.attackParams ?? {}) };
    const { preprocessing: p, spec } = loaded.context;
    const [h, w] = p.imageSize;
    const path = o.dataPath ?? (loaded.dataset === meta.dataset.name ? meta.dataset.path : undefined);
    const test = await testSplit(loaded.dataset, path, [h, w], p.channels);
    const splits = defenseSplits(test.count, loaded.splits);
    const attack = await loadAttack(attackName, params, { numClasses: test.classNames.length, height: h, width: w, channels: test.channels, dataset: loaded.dataset }, loaded.checkpoint);
    manualSeed(SCORING_SEED);
    const calibration = o.targetFpr === undefined ? loaded.calibration : calibrateDetector(det, subset(test, splits.calibration), o.targetFpr, o.progress ? { progressLabel: `${detector}: calibration` } : {}).calibration;
    const evaluation = subset(test, limited(splits.evaluation, o.evaluationLimit, { seed: loaded.splits.seed }));
    const poisonedSet = attack.poisonedTestSet(evaluation);
    const e = evaluateDetector(det, calibration.threshold, evaluation, poisonedSet, { progress: o.progress ?? false });
    const seconds = e.clean.seconds + e.poisoned.seconds;
    const clean = { score: e.clean.score, pred: e.clean.pred, label: evaluation.labels };
    const poisoned = { score: e.poisoned.score, pred: e.poisoned.pred, label: poisonedSet.targetLabels };
    const result: EvaluateBundleResult = {
      detector,
      metrics: e.metrics,
      clean,
      poisoned,
      scoringRate: (evaluation.count + poisonedSet.dataset.count) / Math.max(seconds, 1e-9),
      seconds,
      attack: { name: attack.name, params: { ...attack.params } },
      rule: null,
      threshold: calibration.threshold,
      targetFpr: calibration.targetFpr,
      dataset: loaded.dataset,
      model: spec.name,
      reportFiles: null,
    };
    if (o.report) {
      const s = loaded.splits;
      result.reportFiles = await writeReport(o.report, {
        title: `${detector} vs ${attack.name} — ${loaded.dataset}, ${spec.name}`,
        dataset: loaded.dataset,
        model: spec.name,
        attack: result.attack,
        rule: null,
        baseline: { name: detector, params: { ...det.params } },
        threshold: calibration.threshold,
        targetFpr: calibration.targetFpr,
        metrics: e.metrics,
        clean,
        poisoned,
        details: {
          bundle: o.bundle,
          checkpoint: `${loaded.checkpoint} (weights sha256 ${loaded.weightsSha256})`,
          "reserved / calibration / evaluation images": `${s.reserved} / ${s.calibration} / ${evaluation.count} of ${splits.evaluation.length} (split seed ${s.seed})`,
          "calibration FPR achieved": `${(100 * calibration.achievedFpr).toFixed(2)}% of ${calibration.count}`,
          "inputs with a non-finite score (flagged)": e.nonFinite,
          "scoring cost": `${e.secondsPer1000.toFixed(2)} s per 1,000 inputs (${result.scoringRate.toFixed(0)} inputs/s)`,
          fitted: JSON.stringify(det.fitted),
        },
      });
    }
    return result;
  } finally {
    loaded.dispose();
  }
}
