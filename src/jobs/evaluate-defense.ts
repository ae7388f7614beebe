// The evaluate-defense job, shared by the CLI, the demo and the benchmarks: load a bundle, rebuild
// its recorded splits, apply an attack to the evaluation split, measure, and write the report.
import type { ParamValue } from "../attacks/attack.js";
import { createAttack } from "../attacks/registry.js";
import { subset } from "../data/splits.js";
import { loadBundle } from "../defense/bundle.js";
import { defenseSplits } from "../defense/splits.js";
import { evaluateDefense, type DefenseEvaluation } from "../defense/evaluate.js";
import { recalibrate } from "../defense/recalibrate.js";
import type { ScoreRule } from "../defense/scores.js";
import { writeReport } from "../report/report.js";
import type { KeyInput } from "../defense/signature.js";
import { testSplit } from "./defend.js";
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
}

export interface EvaluateBundleResult extends DefenseEvaluation {
  attack: { name: string; params: Record<string, ParamValue> };
  rule: ScoreRule;
  threshold: number;
  targetFpr: number;
  dataset: string;
  model: string;
  reportFiles: { html: string; markdown: string } | null;
}

export async function evaluateBundle(o: EvaluateBundleOptions): Promise<EvaluateBundleResult> {
  checkScoringDevice(o.device ?? "cpu");
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
    const attack = createAttack(attackName, params, { numClasses: test.classNames.length, height: h, width: w, channels: test.channels, dataset: created.dataset.name });
    const rule = o.rule ?? det0.rule;
    const det = rule === det0.rule && o.targetFpr === undefined ? det0 : recalibrate(det0, rule, o.targetFpr ?? det0.info.targetFpr, subset(test, splits.calibration));
    const r = evaluateDefense(det, subset(test, splits.evaluation), attack, { progress: o.progress ?? false });
    const result: EvaluateBundleResult = {
      ...r,
      attack: { name: attack.name, params: { ...attack.params } },
      rule,
      threshold: det.threshold,
      targetFpr: det.info.targetFpr,
      dataset: created.dataset.name,
      model: det.info.spec.name,
      reportFiles: null,
    };
    if (o.report) {
      result.reportFiles = await writeReport(o.report, {
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
          "reserved / calibration / evaluation images": `${created.splits.reserved} / ${created.splits.calibration} / ${splits.evaluation.length} (split seed ${created.splits.seed})`,
          "calibration FPR achieved": `${(100 * det.info.calibration.achievedFpr).toFixed(2)}% of ${det.info.calibration.count}`,
          "time to fit B / M' / calibrate": created.seconds ? `${created.seconds.expert.toFixed(1)} s / ${created.seconds.auxiliary.toFixed(1)} s / ${created.seconds.calibration.toFixed(1)} s` : "n/a",
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
