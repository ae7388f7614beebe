// Choosing the unlearning strength with only what a defender has. The learning rate of the
// backdoor expert decides everything (too weak: B still solves the clean task; too strong: B
// forgets the backdoor too), and the authors' per-setting rates do not carry over. So the
// defender plants a backdoor of its own — a *canary*, here a blend trigger with a pattern of the
// defender's choosing — into a copy of M using the reserved clean set, runs BaDExpert on that
// copy with each candidate rate, and keeps the rate whose backdoor expert best separates canary
// inputs from clean calibration inputs (AUROC of b alone, the "single" rule: the rate changes B
// only, and a freshly planted canary is so easy for M' to forget that the ensemble score is
// saturated for every rate). No poisoned data of the real attacker is ever used.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import { Rng } from "../util/rng.js";
import { createAttack } from "../attacks/registry.js";
import { fit } from "../train/trainer.js";
import { evaluateModel } from "../train/evaluate.js";
import { DEFAULT_CONFIG } from "../train/config.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { BadExpertDetector } from "./detector.js";
import { cloneModel, extractBackdoorExpert } from "./fit.js";
import { evaluateDefense } from "./evaluate.js";
import type { FinetuneOptions, UnlearnOptions } from "./defaults.js";

export const DEFAULT_CANDIDATES = [5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3];

export interface CanaryResult {
  lr: number;
  /** AUROC of the canary detector for each candidate rate. */
  table: { lr: number; auroc: number; expertCleanAccuracy: number }[];
  canary: { targetClass: number; patternSeed: number; alpha: number; poisonedFraction: number; attackSuccessRate: number; cleanAccuracy: number };
  seconds: number;
}

export async function selectUnlearnLr(
  model: Module,
  meta: { spec: ModelSpec; preprocessing: Preprocessing },
  reserved: ImageDataset,
  calibration: ImageDataset,
  o: { unlearn: UnlearnOptions; finetune: FinetuneOptions; augment: AugmentOptions; seed: number; candidates?: number[]; silent?: boolean; log?: (l: string) => void },
): Promise<CanaryResult> {
  const t0 = Date.now();
  const log = o.log ?? ((l: string) => console.error(l));
  const rng = Rng.derive(o.seed, 7919);
  const numClasses = meta.spec.numClasses;
  const canary = { targetClass: rng.int(0, numClasses), patternSeed: 1_000_003 + o.seed, alpha: 0.2, poisonedFraction: 0.2 };
  const spec = { numClasses, height: reserved.height, width: reserved.width, channels: reserved.channels };
  const attack = createAttack("blend", { targetClass: canary.targetClass, rate: canary.poisonedFraction, alpha: canary.alpha, patternSeed: canary.patternSeed }, spec);
  const silent = o.silent ?? true;

  // Plant the canary: finetune a copy of M on the reserved set with a fifth of it triggered.
  const poisoned = await attack.poison(reserved, o.seed + 17);
  const canaryModel = cloneModel(model, meta.spec);
  const made: Module[] = [canaryModel];
  try {
    await fit(canaryModel, poisoned.dataset, {
      ...DEFAULT_CONFIG,
      epochs: 5,
      batchSize: o.finetune.batchSize,
      optimizer: "sgd",
      lr: o.finetune.lr,
      momentum: 0.9,
      nesterov: true,
      weightDecay: o.finetune.weightDecay,
      schedule: "cosine",
      augment: o.augment,
      seed: o.seed + 23,
    }, { normalization: meta.preprocessing, silent });
    const asrSet = attack.poisonedTestSet(calibration);
    const canaryAsr = evaluateModel(canaryModel, asrSet.dataset, { normalization: meta.preprocessing }).accuracy;
    const canaryCa = evaluateModel(canaryModel, calibration, { normalization: meta.preprocessing }).accuracy;
    log(`canary backdoor planted: ASR ${(100 * canaryAsr).toFixed(1)}%, clean accuracy ${(100 * canaryCa).toFixed(1)}% (calibration split)`);
    if (canaryAsr < 0.5) log("warning: the canary backdoor did not take well; the selected unlearning rate is less reliable");

    const table: CanaryResult["table"] = [];
    for (const lr of o.candidates ?? DEFAULT_CANDIDATES) {
      const expert = await extractBackdoorExpert(canaryModel, meta.spec, reserved, { unlearn: { ...o.unlearn, lr }, augment: o.augment, normalization: meta.preprocessing, seed: o.seed, silent });
      // The single rule reads only B; the canary model stands in for M' (its confidence is unused).
      const det = BadExpertDetector.uncalibrated({ model: canaryModel, expert, auxiliary: canaryModel }, {
        spec: meta.spec, preprocessing: meta.preprocessing, classNames: [], rule: "single",
      });
      // Clean calibration inputs against their canary-triggered copies, as evaluation does for real attacks.
      const r = evaluateDefense(det, calibration, attack);
      const expertCa = evaluateModel(expert, calibration, { normalization: meta.preprocessing }).accuracy;
      expert.dispose();
      table.push({ lr, auroc: r.metrics.auroc, expertCleanAccuracy: expertCa });
      log(`  unlearning lr ${lr}: canary AUROC ${r.metrics.auroc.toFixed(4)}, B's clean accuracy ${(100 * expertCa).toFixed(1)}%`);
    }
    // Highest AUROC; near-ties (within 0.001) go to the gentler rate, which keeps more of the backdoor.
    const best = Math.max(...table.map((t) => t.auroc));
    const chosen = table.find((t) => t.auroc >= best - 0.001) ?? table[0];
    if (!chosen) throw new Error("selectUnlearnLr: no candidate rates");
    return { lr: chosen.lr, table, canary: { ...canary, attackSuccessRate: canaryAsr, cleanAccuracy: canaryCa }, seconds: (Date.now() - t0) / 1000 };
  } finally {
    for (const m of made) m.dispose();
  }
}
