// The attack success rate: the share of triggered test images classified as the attacker wants.
import type { PoisonedTestSet } from "./attack.js";

/** Fraction of rows whose prediction equals the row's target label (0 for an empty set). */
export function attackSuccessRate(predictions: ArrayLike<number>, set: Pick<PoisonedTestSet, "targetLabels">): number {
  const t = set.targetLabels;
  if (predictions.length !== t.length) {
    throw new RangeError(`attackSuccessRate: ${predictions.length} predictions for ${t.length} poisoned test images`);
  }
  let hit = 0;
  for (let i = 0; i < t.length; i++) if (predictions[i] === t[i]) hit++;
  return t.length ? hit / t.length : 0;
}
