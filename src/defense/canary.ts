// Choosing the unlearning strength with only what a defender has. The learning rate of the
// backdoor expert decides everything (too weak: B still solves the clean task; too strong: B
// forgets the backdoor too), and the authors' per-setting rates do not carry over. So the
// defender plants backdoors of its own — *canaries*, with triggers of the defender's choosing —
// into copies of M using the reserved clean set, extracts B from each copy at every candidate
// rate, and measures how well that B separates canary inputs from clean calibration inputs
// (AUROC of b alone, the "single" rule: the rate changes B only, and a freshly planted canary is
// so easy for M' to forget that the ensemble score saturates for every rate). A rule then turns
// those tables into one rate (chooseUnlearnLr). No poisoned data of the real attacker is used.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import type { Attack } from "../attacks/attack.js";
import { Rng } from "../util/rng.js";
import { subset } from "../data/splits.js";
import { createAttack } from "../attacks/registry.js";
import { SourceSpecific } from "../attacks/source-specific.js";
import { fit } from "../train/trainer.js";
import { evaluateModel } from "../train/evaluate.js";
import { DEFAULT_CONFIG } from "../train/config.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { BadExpertDetector } from "./detector.js";
import {
  CANARY_KINDS,
  type CanaryKind,
  type CanaryPlanting,
  type CanaryRecord,
  type CanaryResult,
  type CanaryRow,
  type SelectionRule,
  type UnlearningRecord,
} from "./records.js";
export {
  CANARY_KINDS,
  type CanaryKind,
  type CanaryPlanting,
  type CanaryRecord,
  type CanaryResult,
  type CanaryRow,
  type SelectionRule,
  type UnlearningRecord,
};
import { cloneModel, extractBackdoorExpert } from "./fit.js";
import { evaluateDefense } from "./evaluate.js";
import type { FinetuneOptions, UnlearnOptions } from "./defaults.js";

export const DEFAULT_CANDIDATES: readonly number[] = [3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3, 2e-3];

/** The canaries defend plants unless told otherwise. */
export const DEFAULT_CANARY_KINDS: readonly CanaryKind[] = ["blend", "patch"];

interface ModelMeta {
  spec: ModelSpec;
  preprocessing: Preprocessing;
}

export interface CanaryOptions {
  planting?: CanaryPlanting;
  unlearn: UnlearnOptions;
  finetune: FinetuneOptions;
  augment: AugmentOptions;
  seed: number;
  candidates?: readonly number[];
  silent?: boolean;
  log?: (line: string) => void;
  /** Where the canary copies are trained ("cpu", "cuda", "cuda:N"); they are measured on the CPU. */
  device?: string;
}

const POISONED_FRACTION = 0.2;
const PLANT_EPOCHS = 5;

type CanarySpec = { numClasses: number; height: number; width: number; channels: number };

/**
 * The defender's own trigger of one kind, with a seeded target class: a blend of its own noise
 * pattern, or a checkerboard in the top-left corner (real patch attacks usually sit elsewhere;
 * the defender does not know where, and does not need to). The conditional canary needs the
 * images it is planted on (`plantOn`) to choose its classes and rates.
 */
export function canaryAttack(kind: CanaryKind, seed: number, spec: CanarySpec, plantOn?: ImageDataset): Attack {
  if (kind === "conditional") {
    if (!plantOn) throw new TypeError("canaryAttack: the conditional canary needs the images it is planted on");
    return conditionalCanary(seed, spec, plantOn);
  }
  const rng = Rng.derive(seed, kind === "blend" ? 7919 : 7927);
  const targetClass = rng.int(0, spec.numClasses);
  if (kind === "blend")
    return createAttack(
      "blend",
      { targetClass, rate: POISONED_FRACTION, alpha: 0.2, patternSeed: 1_000_003 + seed },
      spec,
    );
  return createAttack("badnet", { targetClass, rate: POISONED_FRACTION, cells: 3, margin: 1, corner: 3 }, spec);
}

