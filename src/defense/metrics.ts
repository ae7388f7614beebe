// Detection metrics with the BaDExpert authors' conventions: AUROC of the score over {clean
// inputs M gets right: negatives} ∪ {poisoned inputs that fool M: positives}; TPR/FPR at the
// threshold on the same sets; clean accuracy and attack success rate before and after the
// defense (after = correct/successful AND not flagged, over all inputs of that kind).

/** Area under the ROC curve = P(score(pos) > score(neg)) + 0.5 P(equal), by average ranks. */
export function auroc(positives: ArrayLike<number>, negatives: ArrayLike<number>): number {
  const np = positives.length;
  const nn = negatives.length;
  if (np === 0 || nn === 0) return Number.NaN;
  const all: [number, boolean][] = [];
  for (let i = 0; i < np; i++) all.push([positives[i] as number, true]);
  for (let i = 0; i < nn; i++) all.push([negatives[i] as number, false]);
  all.sort((x, y) => x[0] - y[0]);
  let rankSumPos = 0;
  let i = 0;
  while (i < all.length) {
    let j = i;
    while (j + 1 < all.length && (all[j + 1] as [number, boolean])[0] === (all[i] as [number, boolean])[0]) j++;
    const avgRank = (i + j) / 2 + 1; // ranks are 1-based; ties share their average rank
    for (let k = i; k <= j; k++) if ((all[k] as [number, boolean])[1]) rankSumPos += avgRank;
    i = j + 1;
  }
  return (rankSumPos - (np * (np + 1)) / 2) / (np * nn);
}

export interface RocPoint {
  threshold: number;
  fpr: number;
  tpr: number;
}

/** ROC curve points (flag iff score > threshold), from (0, 0) to (1, 1). */
export function rocCurve(positives: ArrayLike<number>, negatives: ArrayLike<number>): RocPoint[] {
  const thresholds = Array.from(new Set([...Array.from(positives), ...Array.from(negatives)])).sort((a, b) => b - a);
  const pts: RocPoint[] = [{ threshold: Number.POSITIVE_INFINITY, fpr: 0, tpr: 0 }];
  const pos = Float64Array.from(positives).sort();
  const neg = Float64Array.from(negatives).sort();
  const above = (sorted: Float64Array, t: number) => {
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((sorted[mid] as number) <= t) lo = mid + 1;
      else hi = mid;
    }
    return sorted.length - lo;
  };
  for (const t of thresholds) {
    pts.push({
      threshold: t,
      fpr: neg.length ? above(neg, t) / neg.length : 0,
      tpr: pos.length ? above(pos, t) / pos.length : 0,
    });
  }
  pts.push({ threshold: Number.NEGATIVE_INFINITY, fpr: 1, tpr: 1 });
  return pts;
}

export interface DefenseMetrics {
  cleanCount: number;
  poisonCount: number;
  /** Clean accuracy of M, and after removing flagged clean inputs. */
  cleanAccuracyBefore: number;
  cleanAccuracyAfter: number;
  /** Attack success rate of M on poisoned inputs, and after removing flagged ones. */
  asrBefore: number;
  asrAfter: number;
  auroc: number;
  /** At the calibrated threshold: flagged fraction of positives (poisoned inputs that fool M) and of negatives (clean inputs M gets right). */
  tpr: number;
  fpr: number;
  threshold: number;
}

export interface ScoredSet {
  pred: ArrayLike<number>;
  score: ArrayLike<number>;
  /** Label counted as "correct" (clean: true label) or "attack success" (poisoned: attack target). */
  label: ArrayLike<number>;
}

export function defenseMetrics(clean: ScoredSet, poisoned: ScoredSet, threshold: number): DefenseMetrics {
  const neg: number[] = [];
  let correct = 0;
  let correctKept = 0;
  for (let i = 0; i < clean.pred.length; i++) {
    if (clean.pred[i] === clean.label[i]) {
      correct++;
      const s = clean.score[i] as number;
      neg.push(s);
      if (!(s > threshold)) correctKept++;
    }
  }
  const pos: number[] = [];
  let success = 0;
  let successKept = 0;
  for (let i = 0; i < poisoned.pred.length; i++) {
    if (poisoned.pred[i] === poisoned.label[i]) {
      success++;
      const s = poisoned.score[i] as number;
      pos.push(s);
      if (!(s > threshold)) successKept++;
    }
  }
  const nc = clean.pred.length;
  const np = poisoned.pred.length;
  return {
    cleanCount: nc,
    poisonCount: np,
    cleanAccuracyBefore: nc ? correct / nc : Number.NaN,
    cleanAccuracyAfter: nc ? correctKept / nc : Number.NaN,
    asrBefore: np ? success / np : Number.NaN,
    asrAfter: np ? successKept / np : Number.NaN,
    auroc: auroc(pos, neg),
    tpr: pos.length ? pos.filter((s) => s > threshold).length / pos.length : Number.NaN,
    fpr: neg.length ? neg.filter((s) => s > threshold).length / neg.length : Number.NaN,
    threshold,
  };
}
