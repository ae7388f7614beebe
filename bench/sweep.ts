// The unlearning-rate sweep shared by bench:defense --sweep and bench:canary: M' and the
// calibration split fixed, B re-extracted at every rate, the triangle rule calibrated at 1% FPR
// and scored on the evaluation split against the real attack. The poisoned evaluation data is
// used only to report a rate's outcome, never to choose one.
import type { Module } from "../src/nn/index.js";
import type { ImageDataset } from "../src/data/dataset.js";
import type { Attack } from "../src/attacks/attack.js";
import type { CheckpointMeta } from "../src/train/checkpoint.js";
import type { DefenseDefaults } from "../src/defense/defaults.js";
import { extractBackdoorExpert, finetuneAuxiliary } from "../src/defense/fit.js";
import { BadExpertDetector } from "../src/defense/detector.js";
import { calibrationFor } from "../src/defense/recalibrate.js";
import { evaluateDefense } from "../src/defense/evaluate.js";
import { subset } from "../src/data/splits.js";
import { defaultSplitSpec, defenseSplits } from "../src/defense/splits.js";

/** defend's three clean splits of a test set (default sizes, seeded) for the model of `meta`. */
export function defenderSplits(test: ImageDataset, meta: CheckpointMeta, seed: number): { reserved: ImageDataset; calibration: ImageDataset; evaluation: ImageDataset } {
  const s = defenseSplits(test.count, defaultSplitSpec(meta.dataset.trainCount, test.count, seed));
  return { reserved: subset(test, s.reserved), calibration: subset(test, s.calibration), evaluation: subset(test, s.evaluation) };
}

export interface SweepRow { lr: number; auroc: number; singleAuroc: number; cleanAccuracyBefore: number; cleanAccuracyAfter: number; asrBefore: number; asrAfter: number }

export async function unlearningSweep(
  model: Module,
  meta: CheckpointMeta,
  split: { reserved: ImageDataset; calibration: ImageDataset; evaluation: ImageDataset },
  attack: Attack,
  d: DefenseDefaults,
  seed: number,
  rates: readonly number[],
  onRow: (row: SweepRow) => void = () => {},
): Promise<SweepRow[]> {
  const norm = meta.preprocessing;
  const aux = await finetuneAuxiliary(model, meta.model, split.reserved, { finetune: d.finetune, augment: d.augment, normalization: norm, seed, silent: true });
  const rows: SweepRow[] = [];
  try {
    for (const lr of rates) {
      const expert = await extractBackdoorExpert(model, meta.model, split.reserved, { unlearn: { ...d.unlearn, lr }, augment: d.augment, normalization: norm, seed, silent: true });
      try {
        const base = BadExpertDetector.uncalibrated({ model, expert, auxiliary: aux }, { spec: meta.model, preprocessing: norm, classNames: meta.classNames, rule: "triangle" });
        const cal = calibrationFor(base, "triangle", 0.01, split.calibration);
        const r = evaluateDefense(base.withDecision("triangle", cal.threshold, cal), split.evaluation, attack).metrics;
        const single = evaluateDefense(base.withDecision("single", Number.POSITIVE_INFINITY), split.evaluation, attack).metrics;
        const row = { lr, auroc: r.auroc, singleAuroc: single.auroc, cleanAccuracyBefore: r.cleanAccuracyBefore, cleanAccuracyAfter: r.cleanAccuracyAfter, asrBefore: r.asrBefore, asrAfter: r.asrAfter };
        rows.push(row);
        onRow(row);
      } finally {
        expert.dispose();
      }
    }
  } finally {
    aux.dispose();
  }
  return rows;
}
