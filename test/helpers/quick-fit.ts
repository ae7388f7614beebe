// The finetuning settings of the small real detectors the tests fit (one epoch each for B and M',
// 5% target FPR): written once so that every test's detector is fitted the same way.
import type { FitDefenseOptions } from "../../src/defense/fit.js";

export const QUICK_FIT: FitDefenseOptions = {
  unlearn: { lr: 3e-4, epochs: 1, batchSize: 128 },
  finetune: {
    lr: 0.01,
    gamma: 0.1,
    epochs: 1,
    batchSize: 64,
    milestones: [2, 4, 6, 8],
    momentum: 0.9,
    weightDecay: 1e-4,
  },
  augment: {},
  rule: "triangle",
  targetFpr: 0.05,
  seed: 0,
  silent: true,
};
