// How a detector was made: the `creation` record of a bundle's manifest. fitBadExpert() fills the
// hyperparameters, data sizes and timings; the defend job adds where the model and data came from,
// the splits (which evaluate-defense rebuilds) and how the unlearning rate was chosen. Every field
// is optional: a detector fitted directly with the library has no dataset or splits.
import type { AugmentOptions } from "../data/augment.js";
import { readAttackRecord, type AttackRecord } from "../train/checkpoint.js";
import type { FieldReader } from "../util/fields.js";
import type { UnlearningRecord } from "./records.js";
import { UNLEARN_LABEL_MAPPINGS, type FinetuneOptions, type UnlearnOptions } from "./defaults.js";
import type { DefenseSplitSpec } from "./splits.js";
import type { AuxiliaryRateSelection } from "./records.js";
import type { UnlearningTrace } from "./records.js";

/** Where B's unlearning rate came from. */
export type UnlearnLrSource = UnlearningRecord["source"];
export const UNLEARN_LR_SOURCES: readonly UnlearnLrSource[] = [
  "until-forgotten",
  "paper",
  "default",
  "canary",
  "canary-inconclusive",
  "given",
];

export interface CreationRecord {
  unlearn?: UnlearnOptions;
  finetune?: FinetuneOptions;
  augment?: AugmentOptions;
  seed?: number;
  reservedCount?: number;
  calibrationCount?: number;
  seconds?: { expert: number; auxiliary: number; calibration: number };
  createdAt?: string;
  /** The suspicious model's checkpoint directory, as given to defend. */
  checkpoint?: string;
  dataset?: { name: string; path?: string };
  splits?: DefenseSplitSpec;
  /** The checkpoint's measured figures (NaN where not measured). */
  modelMetrics?: Record<string, number>;
  modelTraining?: { attack: AttackRecord | null };
  unlearnLrSource?: UnlearnLrSource;
  /** How M''s finetuning rate was chosen, when defend chose it (finetuneLr "auto"). */
  finetuneSelection?: AuxiliaryRateSelection;
  /** How B's unlearning went when it ran until B forgot the clean task (src/defense/expert-extraction.ts). */
  unlearning?: UnlearningTrace;
}

