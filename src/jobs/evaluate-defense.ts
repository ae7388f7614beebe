// The evaluate-defense job, shared by the CLI, the demo and the benchmarks: load a bundle, rebuild
// its recorded splits, apply an attack to the evaluation split, measure, and write the report.
// Instead of a built-in attack, the triggered side can be the user's own triggered inputs or a
// trigger image stamped on the evaluation split (triggered-inputs.ts): what a model with no
// attack recorded (an imported one) is evaluated against.
// A baseline detector bundle goes to evaluate-baseline.ts (same metric and threshold code).
import { loadAttack } from "../attacks/load.js";
import { subset } from "../data/splits.js";
import { loadBundle } from "../defense/bundle.js";
import { defenseSplits } from "../defense/splits.js";
import { evaluateDefense } from "../defense/evaluate.js";
import { recalibrate } from "../defense/recalibrate.js";
import { assertReportDir, writeReport } from "../report/report.js";
import { baselineBundleDetector } from "../detectors/bundle.js";
import { evaluateBaselineBundle } from "./evaluate-baseline.js";
import type { EvaluateBundleOptions, EvaluateBundleResult } from "./evaluate-types.js";
import { limited } from "./compare.js";
import { testSplit } from "./defend.js";
import type { Attack } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { ScoredInputs } from "../defense/evaluate.js";
import type { ForensicsSection } from "../report/report.js";
import { meanImage, summariseFlagged } from "../forensics/explain.js";
import { DEFAULT_SALIENCY_METHOD, type SaliencyMethod } from "../forensics/saliency.js";
import { checkScoringDevice } from "./device.js";
import { OptionError } from "./errors.js";
import { evaluateTriggered, triggerImageInputs, triggeredSetInputs, type TriggeredInputs } from "./triggered-inputs.js";
import { BadExpertError } from "../util/errors.js";

export type { EvaluateBundleOptions, EvaluateBundleResult } from "./evaluate-types.js";

/** Images with their bytes, for the forensics functions. */
function bytesOf(ds: ImageDataset) {
  return { pixels: ds.images, count: ds.count, height: ds.height, width: ds.width, channels: ds.channels };
}

/** B's saliency on the first `max` flagged triggered inputs (`set`) and the trigger estimate (clean mean: the clean evaluation split). */
async function forensicsSection(det: BadExpertDetector, evaluation: ImageDataset, set: ImageDataset, poisoned: ScoredInputs, max: number, method: SaliencyMethod): Promise<ForensicsSection> {
  const flagged: number[] = [];
  // A score that is not above the threshold in a comparison that NaN fails is flagged, as the detector does.
  for (let i = 0; i < poisoned.score.length; i++) if (!((poisoned.score[i] as number) <= det.threshold)) flagged.push(i);
  const chosen = flagged.slice(0, max);
  const preds = Int32Array.from(chosen, (i) => poisoned.pred[i] as number);
  const s = await summariseFlagged(det, bytesOf(subset(set, chosen)), preds, meanImage(bytesOf(evaluation)), { method, examples: 16 });
  const names = det.info.classNames;
  return {
    method,
    flagged: flagged.length,
    explained: chosen.length,
    target: s.estimate.target >= 0 ? { name: names[s.estimate.target] ?? String(s.estimate.target), share: s.estimate.targetShare } : null,
    byClass: s.estimate.targetCounts.map((count, c) => ({ name: names[c] ?? String(c), count })),
    examples: s.overlays.map((png, i) => ({ png, class: names[preds[i] as number] ?? String(preds[i]), score: poisoned.score[chosen[i] as number] as number })),
    meanMapPng: s.meanMapPng,
    patternPng: s.patternPng,
    boxes: s.estimate.boxes,
    compact: s.estimate.compact,
  };
}

/** The words the CLI and the report use for ASR when no target is known. */
export const MISCLASSIFIED_ASR = "no target class known: ASR is the share of triggered inputs whose prediction differs from their true label";

