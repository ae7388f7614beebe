// The defense as whole jobs, shared by the CLI commands and the demo: build a detector bundle
// from a checkpoint, and evaluate a bundle against an attack (with an optional report).
import type { ImageDataset } from "../data/dataset.js";
import { loadDataset } from "../data/registry.js";
import { subset } from "../data/splits.js";
import { loadCheckpoint } from "../train/checkpoint.js";
import { createAttack } from "../attacks/registry.js";
import type { ParamValue } from "../attacks/attack.js";
import { writeReport, type UnlearningRecord } from "../report/report.js";
import { defenseDefaults } from "./defaults.js";
import { fitBadExpert, type FitDefenseOptions } from "./fit.js";
import { saveBundle, loadBundle } from "./bundle.js";
import { defaultSplitSpec, defenseSplits, type DefenseSplitSpec } from "./splits.js";
import { selectUnlearnLr, type CanaryResult } from "./canary.js";
import { evaluateDefense, type DefenseEvaluation } from "./evaluate.js";
import { recalibrate } from "./recalibrate.js";
import type { ScoreRule } from "./scores.js";
import type { Calibration } from "./threshold.js";

export interface DefendOptions {
  checkpoint: string;
  out: string;
  dataset?: string;
  dataPath?: string;
  reserved?: number;
  calibration?: number;
  splitSeed?: number;
  /**
   * Overrides of the per-architecture defaults. unlearnLr "auto" runs the canary selection, which
   * is also the default where the paper gives no rate for this architecture and dataset.
   */
  unlearnLr?: number | "auto";
  unlearnEpochs?: number;
  finetuneLr?: number;
  finetuneGamma?: number;
  finetuneEpochs?: number;
  rule?: ScoreRule;
  targetFpr?: number;
  seed?: number;
  silent?: boolean;
  log?: (line: string) => void;
}

export interface DefendResult {
  bundle: string;
  threshold: number;
  calibration: Calibration;
  options: FitDefenseOptions;
  splits: { reserved: number; calibration: number; evaluation: number };
  selection: CanaryResult | null;
  seconds: { expert: number; auxiliary: number; calibration: number; selection: number };
}

interface CreationRecord {
  dataset?: { name: string; path?: string };
  splits?: DefenseSplitSpec;
  modelTraining?: { attack?: { name: string; params: Record<string, ParamValue> } | null };
  unlearn?: { lr: number };
  unlearnLrSource?: UnlearningRecord["source"];
  unlearnSelection?: CanaryResult;
  seconds?: { expert: number; auxiliary: number; calibration: number };
}

async function testSplit(name: string, path: string | undefined, imageSize: [number, number], channels: number): Promise<ImageDataset> {
  return loadDataset(name, { split: "test", ...(path ? { path } : {}), imageSize, channels: channels === 1 ? 1 : 3 });
}

export async function defendCheckpoint(o: DefendOptions): Promise<DefendResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  const { model, meta } = await loadCheckpoint(o.checkpoint);
  try {
    const name = o.dataset ?? meta.dataset.name;
    const path = o.dataPath ?? (name === meta.dataset.name ? meta.dataset.path : undefined);
    const test = await testSplit(name, path, meta.preprocessing.imageSize, meta.preprocessing.channels);
    if (test.classNames.length !== meta.model.numClasses) {
      throw new RangeError(`dataset ${name} has ${test.classNames.length} classes but the model has ${meta.model.numClasses}`);
    }
    const def = defaultSplitSpec(meta.dataset.trainCount ?? 5 * test.count, test.count, o.splitSeed ?? 0);
    const spec: DefenseSplitSpec = { ...def, reserved: o.reserved ?? def.reserved, calibration: o.calibration ?? def.calibration };
    const splits = defenseSplits(test.count, spec);
    const d = defenseDefaults(meta.model.name, name);
    const options: FitDefenseOptions = {
      unlearn: { ...d.unlearn, lr: typeof o.unlearnLr === "number" ? o.unlearnLr : d.unlearn.lr, epochs: o.unlearnEpochs ?? d.unlearn.epochs },
      finetune: { ...d.finetune, lr: o.finetuneLr ?? d.finetune.lr, gamma: o.finetuneGamma ?? d.finetune.gamma, epochs: o.finetuneEpochs ?? d.finetune.epochs },
      augment: d.augment,
      rule: o.rule ?? "triangle",
      targetFpr: o.targetFpr ?? d.targetFpr,
      seed: o.seed ?? 0,
      silent: o.silent ?? false,
    };
    const reserved = subset(test, splits.reserved);
    const calibration = subset(test, splits.calibration);
    log(`reserved ${reserved.count}, calibration ${calibration.count}, evaluation ${splits.evaluation.length} images of ${name}/test`);
    const fitMeta = { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames };
    let selection: CanaryResult | null = null;
    const auto = o.unlearnLr === "auto" || (o.unlearnLr === undefined && d.unlearnLrSource === "canary");
    if (auto) {
      log("choosing the unlearning rate with two canary backdoors of our own (defender-side data only)");
      selection = await selectUnlearnLr(model, fitMeta, reserved, calibration, { ...options, log });
      options.unlearn.lr = selection.lr;
      log(`${selection.conclusive ? "selected" : "kept the static"} unlearning lr ${selection.lr} in ${selection.seconds.toFixed(0)} s`);
    }
    const unlearnLrSource: UnlearningRecord["source"] = !auto ? (typeof o.unlearnLr === "number" ? "given" : "paper") : selection?.conclusive ? "canary" : "canary-inconclusive";
    const detector = await fitBadExpert(model, fitMeta, reserved, calibration, options);
    try {
      detector.info.creation = {
        ...detector.info.creation,
        checkpoint: o.checkpoint,
        dataset: { name, ...(path ? { path } : {}) },
        splits: spec,
        modelMetrics: meta.metrics,
        modelTraining: { attack: meta.training.attack ?? null },
        unlearnLrSource,
        ...(selection ? { unlearnSelection: selection } : {}),
      };
      await saveBundle(o.out, detector);
      const seconds = (detector.info.creation as CreationRecord).seconds ?? { expert: 0, auxiliary: 0, calibration: 0 };
      return {
        bundle: o.out,
        threshold: detector.threshold,
        calibration: detector.info.calibration,
        options,
        splits: { reserved: reserved.count, calibration: calibration.count, evaluation: splits.evaluation.length },
        selection,
        seconds: { ...seconds, selection: selection?.seconds ?? 0 },
      };
    } finally {
      detector.dispose();
    }
  } finally {
    model.dispose();
  }
}

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
  const det0 = await loadBundle(o.bundle);
  try {
    const created = det0.info.creation as CreationRecord;
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