/**
 * The patch canary made conditional: seeded target, source and (up to two) cover classes; the
 * source is drawn among the classes with at least the median count in `plantOn` (GTSRB's classes
 * are unbalanced), half of its images are triggered and relabelled, and as many cover images
 * (TaCT's 1:1) carry the patch with their own label.
 */
function conditionalCanary(seed: number, spec: CanarySpec, plantOn: ImageDataset): Attack {
  const k = spec.numClasses;
  if (k < 3) throw new RangeError(`the conditional canary needs at least 3 classes (target, source, cover), got ${k}`);
  const counts = new Array<number>(k).fill(0);
  for (const y of plantOn.labels) counts[y] = (counts[y] as number) + 1;
  const rng = Rng.derive(seed, 7937);
  const targetClass = rng.int(0, k);
  const others = Array.from({ length: k }, (_, c) => c).filter((c) => c !== targetClass);
  const median = others.map((c) => counts[c] as number).sort((a, b) => a - b)[Math.floor(others.length / 2)] as number;
  const shuffled = (xs: number[]) => Array.from(rng.permutation(xs.length), (i) => xs[i] as number);
  const large = shuffled(others.filter((c) => (counts[c] as number) >= median));
  const sourceClass = large[0] as number;
  const coverClasses = [...large.slice(1), ...shuffled(others.filter((c) => (counts[c] as number) < median))].slice(
    0,
    2,
  );
  const poisoned = Math.floor((counts[sourceClass] as number) / 2);
  if (poisoned === 0)
    throw new RangeError(
      `the conditional canary's source class ${sourceClass} has ${counts[sourceClass] ?? 0} image(s) in the planting set; at least 2 are needed`,
    );
  const coverPool = coverClasses.reduce((n, c) => n + (counts[c] as number), 0);
  const patch = canaryAttack("patch", seed, spec);
  return new SourceSpecific(
    patch,
    {
      targetClass,
      sourceClass,
      coverClasses: coverClasses.join(","),
      rate: poisoned / plantOn.count,
      coverRate: Math.min(poisoned, coverPool) / plantOn.count,
    },
    spec,
  );
}

function plantingSplits(
  planting: CanaryPlanting,
  reserved: ImageDataset,
  calibration: ImageDataset,
  seed: number,
): { plantOn: ImageDataset; measureOn: ImageDataset } {
  if (planting === "reserved") return { plantOn: reserved, measureOn: calibration };
  const order = Rng.derive(seed, 7933).permutation(calibration.count);
  const half = Math.floor(calibration.count / 2);
  return {
    plantOn: subset(calibration, order.subarray(0, half)),
    measureOn: subset(calibration, order.subarray(half)),
  };
}