/** Validates the fields the jobs and the report read; the message names the field. */
export function readCreation(r: FieldReader, v: unknown, path = "creation"): CreationRecord {
  const c = r.object(v, path);
  const out: CreationRecord = {};
  const num = (x: unknown, p: string) => r.number(x, `${path}.${p}`, { min: 0 });
  const int = (x: unknown, p: string) => r.number(x, `${path}.${p}`, { integer: true, min: 0 });
  if (c.unlearn !== undefined) {
    const u = r.object(c.unlearn, `${path}.unlearn`);
    out.unlearn = {
      lr: num(u.lr, "unlearn.lr"),
      epochs: int(u.epochs, "unlearn.epochs"),
      batchSize: int(u.batchSize, "unlearn.batchSize"),
      // Bundles written before the option existed used the paper's shift.
      ...(u.labels !== undefined
        ? { labels: r.oneOf(u.labels, `${path}.unlearn.labels`, UNLEARN_LABEL_MAPPINGS) }
        : {}),
    };
  }
  if (c.finetune !== undefined) {
    const f = r.object(c.finetune, `${path}.finetune`);
    out.finetune = {
      lr: num(f.lr, "finetune.lr"),
      gamma: num(f.gamma, "finetune.gamma"),
      epochs: int(f.epochs, "finetune.epochs"),
      batchSize: int(f.batchSize, "finetune.batchSize"),
      milestones: r.numbers(f.milestones, `${path}.finetune.milestones`, { integer: true, min: 0 }),
      momentum: num(f.momentum, "finetune.momentum"),
      weightDecay: num(f.weightDecay, "finetune.weightDecay"),
      ...(f.warmupEpochs !== undefined ? { warmupEpochs: num(f.warmupEpochs, "finetune.warmupEpochs") } : {}),
    };
  }
  if (c.augment !== undefined) {
    const a = r.object(c.augment, `${path}.augment`);
    out.augment = {};
    if (a.cropPadding !== undefined) out.augment.cropPadding = int(a.cropPadding, "augment.cropPadding");
    if (a.flipProbability !== undefined)
      out.augment.flipProbability = r.number(a.flipProbability, `${path}.augment.flipProbability`, { min: 0, max: 1 });
    if (a.rotationDegrees !== undefined)
      out.augment.rotationDegrees = num(a.rotationDegrees, "augment.rotationDegrees");
  }
  if (c.seed !== undefined) out.seed = int(c.seed, "seed");
  if (c.reservedCount !== undefined) out.reservedCount = int(c.reservedCount, "reservedCount");
  if (c.calibrationCount !== undefined) out.calibrationCount = int(c.calibrationCount, "calibrationCount");
  if (c.seconds !== undefined) {
    const s = r.object(c.seconds, `${path}.seconds`);
    out.seconds = {
      expert: num(s.expert, "seconds.expert"),
      auxiliary: num(s.auxiliary, "seconds.auxiliary"),
      calibration: num(s.calibration, "seconds.calibration"),
    };
  }
  if (c.createdAt !== undefined) out.createdAt = r.string(c.createdAt, `${path}.createdAt`);
  if (c.checkpoint !== undefined) out.checkpoint = r.string(c.checkpoint, `${path}.checkpoint`);
  if (c.dataset !== undefined) {
    const d = r.object(c.dataset, `${path}.dataset`);
    const p = r.optional(d.path, (x) => r.string(x, `${path}.dataset.path`));
    out.dataset = { name: r.string(d.name, `${path}.dataset.name`), ...(p !== undefined ? { path: p } : {}) };
  }
  if (c.splits !== undefined) {
    const s = r.object(c.splits, `${path}.splits`);
    out.splits = {
      seed: int(s.seed, "splits.seed"),
      reserved: int(s.reserved, "splits.reserved"),
      calibration: int(s.calibration, "splits.calibration"),
    };
  }
  if (c.modelMetrics !== undefined) {
    const m: Record<string, number> = {};
    for (const [k, x] of Object.entries(r.object(c.modelMetrics, `${path}.modelMetrics`))) {
      Object.defineProperty(m, k, {
        value: x === null ? Number.NaN : r.number(x, `${path}.modelMetrics.${k}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    out.modelMetrics = m;
  }
  if (c.modelTraining !== undefined) {
    const t = r.object(c.modelTraining, `${path}.modelTraining`);
    out.modelTraining = {
      attack: t.attack === undefined ? null : readAttackRecord(r, t.attack, `${path}.modelTraining.attack`),
    };
  }
  if (c.unlearnLrSource !== undefined)
    out.unlearnLrSource = r.oneOf(c.unlearnLrSource, `${path}.unlearnLrSource`, UNLEARN_LR_SOURCES);
  if (c.finetuneSelection !== undefined) {
    const s = r.object(c.finetuneSelection, `${path}.finetuneSelection`);
    const acc = (x: unknown, k: string) => r.number(x, `${path}.finetuneSelection.${k}`, { min: 0, max: 1 });
    const modelAccuracy = acc(s.modelAccuracy, "modelAccuracy");
    const tolerance = s.tolerance === undefined ? undefined : acc(s.tolerance, "tolerance");
    const retain = s.retain === undefined ? undefined : acc(s.retain, "retain");
    out.finetuneSelection = {
      lr: num(s.lr, "finetuneSelection.lr"),
      modelAccuracy,
      ...(tolerance !== undefined ? { tolerance } : {}),
      ...(retain !== undefined ? { retain } : {}),
      table: r.array(s.table, `${path}.finetuneSelection.table`).map((row, i) => {
        const o = r.object(row, `${path}.finetuneSelection.table[${i}]`);
        const calibrationAccuracy = acc(o.calibrationAccuracy, `table[${i}].calibrationAccuracy`);
        const kept =
          o.kept === undefined
            ? calibrationAccuracy >= modelAccuracy - (tolerance ?? 0)
            : r.boolean(o.kept, `${path}.finetuneSelection.table[${i}].kept`);
        return { lr: r.number(o.lr, `${path}.finetuneSelection.table[${i}].lr`), calibrationAccuracy, kept };
      }),
      // A selection that judged every rate after the whole schedule records neither field.
      probeEpochs:
        s.probeEpochs === undefined
          ? (out.finetune?.epochs ?? 10)
          : r.number(s.probeEpochs, `${path}.finetuneSelection.probeEpochs`, { min: 1, integer: true }),
      conclusive: s.conclusive === undefined ? true : r.boolean(s.conclusive, `${path}.finetuneSelection.conclusive`),
      seconds: num(s.seconds, "finetuneSelection.seconds"),
    };
  }
  if (c.unlearning !== undefined) {
    const u = r.object(c.unlearning, `${path}.unlearning`);
    const acc = (x: unknown, k: string) => r.number(x, `${path}.unlearning.${k}`, { min: 0, max: 1 });
    out.unlearning = {
      steps: r.number(u.steps, `${path}.unlearning.steps`, { min: 0, integer: true }),
      finalLr: num(u.finalLr, "unlearning.finalLr"),
      monitorAccuracy: acc(u.monitorAccuracy, "monitorAccuracy"),
      modelAccuracy: acc(u.modelAccuracy, "modelAccuracy"),
      forgotten: r.boolean(u.forgotten, `${path}.unlearning.forgotten`),
      seconds: num(u.seconds, "unlearning.seconds"),
    };
  }
  return out;
}
