// The training loop: epochs over a DataLoader with an optimizer and a schedule, progress with
// ETA, evaluation after each epoch, and resumable state. Each step runs inside tidy, so memory
// stays flat however long the run.
import { F, tidy, manualSeed, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { SGD, Adam, AdamW, MultiStepLR, CosineAnnealingLR, OneCycleLR, type LRScheduler } from "../optim/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { Progress } from "../util/progress.js";
import { evaluateModel } from "./evaluate.js";
import { validateConfig, type TrainConfig } from "./config.js";

export type AnyOptimizer = SGD | Adam | AdamW;

export function makeOptimizer(model: Module, c: TrainConfig): AnyOptimizer {
  const params = model.parameters();
  switch (c.optimizer) {
    case "sgd":
      return new SGD(params, {
        lr: c.lr,
        momentum: c.momentum,
        nesterov: c.nesterov && c.momentum > 0,
        weightDecay: c.weightDecay,
      });
    case "adam":
      return new Adam(params, { lr: c.lr, weightDecay: c.weightDecay });
    case "adamw":
      return new AdamW(params, { lr: c.lr, weightDecay: c.weightDecay });
  }
}

/** Schedules step once per batch, so OneCycle and per-epoch schedules share one code path. */
export function makeSchedule(opt: AnyOptimizer, c: TrainConfig, batchesPerEpoch: number): LRScheduler | null {
  switch (c.schedule) {
    case "none":
      return null;
    case "multistep":
      return new MultiStepLR(
        opt,
        c.milestones.map((e) => e * batchesPerEpoch),
        c.gamma,
      );
    case "cosine":
      return new CosineAnnealingLR(opt, c.epochs * batchesPerEpoch);
    case "onecycle":
      return new OneCycleLR(opt, { maxLr: c.lr, totalSteps: c.epochs * batchesPerEpoch });
  }
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  trainAccuracy: number;
  testAccuracy?: number;
  /** Accuracy on the attack's triggered test set (FitOptions.attackTestSet): whether the backdoor is taking yet. */
  attackSuccessRate?: number;
  lr: number;
  seconds: number;
}

export interface FitOptions {
  /** Evaluated after each epoch when given. */
  testSet?: ImageDataset;
  /** A backdoor attack's triggered test set, labelled with its targets: evaluated after each epoch when given. */
  attackTestSet?: ImageDataset;
  normalization: { mean: readonly number[]; std: readonly number[] };
  /** Labels to train on instead of the dataset's own (poisoned or shifted). */
  labels?: Int32Array;
  device?: string;
  silent?: boolean;
  /**
   * Which model is being trained, at the head of each progress line ("B (backdoor expert)" →
   * "B (backdoor expert), epoch 1/1 ..."): a job that trains several models says which one runs.
   */
  progressLabel?: string;
  /** Called after every epoch (e.g. to write a resumable checkpoint); `true` ends training there. */
  onEpoch?: (
    record: EpochRecord,
    state: { optimizer: AnyOptimizer; schedule: LRScheduler | null },
  ) => Promise<void | boolean>;
  /**
   * Called after every optimizer step with the number of steps taken so far; it may change the
   * optimizer's rate for the next step, and `true` ends training at once (the epoch's record is
   * still returned). For procedures that stop on a signal of the model's own behaviour.
   */
  afterStep?: (step: number, optimizer: AnyOptimizer) => boolean;
  /** Resume: epochs already done and the optimizer/schedule state to continue from. */
  startEpoch?: number;
  restore?: (state: { optimizer: AnyOptimizer; schedule: LRScheduler | null }) => void;
}

function currentLr(opt: AnyOptimizer): number {
  return opt.paramGroups[0]?.lr ?? Number.NaN;
}

/**
 * One optimizer step; during the first `warmupSteps` steps at (step + 1) / warmupSteps of the
 * rate the schedule set, which is restored afterwards (the schedule owns the rate).
 */
function stepWithWarmup(optimizer: AnyOptimizer, step: number, warmupSteps: number): void {
  if (step >= warmupSteps) {
    optimizer.step();
    return;
  }
  const scheduled = optimizer.paramGroups.map((g) => g.lr);
  const factor = (step + 1) / warmupSteps;
  for (const g of optimizer.paramGroups) g.lr *= factor;
  try {
    optimizer.step();
  } finally {
    optimizer.paramGroups.forEach((g, i) => (g.lr = scheduled[i] as number));
  }
}

/** Trains `model` in place; returns one record per epoch run. */
export async function fit(
  model: Module,
  train: ImageDataset,
  config: TrainConfig,
  o: FitOptions,
): Promise<EpochRecord[]> {
  const c = validateConfig(config);
  const loader = new DataLoader(train, {
    batchSize: c.batchSize,
    shuffle: true,
    seed: c.seed,
    augment: c.augment,
    normalization: o.normalization,
    ...(o.labels ? { labels: o.labels } : {}),
  });
  const optimizer = makeOptimizer(model, c);
  const schedule = makeSchedule(optimizer, c, loader.numBatches);
  o.restore?.({ optimizer, schedule });
  const history: EpochRecord[] = [];
  const dev = o.device && o.device !== "cpu" ? o.device : null;
  let steps = 0;
  let stopped = false;
  const warmupSteps = Math.round((c.warmupEpochs ?? 0) * loader.numBatches);
  let globalStep = (o.startEpoch ?? 0) * loader.numBatches;
  try {
    for (let epoch = o.startEpoch ?? 0; epoch < c.epochs && !stopped; epoch++) {
      const t0 = Date.now();
      // Reseeding per epoch makes dropout masks a function of (seed, epoch), so a resumed run
      // continues exactly as an uninterrupted one would.
      manualSeed(c.seed * 1009 + epoch);
      model.train();
      loader.setEpoch(epoch);
      const epochText = `epoch ${epoch + 1}/${c.epochs}`;
      const bar = new Progress(o.progressLabel ? `${o.progressLabel}, ${epochText}` : epochText, train.count, {
        silent: o.silent ?? false,
      });
      let lossSum = 0;
      let correct = 0;
      let seen = 0;
      for (const b of loader) {
        const [loss, right] = tidy(() => {
          const x: Tensor = dev ? b.x.to({ device: dev }) : b.x;
          const y: Tensor = dev ? b.y.to({ device: dev }) : b.y;
          optimizer.zeroGrad();
          const logits = model.forward(x);
          const l = F.crossEntropy(logits, y, { labelSmoothing: c.labelSmoothing });
          l.backward();
          stepWithWarmup(optimizer, globalStep, warmupSteps);
          return [l.item(), logits.argmax(1).eq(y).sum().item()] as const;
        });
        schedule?.step();
        globalStep++;
        const n = b.indices.length;
        lossSum += loss * n;
        correct += right;
        seen += n;
        b.x.dispose();
        b.y.dispose();
        bar.tick(n, `loss ${(lossSum / seen).toFixed(4)} acc ${((100 * correct) / seen).toFixed(2)}%`);
        steps++;
        if (o.afterStep?.(steps, optimizer) === true) {
          stopped = true;
          break;
        }
        // Let timers, signals and I/O run between steps (a service may share this process).
        await new Promise((r) => setImmediate(r));
      }
      const record: EpochRecord = {
        epoch: epoch + 1,
        trainLoss: lossSum / Math.max(1, seen),
        trainAccuracy: correct / Math.max(1, seen),
        lr: currentLr(optimizer),
        seconds: 0,
      };
      const evalOptions = { normalization: o.normalization, ...(dev ? { device: dev } : {}) };
      if (o.testSet) record.testAccuracy = evaluateModel(model, o.testSet, evalOptions).accuracy;
      if (o.attackTestSet) record.attackSuccessRate = evaluateModel(model, o.attackTestSet, evalOptions).accuracy;
      record.seconds = (Date.now() - t0) / 1000;
      bar.finish(
        `loss ${record.trainLoss.toFixed(4)} train ${(100 * record.trainAccuracy).toFixed(2)}%` +
          (record.testAccuracy !== undefined ? ` test ${(100 * record.testAccuracy).toFixed(2)}%` : "") +
          (record.attackSuccessRate !== undefined ? ` ASR ${(100 * record.attackSuccessRate).toFixed(2)}%` : ""),
      );
      history.push(record);
      if ((await o.onEpoch?.(record, { optimizer, schedule })) === true) stopped = true;
    }
  } finally {
    optimizer.dispose();
  }
  return history;
}
