// `badexpert defend`: suspicious model + clean data → a BaDExpert detector bundle.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, emitJson, int, num, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { loadDataset } from "../../data/registry.js";
import { subset } from "../../data/splits.js";
import { loadCheckpoint } from "../../train/checkpoint.js";
import { defenseDefaults } from "../../defense/defaults.js";
import { fitBadExpert } from "../../defense/fit.js";
import { saveBundle } from "../../defense/bundle.js";
import { defaultSplitSpec, defenseSplits } from "../../defense/splits.js";
import { SCORE_RULES, type ScoreRule } from "../../defense/scores.js";

export const defend: Command = {
  name: "defend",
  summary: "build a BaDExpert detector (backdoor expert B, auxiliary model M', threshold) for a model",
  details: [
    "Takes the suspicious model M (a checkpoint directory) and clean data. The test split of the dataset is cut",
    "(seeded) into three disjoint parts: the reserved clean set B and M' are finetuned on, a calibration split for",
    "the threshold, and an evaluation split that `evaluate-defense` reports on. Writes a bundle directory.",
    "",
    "Example: badexpert defend --checkpoint runs/fmnist-badnet --out runs/fmnist-badnet-detector",
  ].join("\n"),
  options: {
    checkpoint: { type: "string", short: "c", description: "the suspicious model's checkpoint directory" },
    out: { type: "string", short: "o", description: "bundle directory to write" },
    dataset: { type: "string", short: "d", description: "clean data (default: the checkpoint's dataset)" },
    "data-path": { type: "string", description: "dataset location (default: the checkpoint's, else the standard one)" },
    reserved: { type: "string", description: "reserved clean images (default: 5% of the training-set size, at most 30% of the test set)" },
    calibration: { type: "string", description: "calibration images (default: 20% of the test set, at most 2,000)" },
    "split-seed": { type: "string", description: "seed of the reserved/calibration/evaluation split", default: "0" },
    "unlearn-lr": { type: "string", description: "Adam learning rate of the backdoor expert (default: per architecture)" },
    "unlearn-epochs": { type: "string", description: "epochs of unlearning", default: "1" },
    "finetune-lr": { type: "string", description: "SGD learning rate of M' (default: per architecture)" },
    "finetune-gamma": { type: "string", description: "MultiStep gamma of M' (default: per architecture)" },
    "finetune-epochs": { type: "string", description: "epochs of clean finetuning", default: "10" },
    rule: { type: "string", description: `score rule: ${SCORE_RULES.join(", ")}`, default: "triangle" },
    fpr: { type: "string", description: "target false-positive rate on clean inputs (default: 0.01; GTSRB 0.001)" },
    seed: { type: "string", description: "seed of the finetuning runs", default: "0" },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    applyRuntimeOptions(v);
    const ckpt = requireStr(v, "checkpoint", "a directory written by `badexpert train`");
    const out = requireStr(v, "out", "where to write the detector bundle");
    const { model, meta } = await loadCheckpoint(ckpt);
    try {
      const name = str(v, "dataset") ?? meta.dataset.name;
      const path = str(v, "data-path") ?? (name === meta.dataset.name ? meta.dataset.path : undefined);
      const [h, w] = meta.preprocessing.imageSize;
      const load = { ...(path ? { path } : {}), imageSize: [h, w] as [number, number], channels: meta.preprocessing.channels === 1 ? (1 as const) : (3 as const) };
      const test = await loadDataset(name, { split: "test", ...load });
      if (test.classNames.length !== meta.model.numClasses) {
        throw new UsageError(`--dataset: ${name} has ${test.classNames.length} classes but the model has ${meta.model.numClasses}`);
      }
      const trainCount = meta.dataset.trainCount ?? 5 * test.count;
      const def = defaultSplitSpec(trainCount, test.count, int(v, "split-seed") ?? 0);
      const spec = { ...def, reserved: int(v, "reserved", { min: 1 }) ?? def.reserved, calibration: int(v, "calibration", { min: 1 }) ?? def.calibration };
      const splits = defenseSplits(test.count, spec);
      const d = defenseDefaults(meta.model.name, name);
      const seed = int(v, "seed") ?? 0;
      const rule = (choice(v, "rule", SCORE_RULES) ?? "triangle") as ScoreRule;
      const options = {
        unlearn: { ...d.unlearn, lr: num(v, "unlearn-lr", { positive: true }) ?? d.unlearn.lr, epochs: int(v, "unlearn-epochs", { min: 1 }) ?? 1 },
        finetune: {
          ...d.finetune,
          lr: num(v, "finetune-lr", { positive: true }) ?? d.finetune.lr,
          gamma: num(v, "finetune-gamma", { positive: true }) ?? d.finetune.gamma,
          epochs: int(v, "finetune-epochs", { min: 1 }) ?? 10,
        },
        augment: d.augment,
        rule,
        targetFpr: num(v, "fpr", { positive: true }) ?? d.targetFpr,
        seed,
      };
      console.error(`reserved ${splits.reserved.length}, calibration ${splits.calibration.length}, evaluation ${splits.evaluation.length} images of ${name}/test`);
      const detector = await fitBadExpert(
        model,
        { spec: meta.model, preprocessing: meta.preprocessing, classNames: meta.classNames },
        subset(test, splits.reserved),
        subset(test, splits.calibration),
        options,
      );
      try {
        detector.info.creation = {
          ...detector.info.creation,
          checkpoint: ckpt,
          dataset: { name, ...(path ? { path } : {}) },
          splits: spec,
          modelMetrics: meta.metrics,
          modelTraining: { attack: meta.training.attack ?? null },
        };
        await saveBundle(out, detector);
        const c = detector.info.calibration;
        console.error(`threshold ${detector.threshold.toPrecision(6)} (${rule}, target FPR ${options.targetFpr}, achieved ${(100 * c.achievedFpr).toFixed(2)}% on ${c.count} calibration images) — bundle in ${out}`);
        emitJson(v, { bundle: out, rule, threshold: detector.threshold, targetFpr: options.targetFpr, calibration: c, creation: detector.info.creation });
      } finally {
        detector.dispose();
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
