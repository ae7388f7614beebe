// The evaluate-defense job, shared by the CLI, the library, the demo and the benchmarks: open a
// detector bundle of any kind, rebuild its recorded splits, apply an attack to the evaluation
// split, measure with the one metric code (detectors/evaluate.ts over defense/metrics.ts), and
// write the report. Instead of a built-in attack, the triggered side can be the user's own
// triggered inputs or a trigger image stamped on the evaluation split (triggered-inputs.ts): what
// a model with no attack recorded (an imported one) is evaluated against. What needs BaDExpert's
// B and M' (--parts, other score rules, the report's (b, a) plane and "What the detector saw") is
// there where the detector has them.
import { loadAttack } from "../attacks/load.js";
import { manualSeed } from "../engine/index.js";
import { subset } from "../data/splits.js";
import { defenseSplits } from "../defense/splits.js";
import type { ScoredInputs } from "../defense/evaluate.js";
import { detectorParts } from "../defense/parts.js";
import { assertReportDir, writeReport, type ReportScores } from "../report/report.js";
import { limited } from "./compare.js";
import { testSplit } from "./defender-data.js";
import type { EvaluateBundleOptions, EvaluateBundleResult } from "./evaluate-types.js";
import type { Attack } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { ForensicsSection } from "../report/report.js";
import { meanImage, summariseFlagged } from "../forensics/explain.js";
import { DEFAULT_SALIENCY_METHOD, type SaliencyMethod } from "../forensics/saliency.js";
import type { CalibratedDetector } from "../detectors/calibrated.js";
import { evaluateDetector } from "../detectors/evaluate.js";
import { bundleKind, checkOpenOptions, openDetector } from "../detectors/open.js";
import { checkScoringDevice } from "./device.js";
import { OptionError } from "./errors.js";
import {
  successLabels,
  triggerImageInputs,
  triggeredSetInputs,
  type AsrMeaning,
  type TriggeredInputs,
} from "./triggered-inputs.js";
import { BadExpertError } from "../util/errors.js";

/** Seed of libtorch's generator before scoring (the random draws of TeCo and CD), so a rerun gives the same figures. */
const SCORING_SEED = 0;

export type { EvaluateBundleOptions, EvaluateBundleResult } from "./evaluate-types.js";

/** Images with their bytes, for the forensics functions. */
function bytesOf(ds: ImageDataset) {
  return { pixels: ds.images, count: ds.count, height: ds.height, width: ds.width, channels: ds.channels };
}

/** B's saliency on the first `max` flagged triggered inputs (`set`) and the trigger estimate (clean mean: the clean evaluation split). */
async function forensicsSection(
  det: BadExpertDetector,
  evaluation: ImageDataset,
  set: ImageDataset,
  poisoned: Pick<ScoredInputs, "score" | "pred">,
  max: number,
  method: SaliencyMethod,
): Promise<ForensicsSection> {
  const flagged: number[] = [];
  // A score that is not above the threshold in a comparison that NaN fails is flagged, as the detector does.
  for (let i = 0; i < poisoned.score.length; i++)
    if (!((poisoned.score[i] as number) <= det.threshold)) flagged.push(i);
  const chosen = flagged.slice(0, max);
  const preds = Int32Array.from(chosen, (i) => poisoned.pred[i] as number);
  const s = await summariseFlagged(det, bytesOf(subset(set, chosen)), preds, meanImage(bytesOf(evaluation)), {
    method,
    examples: 16,
  });
  const names = det.info.classNames;
  return {
    method,
    flagged: flagged.length,
    explained: chosen.length,
    target:
      s.estimate.target >= 0
        ? { name: names[s.estimate.target] ?? String(s.estimate.target), share: s.estimate.targetShare }
        : null,
    byClass: s.estimate.targetCounts.map((count, c) => ({ name: names[c] ?? String(c), count })),
    examples: s.overlays.map((png, i) => ({
      png,
      class: names[preds[i] as number] ?? String(preds[i]),
      score: poisoned.score[chosen[i] as number] as number,
    })),
    meanMapPng: s.meanMapPng,
    patternPng: s.patternPng,
    boxes: s.estimate.boxes,
    compact: s.estimate.compact,
  };
}

