// The triggered side of evaluate-defense when no built-in attack makes it: the user's own
// triggered inputs (a folder with labels.csv or an .npz: data/triggered-set.ts), or a trigger
// image stamped on the clean evaluation split (data/trigger-image.ts). Both are scored with the
// same metric code as an attack (defense/metrics.ts, the authors' conventions), with one
// difference where no target class is known: "attack success" is then a triggered input whose
// prediction differs from its true label, and the result says so (`asrMeaning`).
import type { ParamValue } from "../attacks/attack.js";
import type { ImageDataset } from "../data/dataset.js";
import { subset } from "../data/splits.js";
import { readTriggeredSet } from "../data/triggered-set.js";
import { applyTriggerImage, readTriggerImage } from "../data/trigger-image.js";
import { OptionError } from "./errors.js";
import { BadExpertError } from "../util/errors.js";

/** What ASR counts: inputs sent to their target, or (no target known) inputs not given their true label. */
export type AsrMeaning = "target" | "misclassified";

export interface TriggeredInputs {
  /** The triggered images (their `labels` are their true classes). */
  dataset: ImageDataset;
  /** The class each is meant to reach; null where none is known. */
  targets: Int32Array | null;
  /** How the report and the result name this source. */
  attack: { name: string; params: Record<string, ParamValue> };
  /** Triggered inputs left out because their true class is their target: they cannot show the attack. */
  leftOut: number;
}

export interface TriggerImageOption {
  image: string;
  mask?: string;
  /** Blend weight in (0, 1] (default 1: the trigger's pixels replace the image's where the mask is set). */
  alpha?: number;
}

function checkTarget(target: number | undefined, classes: number): void {
  if (target !== undefined && !(Number.isInteger(target) && target >= 0 && target < classes))
    throw new OptionError("target", `expected a class index in 0..${classes - 1}, got ${target}`);
}

/** The rows of `set` whose true class differs from their target (all rows when there are no targets). */
function withoutTargetClass(
  set: ImageDataset,
  targets: Int32Array | null,
): { kept: Int32Array; dataset: ImageDataset; targets: Int32Array | null } {
  if (targets === null) return { kept: Int32Array.from({ length: set.count }, (_, i) => i), dataset: set, targets };
  const kept = Int32Array.from(
    Array.from({ length: set.count }, (_, i) => i).filter((i) => set.labels[i] !== targets[i]),
  );
  return {
    kept,
    dataset: kept.length === set.count ? set : subset(set, kept),
    targets: kept.length === set.count ? targets : Int32Array.from(kept, (i) => targets[i] as number),
  };
}

/** The user's triggered set at `path`; `target` applies where the set records none. */
export async function triggeredSetInputs(
  path: string,
  target: number | undefined,
  model: { height: number; width: number; channels: 1 | 3; classNames: string[] },
): Promise<TriggeredInputs> {
  checkTarget(target, model.classNames.length);
  const set = await readTriggeredSet(path, model);
  if (set.targets !== null && target !== undefined)
    throw new OptionError("target", `${path} records its own targets; a target is only given for a set without them`);
  const targets = set.targets ?? (target !== undefined ? new Int32Array(set.dataset.count).fill(target) : null);
  const s = withoutTargetClass(set.dataset, targets);
  if (s.dataset.count === 0)
    throw new BadExpertError(
      "E_DATA",
      `${path}: every triggered image's true class is its target: none can show the attack`,
    );
  const targetWord = set.targets !== null ? "recorded in the set" : target !== undefined ? target : "unknown";
  return {
    dataset: s.dataset,
    targets: s.targets,
    attack: { name: "triggered-set", params: { path, images: s.dataset.count, target: targetWord } },
    leftOut: set.dataset.count - s.dataset.count,
  };
}

/** The trigger image stamped on `evaluation` (without the target class's images when a target is given). */
export async function triggerImageInputs(
  o: TriggerImageOption,
  target: number | undefined,
  evaluation: ImageDataset,
): Promise<TriggeredInputs> {
  checkTarget(target, evaluation.classNames.length);
  const alpha = o.alpha ?? 1;
  if (!(alpha > 0 && alpha <= 1))
    throw new OptionError("triggerAlpha", `expected a blend weight in (0, 1], got ${alpha}`);
  const t = await readTriggerImage(o.image, o.mask, {
    height: evaluation.height,
    width: evaluation.width,
    channels: evaluation.channels === 1 ? 1 : 3,
  });
  const targets = target !== undefined ? new Int32Array(evaluation.count).fill(target) : null;
  const s = withoutTargetClass(evaluation, targets);
  if (s.dataset.count === 0)
    throw new BadExpertError(
      "E_DATA",
      `every evaluation image is of the target class ${target}: none can show the attack`,
    );
  return {
    dataset: applyTriggerImage(s.dataset, t, alpha),
    targets: s.targets,
    attack: {
      name: "trigger-image",
      params: { trigger: o.image, mask: o.mask ?? t.maskSource, alpha, target: target ?? "unknown" },
    },
    leftOut: evaluation.count - s.dataset.count,
  };
}

/**
 * The label that counts as attack success for each triggered input, for the metric code (which
 * counts pred === label): its target; with no target, its own prediction where that differs from
 * the true label and -1 (no class: never a success) where it does not.
 */
export function successLabels(t: TriggeredInputs, pred: ArrayLike<number>): Int32Array {
  if (t.targets !== null) return t.targets;
  return Int32Array.from(t.dataset.labels, (y, i) => (pred[i] === y ? -1 : (pred[i] as number)));
}
