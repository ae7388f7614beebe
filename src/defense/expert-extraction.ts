// Extracting the backdoor expert B with a stop rule instead of a per-model learning rate. B is M
// finetuned on deliberately wrong labels; how far to push it is what decides everything (too
// little: B still solves the clean task; too much: B forgets the backdoor too), and the right
// learning rate differs by orders of magnitude between models. So B is unlearned gently and then
// harder — Adam's rate grows geometrically from a small start — while its accuracy on held-out
// clean images is watched, and unlearning stops as soon as that accuracy falls to the level at
// which the authors' reference code stops (20%): the smallest dose of unlearning that makes B
// forget the normal task, which is where a backdoor, learned as a shortcut, survives best.
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { AugmentOptions } from "../data/augment.js";
import type { ModelSpec, Preprocessing } from "../train/checkpoint.js";
import { fit } from "../train/trainer.js";
import { evaluateModel } from "../train/evaluate.js";
import { DEFAULT_CONFIG, type TrainConfig } from "../train/config.js";
import { cloneModel, unlearningLabels } from "./fit.js";
import type { UnlearnUntilForgotten } from "./defaults.js";
import type { UnlearningTrace } from "./records.js";

/**
 * Step 1 with the stop rule: a copy of M unlearned on the reserved set's wrong labels until its
 * accuracy on `monitor` (clean images it does not train on) is at most `o.unlearn.forgetAccuracy`.
 */
export async function extractExpertUntilForgotten(
  model: Module,
  spec: ModelSpec,
  reserved: ImageDataset,
  monitor: ImageDataset,
  o: {
    unlearn: UnlearnUntilForgotten;
    augment: AugmentOptions;
    normalization: Preprocessing;
    seed: number;
    silent?: boolean;
    device?: string;
  },
): Promise<{ expert: Module; trace: UnlearningTrace }> {
  const u = o.unlearn;
  if (!(
    u.startLr > 0 &&
    u.maxLr >= u.startLr &&
    u.growthPerEpoch >= 1 &&
    u.maxEpochs >= 1 &&
    u.checkEvery >= 1 &&
    u.forgetAccuracy >= 0 &&
    u.forgetAccuracy < 1
  )) {
    throw new RangeError(
      `unlearning schedule: expected 0 < startLr <= maxLr, growthPerEpoch >= 1, maxEpochs >= 1, checkEvery >= 1, forgetAccuracy in [0, 1); got ${JSON.stringify(u)}`,
    );
  }
  const t0 = Date.now();
  const device = o.device ?? "cpu";
  const evalOptions = { normalization: o.normalization, ...(device !== "cpu" ? { device } : {}) };
  const modelAccuracy = evaluateModel(model, monitor, evalOptions).accuracy;
  const expert = cloneModel(model, spec);
  const stepsPerEpoch = Math.ceil(reserved.count / u.batchSize);
  const growthPerStep = Math.pow(u.growthPerEpoch, 1 / stepsPerEpoch);
  const rateAt = (step: number) => Math.min(u.maxLr, u.startLr * Math.pow(growthPerStep, step));
  let monitorAccuracy = modelAccuracy;
  let steps = 0;
  let forgotten = false;
  const config: TrainConfig = {
    ...DEFAULT_CONFIG,
    epochs: u.maxEpochs,
    batchSize: u.batchSize,
    optimizer: "adam",
    lr: u.startLr,
    weightDecay: 0,
    schedule: "none",
    augment: o.augment,
    seed: o.seed,
  };
  try {
    if (device !== "cpu") expert.to(device);
    await fit(expert, reserved, config, {
      normalization: o.normalization,
      labels: unlearningLabels(reserved, u.labels ?? "shift", o.seed),
      silent: o.silent ?? false,
      ...(device !== "cpu" ? { device } : {}),
      afterStep: (step, optimizer) => {
        steps = step;
        if (step % u.checkEvery === 0) {
          monitorAccuracy = evaluateModel(expert, monitor, evalOptions).accuracy;
          expert.train();
          if (monitorAccuracy <= u.forgetAccuracy) {
            forgotten = true;
            return true;
          }
        }
        for (const g of optimizer.paramGroups) g.lr = rateAt(step);
        return false;
      },
    });
    if (!forgotten) monitorAccuracy = evaluateModel(expert, monitor, evalOptions).accuracy;
    if (device !== "cpu") expert.to("cpu");
  } catch (e) {
    expert.dispose();
    throw e;
  }
  expert.eval();
  return {
    expert,
    trace: {
      steps,
      finalLr: rateAt(Math.max(0, steps - 1)),
      monitorAccuracy,
      modelAccuracy,
      forgotten: forgotten || monitorAccuracy <= u.forgetAccuracy,
      seconds: (Date.now() - t0) / 1000,
    },
  };
}