/** The words the CLI and the report use for ASR when no target is known. */
export const MISCLASSIFIED_ASR =
  "no target class known: ASR is the share of triggered inputs whose prediction differs from their true label";

/** Exactly one source of triggered inputs; the options that only go with another are refused. */
function checkSources(o: EvaluateBundleOptions): void {
  const given = [
    ["attack", o.attack !== undefined],
    ["triggered", o.triggered !== undefined],
    ["trigger", o.trigger !== undefined],
  ]
    .filter(([, g]) => g)
    .map(([n]) => n as string);
  if (given.length > 1)
    throw new OptionError(given[1] as string, `give one of attack, triggered and trigger, not ${given.join(" and ")}`);
  const custom = o.triggered !== undefined || o.trigger !== undefined;
  if (custom && Object.keys(o.attackParams ?? {}).length > 0)
    throw new OptionError(
      "attackParams",
      "attack parameters go with a built-in attack, not with triggered inputs or a trigger image",
    );
  if (!custom && o.target !== undefined)
    throw new OptionError(
      "target",
      "a target goes with triggered inputs or a trigger image; a built-in attack's target is its targetClass parameter",
    );
}

/** Refuses, before the bundle's models are read, what the bundle's kind rules out (named as the option). */
async function checkAgainstKind(o: EvaluateBundleOptions): Promise<void> {
  const kind = await bundleKind(o.bundle);
  try {
    checkOpenOptions(o.bundle, kind, o.verifyKey !== undefined ? { verifyKey: o.verifyKey } : {});
  } catch (e) {
    throw new OptionError("verifyKey", (e as Error).message.replace(/^verifyKey \(--verify-key\): /, ""));
  }
}

/** What the detector lacks for the options asked (M, B and M' on their own, another score rule), named as the option. */
function checkAgainstDetector(o: EvaluateBundleOptions, det: CalibratedDetector): void {
  if (det.badexpert !== null) return;
  if (o.parts === true)
    throw new OptionError(
      "parts",
      `M, B and M' on their own are BaDExpert's; ${o.bundle} is a ${det.kind} detector bundle`,
    );
  if (o.rule !== undefined)
    throw new OptionError("rule", `score rules are BaDExpert's; ${o.bundle} is a ${det.kind} detector bundle`);
}

