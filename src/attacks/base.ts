// The shared machinery of data-poisoning attacks: an attack chooses which samples to poison and
// cover (its plan) and how to alter them; this class copies the dataset, applies the alterations
// in batches, relabels, and builds the poisoned test set by the attack's targeting convention.
import type { Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { subset } from "../data/splits.js";
import { Rng } from "../util/rng.js";
import type {
  ApplyTriggerOptions,
  Attack,
  AttackContext,
  AttackKind,
  AttackParams,
  ImageSpec,
  PoisonedTestSet,
  PoisonedTrainingSet,
  Targeting,
} from "./attack.js";
import { AttackParamError, numberParam } from "./params.js";
import { DEFAULT_BATCH_SIZE, checkDataset, copyDataset, transformImages } from "./images.js";
import { candidates, choose, countFromRate, without } from "./sampling.js";

export interface AttackInfo {
  name: string;
  description: string;
  kind: AttackKind;
  targeting: Targeting;
  needsCleanModel?: boolean;
}

/** What an alteration of a batch of training images may use. */
export interface AlterStep {
  /** Dataset indices of the batch's rows. */
  rows: Int32Array;
  /** Derived from the poisoning seed; one stream for poison samples, another for covers. */
  rng: Rng;
  ctx: AttackContext;
  /** The original (unpoisoned) training set. */
  train: ImageDataset;
}

/** Which samples an attack alters, and the label each poisoned sample is trained with. */
export interface PoisonPlan {
  poison: Int32Array;
  cover: Int32Array;
  /** Label of a poisoned sample whose true label is y. */
  poisonLabel(y: number): number;
}

// Separate streams per purpose, so that e.g. changing how covers are drawn never changes the
// choice of poisoned samples for the same seed.
const PLAN_STREAM = 1;
const POISON_STREAM = 2;
const COVER_STREAM = 3;

export abstract class BaseAttack implements Attack {
  readonly name: string;
  readonly description: string;
  readonly kind: AttackKind;
  readonly targeting: Targeting;
  readonly needsCleanModel: boolean;
  readonly params: AttackParams;
  readonly spec: Readonly<ImageSpec>;

  constructor(info: AttackInfo, params: AttackParams, spec: ImageSpec) {
    this.name = info.name;
    this.description = info.description;
    this.kind = info.kind;
    this.targeting = info.targeting;
    this.needsCleanModel = info.needsCleanModel ?? false;
    this.params = Object.freeze({ ...params });
    this.spec = Object.freeze({ ...spec });
  }

  get targetClass(): number {
    return numberParam(this.params, "targetClass");
  }

  abstract applyTrigger(x: Tensor, opts?: ApplyTriggerOptions): Tensor;

  /** Chooses poison and cover samples (`rng` is derived from the poisoning seed). */
  protected abstract plan(train: ImageDataset, rng: Rng): PoisonPlan;

  /** Alters the poisoned samples' images (default: the test-time trigger). */
  protected poisonImages(x: Tensor, _step: AlterStep): Tensor {
    return this.applyTrigger(x);
  }

  /** Alters the cover samples' images; attacks with covers override it. */
  protected coverImages(_x: Tensor, _step: AlterStep): Tensor {
    throw new Error(`attack '${this.name}' has no cover samples`);
  }

  /** Throws a clear error before any work when the context lacks what poisoning needs. */
  protected checkContext(_ctx: AttackContext): void {}

  poison(train: ImageDataset, seed: number, ctx: AttackContext = {}): Promise<PoisonedTrainingSet> {
    // Done synchronously (the engine is synchronous); the Promise leaves room for attacks that
    // train generators and should yield to the event loop.
    try {
      return Promise.resolve(this.poisonSync(train, seed, ctx));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** poison() without the Promise (the tampering attacks poison their finetuning data with it). */
  protected poisonSync(train: ImageDataset, seed: number, ctx: AttackContext): PoisonedTrainingSet {
    if (!Number.isInteger(seed)) throw new RangeError(`attack '${this.name}': seed must be an integer, got ${seed}`);
    checkDataset(this.name, train, this.spec);
    this.checkContext(ctx);
    const plan = this.plan(train, Rng.derive(seed, PLAN_STREAM));
    const ds = copyDataset(train, `${train.name}+${this.name}`);
    const batchSize = ctx.batchSize ?? DEFAULT_BATCH_SIZE;
    const poisonRng = Rng.derive(seed, POISON_STREAM);
    transformImages(
      ds,
      plan.poison,
      (x, rows) => this.poisonImages(x, { rows, rng: poisonRng, ctx, train }),
      batchSize,
    );
    if (plan.cover.length > 0) {
      const coverRng = Rng.derive(seed, COVER_STREAM);
      transformImages(ds, plan.cover, (x, rows) => this.coverImages(x, { rows, rng: coverRng, ctx, train }), batchSize);
    }
    for (const i of plan.poison) ds.labels[i] = plan.poisonLabel(train.labels[i] as number);
    return {
      dataset: ds,
      poisonIndices: plan.poison,
      coverIndices: plan.cover,
      labels: ds.labels,
      trueLabels: Int32Array.from(train.labels),
    };
  }

  /** The `sourceClass` parameter of a source-specific attack, checked against the classes and the target. */
  protected checkedSourceClass(): number {
    const what = `attack '${this.name}'`;
    const src = numberParam(this.params, "sourceClass");
    const k = this.spec.numClasses;
    if (src >= k)
      throw new AttackParamError(`${what}: parameter 'sourceClass' must be a class in 0..${k - 1}, got ${src}`);
    if (src === this.targetClass)
      throw new AttackParamError(`${what}: parameter 'sourceClass' must differ from targetClass (${this.targetClass})`);
    return src;
  }

  /** Test images that count for the attack success rate (source-specific attacks: their `sourceClass` only). */
  protected testRows(test: ImageDataset): Int32Array {
    const t = this.targetClass;
    if (this.targeting === "source-specific") {
      const src = numberParam(this.params, "sourceClass");
      return candidates(test, (y) => y === src);
    }
    return this.targeting === "all-to-all" ? candidates(test, () => true) : candidates(test, (y) => y !== t);
  }

  /** The label that counts as success for a test image of true label y. */
  protected testTarget(y: number): number {
    return this.targeting === "all-to-all" ? (y + 1) % this.spec.numClasses : this.targetClass;
  }

  poisonedTestSet(test: ImageDataset, ctx: Pick<AttackContext, "batchSize"> = {}): PoisonedTestSet {
    checkDataset(this.name, test, this.spec);
    const rows = this.testRows(test);
    const ds = subset(test, rows, `${test.name}+${this.name}`);
    const all = Int32Array.from({ length: rows.length }, (_, k) => k);
    transformImages(ds, all, (x) => this.applyTrigger(x), ctx.batchSize ?? DEFAULT_BATCH_SIZE);
    const trueLabels = Int32Array.from(ds.labels);
    for (let k = 0; k < ds.count; k++) ds.labels[k] = this.testTarget(trueLabels[k] as number);
    return { dataset: ds, sourceIndices: rows, trueLabels, targetLabels: ds.labels };
  }

  // ---- plan helpers shared by the attacks ----

  /** Dirty-label all-to-one: round(rate·N) samples drawn from the classes other than the target. */
  protected choosePoisonOutsideTarget(train: ImageDataset, rate: number, rng: Rng): Int32Array {
    const t = this.targetClass;
    const pool = candidates(train, (y) => y !== t);
    const n = countFromRate(rate, train.count);
    return choose(
      pool,
      n,
      rng,
      () =>
        `attack '${this.name}': rate ${rate} asks for ${n} poisoned samples but only ${pool.length} training images are outside the target class ${t}`,
    );
  }

  /** Clean-label: round(rate·N) samples drawn from the target class. */
  protected choosePoisonInTarget(train: ImageDataset, rate: number, rng: Rng): Int32Array {
    const t = this.targetClass;
    const pool = candidates(train, (y) => y === t);
    const n = countFromRate(rate, train.count);
    return choose(
      pool,
      n,
      rng,
      () =>
        `attack '${this.name}': rate ${rate} asks for ${n} poisoned samples of the target class ${t}, but the training set has only ${pool.length}`,
    );
  }

  /**
   * All-to-one with cover samples: the `rate` parameter's share of the training set poisoned from
   * outside the target class, the `coverRate` parameter's share of the rest (any class) as covers.
   */
  protected planWithCovers(train: ImageDataset, rng: Rng): PoisonPlan {
    const t = this.targetClass;
    const poison = this.choosePoisonOutsideTarget(train, numberParam(this.params, "rate"), rng);
    const cover = this.chooseCovers(
      train,
      candidates(train, () => true),
      poison,
      numberParam(this.params, "coverRate"),
      rng,
    );
    return { poison, cover, poisonLabel: () => t };
  }

  /** Cover samples: round(coverRate·N) drawn from `pool` minus the poisoned ones. */
  protected chooseCovers(
    train: ImageDataset,
    pool: Int32Array,
    poison: Int32Array,
    coverRate: number,
    rng: Rng,
    from = "training images",
  ): Int32Array {
    const rest = without(pool, poison);
    const n = countFromRate(coverRate, train.count);
    return choose(
      rest,
      n,
      rng,
      () =>
        `attack '${this.name}': coverRate ${coverRate} asks for ${n} cover samples but only ${rest.length} ${from} are left after poisoning`,
    );
  }
}
