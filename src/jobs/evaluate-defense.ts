// The evaluate-defense job, shared by the CLI, the demo and the benchmarks: load a bundle, rebuild
// its recorded splits, apply an attack to the evaluation split, measure, and write the report.
// A baseline detector bundle goes to evaluate-baseline.ts (same metric and threshold code).
import type { ParamValue } from "../attacks/attack.js";
import { loadAttack } from "../attacks/load.js";
import { subset } from "../data/splits.js";
import { loadBundle } from "../defense/bundle.js";
import { defenseSplits } from "../defense/splits.js";
import { evaluateDefense, type DefenseEvaluation } from "../defense/evaluate.js";
import { recalibrate } from "../defense/recalibrate.js";
import type { ScoreRule } from "../defense/scores.js";
import { assertReportDir, writeReport, type ReportScores } from "../report/report.js";
import { baselineBundleDetector } from "../detectors/bundle.js";
import { evaluateBaselineBundle } from "./evaluate-baseline.js";
import { limited, type LimitOrder } from "./compare.js";
import type { KeyInput } from "../defense/signature.js";
import { testSplit } from "./defend.js";
import type { Attack } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { ScoredInputs } from "../defense/evaluate.js";
import type { ForensicsSection } from "../report/report.js";
import { meanImage, summariseFlagged } from "../forensics/explain.js";
import { DEFAULT_SALIENCY_METHOD, type SaliencyMethod } from "../forensics/saliency.js";
import { checkScoringDevice } from "./device.js";

export interface EvaluateBundleOptions {
  bundle: string;
  /** Default: the attack recorded in the model's checkpoint. */
  attack?: string;
  attackParams?: Record<string, ParamValue>;
  rule?: ScoreRule;
  targetFpr?: number;
  dataPath?: string;
  report?: string;
  progress?: boolean;
  /** Ed25519 public key (KeyObject or PEM path): refuse unsigned or badly signed bundles. */
  verifyKey?: KeyInput;
  /** Where scoring runs; only "cpu" for now (the detector scores on the CPU), checked before any work. */
  device?: string;
  /** With a report: flagged poisoned inputs explained for its "What the detector saw" section (default 48; 0: no section). */
  explainInputs?: number;
  explainMethod?: SaliencyMethod;
  /** Use only N images of the evaluation split (0 or absent: all); STRIP costs ~100 passes per input. */
  evaluationLimit?: number;
  /** How that limit picks its images (`limited`): "sample" (default) or "first". */
  limitOrder?: LimitOrder;
  /** Also measure M, B and M' each on their own (src/defense/parts.ts): two more passes per model. */
  parts?: boolean;
}

/** Images with their bytes, for the forensics functions. */
function bytesOf(ds: ImageDataset) {
  return { pixels: ds.images, count: ds.count, height: ds.height, width: ds.width, channels: ds.channels };
}