export async function evaluateBundle(o: EvaluateBundleOptions): Promise<EvaluateBundleResult> {
  checkScoringDevice(o.device ?? "cpu");
  checkSources(o);
  // Refused before the evaluation, not after.
  if (o.report) await assertReportDir(o.report);
  if (o.targetFpr !== undefined && !(o.targetFpr > 0 && o.targetFpr < 1))
    throw new OptionError("targetFpr", `expected a number in (0, 1), got ${o.targetFpr}`);
  await checkAgainstKind(o);
  const det0 = await openDetector(o.bundle, o.verifyKey !== undefined ? { verifyKey: o.verifyKey } : {});
  try {
    checkAgainstDetector(o, det0);
    const origin = det0.origin;
    if (!origin.dataset || !origin.splits)
      throw new BadExpertError(
        "E_BUNDLE_INTEGRITY",
        `${o.bundle}: the bundle does not record its dataset and splits; build it again with \`badexpert defend${det0.kind === "badexpert" ? "" : ` --detector ${det0.kind}`}\``,
      );
    const recorded = origin.attack;
    const custom = o.triggered !== undefined || o.trigger !== undefined;
    const attackName = o.attack ?? recorded?.name;
    if (!attackName && !custom)
      throw new BadExpertError(
        "E_USAGE",
        "an attack is needed: the model's checkpoint records none (give --attack NAME, your own triggered inputs with --triggered DIR|FILE.npz, or a trigger image with --trigger PNG)",
      );
    const path = o.dataPath ?? origin.dataset.path;
    const [h, w] = det0.preprocessing.imageSize;
    const channels = det0.preprocessing.channels;
    // The user's set is read first: what is wrong with it is reported before the test split is decoded.
    let triggered: TriggeredInputs | null =
      o.triggered !== undefined
        ? await triggeredSetInputs(o.triggered, o.target, {
            height: h,
            width: w,
            channels: channels === 1 ? 1 : 3,
            classNames: det0.classNames,
          })
        : null;
    const test = await testSplit(origin.dataset.name, path, [h, w], channels);
    const splits = defenseSplits(test.count, origin.splits);
    const evaluation = subset(test, limited(splits.evaluation, o.evaluationLimit, { seed: origin.splits.seed }));
    let attack: Attack | null = null;
    if (o.trigger !== undefined) triggered = await triggerImageInputs(o.trigger, o.target, evaluation);
    else if (triggered === null) {
      const params =
        o.attack && o.attack !== recorded?.name
          ? (o.attackParams ?? {})
          : { ...(recorded?.params ?? {}), ...(o.attackParams ?? {}) };
      attack = await loadAttack(
        attackName as string,
        params,
        {
          numClasses: test.classNames.length,
          height: h,
          width: w,
          channels: test.channels,
          dataset: origin.dataset.name,
        },
        origin.checkpoint ?? undefined,
      );
    }
    if (o.parts === true && triggered !== null && triggered.targets === null)
      throw new OptionError(
        "parts",
        "M, B and M' on their own are measured by the share of triggered inputs each sends to the target: give the target class",
      );
    manualSeed(SCORING_SEED);
    const recalibrate = (o.rule !== undefined && o.rule !== det0.rule) || o.targetFpr !== undefined;
    const det = recalibrate
      ? det0.recalibrated(subset(test, splits.calibration), {
          ...(o.rule !== undefined ? { rule: o.rule } : {}),
          ...(o.targetFpr !== undefined ? { targetFpr: o.targetFpr } : {}),
          ...(o.progress ? { progressLabel: `${det0.kind}: calibration` } : {}),
        })
      : det0;
    const triggeredImages = triggered !== null ? triggered.dataset : (attack as Attack).poisonedTestSet(evaluation);
    const set = "targetLabels" in triggeredImages ? triggeredImages : { dataset: triggeredImages };
    const t0 = Date.now();
    const t = triggered;
    const e = evaluateDetector(det.scorer, det.threshold, evaluation, set, {
      progress: o.progress ?? false,
      ...(t !== null ? { successLabels: (pred: Int32Array) => successLabels(t, pred) } : {}),
    });
    const seconds = (Date.now() - t0) / 1000;
    const scores = (s: typeof e.clean, label: ArrayLike<number>): ReportScores => ({
      score: s.score,
      pred: s.pred,
      label,
      ...(s.expertConfidence && s.auxiliaryConfidence ? { b: s.expertConfidence, a: s.auxiliaryConfidence } : {}),
    });
    const clean = scores(e.clean, evaluation.labels);
    const poisoned = scores(e.poisoned, e.targetLabels);
    const bx = det.badexpert;
    const partsTargets =
      triggered !== null ? triggered.targets : ((set as { targetLabels?: Int32Array }).targetLabels ?? null);
    const source =
      triggered !== null
        ? triggered.attack
        : { name: (attack as Attack).name, params: { ...(attack as Attack).params } };
    const asrMeaning: AsrMeaning = triggered !== null && triggered.targets === null ? "misclassified" : "target";
    const result: EvaluateBundleResult = {
      metrics: e.metrics,
      clean,
      poisoned,
      scoringRate: (evaluation.count + set.dataset.count) / Math.max(seconds, 1e-9),
      seconds,
      ...(o.parts === true && bx !== null && partsTargets !== null
        ? { parts: detectorParts(bx, evaluation, { ...set.dataset, labels: Int32Array.from(partsTargets) }) }
        : {}),
      detector: det.kind,
      attack: source,
      rule: det.rule,
      threshold: det.threshold,
      targetFpr: det.targetFpr,
      dataset: origin.dataset.name,
      model: det.spec.name,
      reportFiles: null,
      asrMeaning,
      leftOut: triggered?.leftOut ?? 0,
    };
    if (o.report) {
      const explainInputs = o.explainInputs ?? 48;
      const forensics =
        bx !== null && explainInputs > 0
          ? await forensicsSection(
              bx,
              evaluation,
              set.dataset,
              poisoned,
              explainInputs,
              o.explainMethod ?? DEFAULT_SALIENCY_METHOD,
            )
          : undefined;
      const s = origin.splits;
      const cal = det.calibration;
      const created = bx?.info.creation;
      result.reportFiles = await writeReport(o.report, {
        ...(forensics ? { forensics } : {}),
        title: `${bx !== null ? "BaDExpert" : det.kind} vs ${source.name} — ${origin.dataset.name}, ${det.spec.name}`,
        dataset: origin.dataset.name,
        model: det.spec.name,
        attack: result.attack,
        rule: det.rule,
        ...(bx === null ? { baseline: { name: det.kind, params: { ...det.params } } } : {}),
        threshold: det.threshold,
        targetFpr: det.targetFpr,
        metrics: e.metrics,
        clean,
        poisoned,
        // Bundles written before the source was recorded have no unlearning section.
        ...(created?.unlearnLrSource && created.unlearn
          ? {
              unlearning: {
                lr: created.unlearn.lr,
                source: created.unlearnLrSource,
                ...(created.unlearning ? { trace: created.unlearning } : {}),
              },
            }
          : {}),
        details: {
          bundle: o.bundle,
          ...(origin.checkpointSha256 !== null
            ? { checkpoint: `${origin.checkpoint ?? ""} (weights sha256 ${origin.checkpointSha256})` }
            : {}),
          ...(asrMeaning === "misclassified" ? { "attack success rate (ASR)": MISCLASSIFIED_ASR } : {}),
          ...(triggered !== null && triggered.leftOut > 0
            ? {
                "triggered inputs left out": `${triggered.leftOut} whose true class is their target (they cannot show the attack)`,
              }
            : {}),
          "reserved / calibration / evaluation images": `${s.reserved} / ${s.calibration} / ${evaluation.count} of ${splits.evaluation.length} (split seed ${s.seed})`,
          "calibration FPR achieved": `${(100 * cal.achievedFpr).toFixed(2)}% of ${cal.count}${cal.atCeiling !== undefined ? ` (${cal.atCeiling} at the rule's ceiling: threshold lowered so they are flagged)` : ""}`,
          "inputs with a non-finite score (flagged)": e.nonFinite,
          ...(created
            ? {
                // With M''s rate chosen, M' is the selection's model at that rate: its time is the selection's.
                "time to fit B / M' / calibrate": created.seconds
                  ? `${(created.unlearning?.seconds ?? created.seconds.expert).toFixed(1)} s${created.unlearning ? ` (${created.unlearning.steps} steps, B's clean accuracy ${(100 * created.unlearning.modelAccuracy).toFixed(1)}% -> ${(100 * created.unlearning.monitorAccuracy).toFixed(1)}%)` : ""} / ${created.finetuneSelection ? `${created.finetuneSelection.seconds.toFixed(1)} s (M' at ${created.finetuneSelection.table.length} rates, ${created.finetuneSelection.lr} kept)` : `${created.seconds.auxiliary.toFixed(1)} s`} / ${created.seconds.calibration.toFixed(1)} s`
                  : "n/a",
                creation: JSON.stringify(created),
              }
            : { fitted: JSON.stringify(det.scorer.fitted) }),
          "scoring cost": `${e.secondsPer1000.toFixed(2)} s per 1,000 inputs (${result.scoringRate.toFixed(0)} inputs/s)`,
        },
      });
    }
    return result;
  } finally {
    det0.dispose();
  }
}