/** Exactly one source of triggered inputs; the options that only go with another are refused. */
function checkSources(o: EvaluateBundleOptions): void {
  const given = [["attack", o.attack !== undefined], ["triggered", o.triggered !== undefined], ["trigger", o.trigger !== undefined]].filter(([, g]) => g).map(([n]) => n as string);
  if (given.length > 1) throw new OptionError(given[1] as string, `give one of attack, triggered and trigger, not ${given.join(" and ")}`);
  const custom = o.triggered !== undefined || o.trigger !== undefined;
  if (custom && Object.keys(o.attackParams ?? {}).length > 0) throw new OptionError("attackParams", "attack parameters go with a built-in attack, not with triggered inputs or a trigger image");
  if (!custom && o.target !== undefined) throw new OptionError("target", "a target goes with triggered inputs or a trigger image; a built-in attack's target is its targetClass parameter");
}

export async function evaluateBundle(o: EvaluateBundleOptions): Promise<EvaluateBundleResult> {
  checkScoringDevice(o.device ?? "cpu");
  checkSources(o);
  // Refused before the evaluation, not after.
  if (o.report) await assertReportDir(o.report);
  const baseline = await baselineBundleDetector(o.bundle);
  if (baseline !== null) {
    if (o.triggered !== undefined || o.trigger !== undefined) throw new OptionError(o.triggered !== undefined ? "triggered" : "trigger", `${o.bundle} is a baseline detector bundle (${baseline}): it is evaluated against a built-in attack (give attack)`);
    return { ...(await evaluateBaselineBundle(o, baseline)), asrMeaning: "target", leftOut: 0 };
  }
  const det0 = await loadBundle(o.bundle, o.verifyKey !== undefined ? { verifyKey: o.verifyKey } : {});
  try {
    const created = det0.info.creation;
    if (!created.dataset || !created.splits) throw new BadExpertError("E_BUNDLE_INTEGRITY", `${o.bundle}: the bundle does not record its dataset and splits`);
    const recorded = created.modelTraining?.attack ?? null;
    const custom = o.triggered !== undefined || o.trigger !== undefined;
    const attackName = o.attack ?? recorded?.name;
    if (!attackName && !custom) throw new BadExpertError("E_USAGE", "an attack is needed: the model's checkpoint records none (give --attack NAME, your own triggered inputs with --triggered DIR|FILE.npz, or a trigger image with --trigger PNG)");
    const path = o.dataPath ?? created.dataset.path;
    const [h, w] = det0.info.preprocessing.imageSize;
    const channels = det0.info.preprocessing.channels;
    // The user's set is read first: what is wrong with it is reported before the test split is decoded.
    let triggered: TriggeredInputs | null = o.triggered !== undefined ? await triggeredSetInputs(o.triggered, o.target, { height: h, width: w, channels: channels === 1 ? 1 : 3, classNames: det0.info.classNames }) : null;
    const test = await testSplit(created.dataset.name, path, [h, w], channels);
    const splits = defenseSplits(test.count, created.splits);
    const rule = o.rule ?? det0.rule;
    const det = rule === det0.rule && o.targetFpr === undefined ? det0 : recalibrate(det0, rule, o.targetFpr ?? det0.info.targetFpr, subset(test, splits.calibration));
    const evaluation = subset(test, limited(splits.evaluation, o.evaluationLimit, { seed: created.splits.seed }));
    let attack: Attack | null = null;
    if (o.trigger !== undefined) triggered = await triggerImageInputs(o.trigger, o.target, evaluation);
    else if (triggered === null) {
      const params = o.attack && o.attack !== recorded?.name ? (o.attackParams ?? {}) : { ...(recorded?.params ?? {}), ...(o.attackParams ?? {}) };
      attack = await loadAttack(attackName as string, params, { numClasses: test.classNames.length, height: h, width: w, channels: test.channels, dataset: created.dataset.name }, created.checkpoint);
    }
    const r = triggered !== null
      ? evaluateTriggered(det, evaluation, triggered, { progress: o.progress ?? false, parts: o.parts === true })
      : { ...evaluateDefense(det, evaluation, attack as Attack, { progress: o.progress ?? false, parts: o.parts === true }), asrMeaning: "target" as const };
    const source = triggered !== null ? triggered.attack : { name: (attack as Attack).name, params: { ...(attack as Attack).params } };
    const result: EvaluateBundleResult = {
      ...r,
      detector: "badexpert",
      attack: source,
      rule,
      threshold: det.threshold,
      targetFpr: det.info.targetFpr,
      dataset: created.dataset.name,
      model: det.info.spec.name,
      reportFiles: null,
      leftOut: triggered?.leftOut ?? 0,
    };
    if (o.report) {
      const explainInputs = o.explainInputs ?? 48;
      const triggeredImages = triggered !== null ? triggered.dataset : (attack as Attack).poisonedTestSet(evaluation).dataset;
      const forensics = explainInputs > 0 ? await forensicsSection(det, evaluation, triggeredImages, r.poisoned, explainInputs, o.explainMethod ?? DEFAULT_SALIENCY_METHOD) : undefined;
      result.reportFiles = await writeReport(o.report, {
        ...(forensics ? { forensics } : {}),
        title: `BaDExpert vs ${source.name} — ${created.dataset.name}, ${det.info.spec.name}`,
        dataset: created.dataset.name,
        model: det.info.spec.name,
        attack: result.attack,
        rule,
        threshold: det.threshold,
        targetFpr: det.info.targetFpr,
        metrics: r.metrics,
        clean: r.clean,
        poisoned: r.poisoned,
        // Bundles written before the source was recorded have no unlearning section.
        ...(created.unlearnLrSource && created.unlearn
          ? {
              unlearning: {
                lr: created.unlearn.lr,
                source: created.unlearnLrSource,
                ...(created.unlearnSelection ? { canaries: created.unlearnSelection.canaries } : {}),
                ...(created.unlearning ? { trace: created.unlearning } : {}),
              },
            }
          : {}),
        details: {
          bundle: o.bundle,
          ...(r.asrMeaning === "misclassified" ? { "attack success rate (ASR)": MISCLASSIFIED_ASR } : {}),
          ...(triggered !== null && triggered.leftOut > 0 ? { "triggered inputs left out": `${triggered.leftOut} whose true class is their target (they cannot show the attack)` } : {}),
          "reserved / calibration / evaluation images": `${created.splits.reserved} / ${created.splits.calibration} / ${evaluation.count} of ${splits.evaluation.length} (split seed ${created.splits.seed})`,
          "calibration FPR achieved": `${(100 * det.info.calibration.achievedFpr).toFixed(2)}% of ${det.info.calibration.count}${det.info.calibration.atCeiling !== undefined ? ` (${det.info.calibration.atCeiling} at the rule's ceiling: threshold lowered so they are flagged)` : ""}`,
          // With M''s rate chosen, M' is the selection's model at that rate: its time is the selection's.
          "time to fit B / M' / calibrate": created.seconds
            ? `${(created.unlearning?.seconds ?? created.seconds.expert).toFixed(1)} s${created.unlearning ? ` (${created.unlearning.steps} steps, B's clean accuracy ${(100 * created.unlearning.modelAccuracy).toFixed(1)}% -> ${(100 * created.unlearning.monitorAccuracy).toFixed(1)}%)` : ""} / ${created.finetuneSelection ? `${created.finetuneSelection.seconds.toFixed(1)} s (M' at ${created.finetuneSelection.table.length} rates, ${created.finetuneSelection.lr} kept)` : `${created.seconds.auxiliary.toFixed(1)} s`} / ${created.seconds.calibration.toFixed(1)} s`
            : "n/a",
          "scoring throughput": `${r.scoringRate.toFixed(0)} inputs/s (three forward passes each)`,
          // The canary tables have their own section above.
          creation: JSON.stringify({ ...det0.info.creation, unlearnSelection: undefined }),
        },
      });
    }
    return result;
  } finally {
    det0.dispose();
  }
}