/** B's saliency on the first `max` flagged poisoned inputs and the trigger estimate (clean mean: the clean evaluation split). */
async function forensicsSection(det: BadExpertDetector, evaluation: ImageDataset, attack: Attack, poisoned: ScoredInputs, max: number, method: SaliencyMethod): Promise<ForensicsSection> {
  const set = attack.poisonedTestSet(evaluation).dataset;
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

export interface EvaluateBundleResult extends Omit<DefenseEvaluation, "clean" | "poisoned"> {
  /** "badexpert", or the baseline's registry name for a baseline detector bundle. */
  detector: string;
  /** Per-input scores; b and a only for BaDExpert. */
  clean: ReportScores;
  poisoned: ReportScores;
  attack: { name: string; params: Record<string, ParamValue> };
  /** BaDExpert's score rule; null for a baseline. */
  rule: ScoreRule | null;
  threshold: number;
  targetFpr: number;
  dataset: string;
  model: string;
  reportFiles: { html: string; markdown: string } | null;
}

export async function evaluateBundle(o: EvaluateBundleOptions): Promise<EvaluateBundleResult> {
  checkScoringDevice(o.device ?? "cpu");
  // Refused before the evaluation, not after.
  if (o.report) await assertReportDir(o.report);
  const baseline = await baselineBundleDetector(o.bundle);
  if (baseline !== null) return evaluateBaselineBundle(o, baseline);
  const det0 = await loadBundle(o.bundle, o.verifyKey !== undefined ? { verifyKey: o.verifyKey } : {});
  try {
    const created = det0.info.creation;
    if (!created.dataset || !created.splits) throw new Error(`${o.bundle}: the bundle does not record its dataset and splits`);
    const recorded = created.modelTraining?.attack ?? null;
    const attackName = o.attack ?? recorded?.name;
    if (!attackName) throw new Error("an attack is needed: the model's checkpoint records none (give --attack)");
    const params = o.attack && o.attack !== recorded?.name ? (o.attackParams ?? {}) : { ...(recorded?.params ?? {}), ...(o.attackParams ?? {}) };
    const path = o.dataPath ?? created.dataset.path;
    const [h, w] = det0.info.preprocessing.imageSize;
    const test = await testSplit(created.dataset.name, path, [h, w], det0.info.preprocessing.channels);
    const splits = defenseSplits(test.count, created.splits);
    const attack = await loadAttack(attackName, params, { numClasses: test.classNames.length, height: h, width: w, channels: test.channels, dataset: created.dataset.name }, created.checkpoint);
    const rule = o.rule ?? det0.rule;
    const det = rule === det0.rule && o.targetFpr === undefined ? det0 : recalibrate(det0, rule, o.targetFpr ?? det0.info.targetFpr, subset(test, splits.calibration));
    const evaluation = subset(test, limited(splits.evaluation, o.evaluationLimit, { order: o.limitOrder ?? "sample", seed: created.splits.seed }));
    const r = evaluateDefense(det, evaluation, attack, { progress: o.progress ?? false, parts: o.parts === true });
    const result: EvaluateBundleResult = {
      ...r,
      detector: "badexpert",
      attack: { name: attack.name, params: { ...attack.params } },
      rule,
      threshold: det.threshold,
      targetFpr: det.info.targetFpr,
      dataset: created.dataset.name,
      model: det.info.spec.name,
      reportFiles: null,
    };
    if (o.report) {
      const explainInputs = o.explainInputs ?? 48;
      const forensics = explainInputs > 0 ? await forensicsSection(det, evaluation, attack, r.poisoned, explainInputs, o.explainMethod ?? DEFAULT_SALIENCY_METHOD) : undefined;
      result.reportFiles = await writeReport(o.report, {
        ...(forensics ? { forensics } : {}),
        title: `BaDExpert vs ${attack.name} — ${created.dataset.name}, ${det.info.spec.name}`,
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
          ? { unlearning: { lr: created.unlearn.lr, source: created.unlearnLrSource, ...(created.unlearnSelection ? { canaries: created.unlearnSelection.canaries } : {}) } }
          : {}),
        details: {
          bundle: o.bundle,
          "reserved / calibration / evaluation images": `${created.splits.reserved} / ${created.splits.calibration} / ${evaluation.count} of ${splits.evaluation.length} (split seed ${created.splits.seed})`,
          "calibration FPR achieved": `${(100 * det.info.calibration.achievedFpr).toFixed(2)}% of ${det.info.calibration.count}${det.info.calibration.atCeiling !== undefined ? ` (${det.info.calibration.atCeiling} at the rule's ceiling: threshold lowered so they are flagged)` : ""}`,
          // With M''s rate chosen, M' is the selection's model at that rate: its time is the selection's.
          "time to fit B / M' / calibrate": created.seconds
            ? `${created.seconds.expert.toFixed(1)} s / ${created.finetuneSelection ? `${created.finetuneSelection.seconds.toFixed(1)} s (M' at ${created.finetuneSelection.table.length} rates, ${created.finetuneSelection.lr} kept)` : `${created.seconds.auxiliary.toFixed(1)} s`} / ${created.seconds.calibration.toFixed(1)} s`
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