/** Plants one canary in a copy of M and measures B's separation of it at every candidate rate. */
export async function measureCanary(
  model: Module,
  meta: ModelMeta,
  reserved: ImageDataset,
  calibration: ImageDataset,
  kind: CanaryKind,
  o: CanaryOptions,
): Promise<CanaryRecord> {
  const t0 = Date.now();
  const log = o.log ?? ((l: string) => console.error(l));
  const silent = o.silent ?? true;
  const spec = {
    numClasses: meta.spec.numClasses,
    height: reserved.height,
    width: reserved.width,
    channels: reserved.channels,
  };
  const planting = o.planting ?? "reserved";
  const { plantOn, measureOn } = plantingSplits(planting, reserved, calibration, o.seed);
  const attack = canaryAttack(kind, o.seed, spec, plantOn);

  // Plant the canary: finetune a copy of M on clean images with a fifth of them triggered (the
  // conditional canary: half of its source class, and as many covers).
  const poisoned = await attack.poison(plantOn, o.seed + 17);
  const canaryModel = cloneModel(model, meta.spec);
  const device = o.device ?? "cpu";
  try {
    if (device !== "cpu") canaryModel.to(device);
    await fit(
      canaryModel,
      poisoned.dataset,
      {
        ...DEFAULT_CONFIG,
        epochs: PLANT_EPOCHS,
        batchSize: o.finetune.batchSize,
        optimizer: "sgd",
        lr: o.finetune.lr,
        momentum: 0.9,
        nesterov: true,
        weightDecay: o.finetune.weightDecay,
        schedule: "cosine",
        augment: o.augment,
        seed: o.seed + 23,
      },
      { normalization: meta.preprocessing, silent, device },
    );
    if (device !== "cpu") canaryModel.to("cpu");
    canaryModel.eval();
    const norm = { normalization: meta.preprocessing };
    const asr = evaluateModel(canaryModel, attack.poisonedTestSet(measureOn).dataset, norm).accuracy;
    const ca = evaluateModel(canaryModel, measureOn, norm).accuracy;
    log(
      `${kind} canary planted: ASR ${(100 * asr).toFixed(1)}%, clean accuracy ${(100 * ca).toFixed(1)}% (calibration split)`,
    );
    if (asr < 0.5) log(`warning: the ${kind} canary did not take well; the selected unlearning rate is less reliable`);

    const table: CanaryRow[] = [];
    for (const lr of o.candidates ?? DEFAULT_CANDIDATES) {
      const expert = await extractBackdoorExpert(canaryModel, meta.spec, reserved, {
        unlearn: { ...o.unlearn, lr },
        augment: o.augment,
        normalization: meta.preprocessing,
        seed: o.seed,
        silent,
        ...(o.device ? { device: o.device } : {}),
      });
      try {
        // The single rule reads only B; the canary model stands in for M' (its confidence is unused).
        const det = BadExpertDetector.uncalibrated(
          { model: canaryModel, expert, auxiliary: canaryModel },
          {
            spec: meta.spec,
            preprocessing: meta.preprocessing,
            classNames: [],
            rule: "single",
          },
        );
        // Clean calibration inputs against their canary-triggered copies, as evaluation does for real attacks.
        const auroc = evaluateDefense(det, measureOn, attack).metrics.auroc;
        const expertCleanAccuracy = evaluateModel(expert, measureOn, norm).accuracy;
        table.push({ lr, auroc, expertCleanAccuracy });
        log(
          `  ${kind} canary, unlearning lr ${lr}: AUROC ${auroc.toFixed(4)}, B's clean accuracy ${(100 * expertCleanAccuracy).toFixed(1)}%`,
        );
      } finally {
        expert.dispose();
      }
    }
    return {
      kind,
      planting,
      attack: { name: attack.name, params: { ...attack.params } },
      poisonedFraction: poisoned.poisonIndices.length / plantOn.count,
      attackSuccessRate: asr,
      cleanAccuracy: ca,
      table,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    canaryModel.dispose();
  }
}

/**
 * The default: the strongest rate at which every canary is still detected with AUROC ≥ 0.98.
 * Chosen on eight development attacks (Trojan, WaNet, TaCT, Adaptive-Patch, Clean-Label, BPP,
 * Adaptive-Blend, all-to-all; measured on the evaluation matrix) among the rules above, then
 * checked on BadNet and Blend; the old "peak" rule landed one step too gentle (2e-4) for Blend.
 * On CIFAR-10 no rate reached the level; selectUnlearnLr then keeps the static default.
 */
export const DEFAULT_SELECTION_RULE: SelectionRule = { pick: "strongest-above", combine: "min", level: 0.98 };

export function combinedTable(
  tables: readonly (readonly CanaryRow[])[],
  combine: SelectionRule["combine"],
): { lr: number; auroc: number }[] {
  const first = tables[0];
  if (!first || first.length === 0) throw new RangeError("chooseUnlearnLr: no canary measurements");
  return first.map((row, i) => {
    const values = tables.map((t) => {
      const r = t[i];
      if (!r || r.lr !== row.lr)
        throw new RangeError(
          `chooseUnlearnLr: the canary tables do not share their rates (row ${i}: ${row.lr} vs ${r?.lr})`,
        );
      return r.auroc;
    });
    return {
      lr: row.lr,
      auroc: combine === "min" ? Math.min(...values) : values.reduce((a, b) => a + b, 0) / values.length,
    };
  });
}

/** The rate the rule picks from the canary tables, or null when they are inconclusive. */
export function chooseUnlearnLr(
  tables: readonly (readonly CanaryRow[])[],
  rule: SelectionRule = DEFAULT_SELECTION_RULE,
): number | null {
  const rows = [...combinedTable(tables, rule.combine)].sort((a, b) => a.lr - b.lr);
  const tolerance = rule.tolerance ?? 0.001;
  const best = Math.max(...rows.map((r) => r.auroc));
  const near = rows.filter((r) => r.auroc >= best - tolerance);
  const gentlest = near[0]?.lr as number;
  const strongest = near[near.length - 1]?.lr as number;
  if (rule.pick === "peak") return gentlest;
  if (rule.pick === "peak-strong") return strongest;
  const kept = rows.filter((r) => r.auroc >= (rule.level ?? 0.95));
  return kept.length > 0 ? (kept[kept.length - 1] as { lr: number }).lr : null;
}

/**
 * The rate from measured canaries: the rule over the blend and patch canaries (the static rate
 * when they are inconclusive), capped by the conditional canaries' peak where there are any.
 * `uncapped` is the rate before the cap.
 */
export function decideUnlearnLr(
  canaries: readonly Pick<CanaryRecord, "kind" | "table">[],
  rule: SelectionRule,
  staticLr: number,
): { lr: number; conclusive: boolean; uncapped: number; conditionalPeak?: number } {
  const pick = chooseUnlearnLr(
    canaries.filter((c) => c.kind !== "conditional").map((c) => c.table),
    rule,
  );
  const uncapped = pick ?? staticLr;
  const conditional = canaries.filter((c) => c.kind === "conditional");
  if (conditional.length === 0) return { lr: uncapped, conclusive: pick !== null, uncapped };
  const peak = chooseUnlearnLr(
    conditional.map((c) => c.table),
    { pick: "peak", combine: "min" },
  ) as number;
  return { lr: Math.min(uncapped, peak), conclusive: pick !== null, uncapped, conditionalPeak: peak };
}

export async function selectUnlearnLr(
  model: Module,
  meta: ModelMeta,
  reserved: ImageDataset,
  calibration: ImageDataset,
  o: CanaryOptions & { kinds?: readonly CanaryKind[]; selectionRule?: SelectionRule },
): Promise<CanaryResult> {
  const t0 = Date.now();
  const log = o.log ?? ((l: string) => console.error(l));
  const kinds = o.kinds ?? DEFAULT_CANARY_KINDS;
  if (!kinds.some((k) => k !== "conditional"))
    throw new RangeError(
      "selectUnlearnLr: the conditional canary only caps the rate; a blend or patch canary must choose it",
    );
  const canaries: CanaryRecord[] = [];
  for (const kind of kinds) canaries.push(await measureCanary(model, meta, reserved, calibration, kind, o));
  const rule = o.selectionRule ?? DEFAULT_SELECTION_RULE;
  const d = decideUnlearnLr(canaries, rule, o.unlearn.lr);
  if (!d.conclusive)
    log(
      `warning: the canaries are inconclusive (no rate keeps every canary at AUROC >= ${rule.level ?? 0.95}); using the static default ${o.unlearn.lr}`,
    );
  if (d.conditionalPeak !== undefined && d.lr < d.uncapped) {
    log(
      `the conditional canary is best separated at ${d.conditionalPeak}, gentler than ${d.uncapped}: B's rate is capped there`,
    );
  }
  return {
    lr: d.lr,
    conclusive: d.conclusive,
    ...(d.conditionalPeak !== undefined ? { conditionalPeak: d.conditionalPeak } : {}),
    rule,
    canaries,
    seconds: (Date.now() - t0) / 1000,
  };
}
