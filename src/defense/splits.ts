// The three disjoint clean splits of the BaDExpert protocol, all taken from the test set:
// the defender's reserved clean set (B and M' are finetuned on it), a calibration split (the
// threshold), and an evaluation split (every reported metric). The paper reserves 5% of the
// training-set size (2,000 CIFAR-10 images); we cap it at 30% of the test set.
import { splitIndices } from "../data/splits.js";

export interface DefenseSplitSpec {
  seed: number;
  reserved: number;
  calibration: number;
}

export interface DefenseSplits {
  spec: DefenseSplitSpec;
  reserved: Int32Array;
  calibration: Int32Array;
  evaluation: Int32Array;
}

/**
 * The default split sizes, the one place that decides them (CLI, demo and benchmarks alike).
 * trainCount is the size of the model's training set when the checkpoint records it; otherwise
 * it is taken as five times the test set (Fashion-MNIST's and CIFAR-10's ratio).
 */
export function defaultSplitSpec(trainCount: number | undefined, testCount: number, seed = 0): DefenseSplitSpec {
  trainCount ??= 5 * testCount;
  const reserved = Math.min(Math.round(0.05 * trainCount), Math.floor(0.3 * testCount));
  const calibration = Math.min(2000, Math.floor(0.2 * testCount));
  return { seed, reserved, calibration };
}

export function defenseSplits(testCount: number, spec: DefenseSplitSpec): DefenseSplits {
  if (spec.reserved < 1 || spec.calibration < 1)
    throw new RangeError(
      `defense splits: reserved (${spec.reserved}) and calibration (${spec.calibration}) must be at least 1`,
    );
  if (spec.reserved + spec.calibration >= testCount) {
    throw new RangeError(
      `defense splits: reserved (${spec.reserved}) + calibration (${spec.calibration}) leave no evaluation images out of ${testCount}`,
    );
  }
  const s = splitIndices(
    testCount,
    { reserved: spec.reserved, calibration: spec.calibration, evaluation: -1 },
    spec.seed,
  );
  return {
    spec,
    reserved: s.reserved ?? new Int32Array(),
    calibration: s.calibration ?? new Int32Array(),
    evaluation: s.evaluation ?? new Int32Array(),
  };
}
