// What every backdoor attack provides: poisoning a training set (deterministic from a seed), the
// test-time trigger on a batch of images, and the poisoned test set whose accuracy is the attack
// success rate. Attacks hold no tensors between calls, so creating one needs no dispose().
import type { Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Rng } from "../util/rng.js";
import type { AttackArtifacts } from "./artifacts.js";

/** A parameter value as it appears in JSON next to a checkpoint. */
export type ParamValue = number | string | boolean;

/** Resolved parameters: the reference defaults with the caller's overrides applied. */
export type AttackParams = Readonly<Record<string, ParamValue>>;

/** The attack families of the reference table (docs/attacks.md). */
export type AttackKind =
  | "dirty-label"
  | "clean-label"
  | "warping"
  | "quantization"
  | "adaptive"
  | "all-to-all"
  | "source-specific"
  | "model-tampering"
  | "sample-specific";

/**
 * Which test images count towards the attack success rate and which label counts as success:
 * all-to-one (every image not already of the target class → the target), all-to-all
 * (every image, y → (y + 1) mod C), source-specific (only the source class → the target).
 */
export type Targeting = "all-to-one" | "all-to-all" | "source-specific";

/** The images an attack is built for: triggers and masks are generated at this size. */
export interface ImageSpec {
  numClasses: number;
  height: number;
  width: number;
  channels: number;
  /** Dataset name, for dataset-specific defaults (GTSRB: target class 2, BadNet rate 0.01). */
  dataset?: string;
}

/** What poisoning may need besides the data (only Clean-Label needs a model). */
export interface AttackContext {
  /** A clean model of the victim's architecture, for attacks that craft perturbations against one. */
  cleanModel?: Module;
  /** Per-channel mean/std in [0, 1] units that `cleanModel` expects its inputs normalised with. */
  normalization?: { mean: readonly number[]; std: readonly number[] };
  /** Device the clean model lives on (default cpu). */
  device?: string;
  /** Images per batch when triggers are applied (default 256). */
  batchSize?: number;
  /**
   * Progress of long poisoning work (Sleeper Agent's crafting, the trigger networks' training),
   * one line at a time; the train job routes it to its log. Nothing is reported without it.
   */
  log?: (line: string) => void;
}

export interface PoisonedTrainingSet {
  /**
   * A copy of the training set with triggers applied to the poison and cover samples. Its
   * `labels` are the poisoned labels (the same array as `labels`), so it trains the backdoor as is.
   */
  dataset: ImageDataset;
  /**
   * Samples that carry the trigger and teach the backdoor: relabelled to the target (dirty label)
   * or target-class samples keeping their label (clean label). Sorted.
   */
  poisonIndices: Int32Array;
  /** Samples that carry a (possibly weakened) trigger but keep their true label. Sorted. */
  coverIndices: Int32Array;
  /** Training labels after poisoning. */
  labels: Int32Array;
  /** The labels before poisoning. */
  trueLabels: Int32Array;
  /**
   * Attacks that train a trigger network while poisoning (ISSBA, Dynamic): their parameters
   * afterwards (with the network's digest, to be recorded instead of `attack.params`), the network
   * (to be stored next to the checkpoint) and what was measured while training it.
   */
  params?: AttackParams;
  artifacts?: AttackArtifacts;
  details?: Record<string, number>;
}

export interface PoisonedTestSet {
  /**
   * Triggered copies of the test images that count for the attack success rate; its `labels`
   * are the labels the attacker wants (the same array as `targetLabels`), so a model's
   * accuracy on it is the attack success rate.
   */
  dataset: ImageDataset;
  /** Index of each row in the original test set. */
  sourceIndices: Int32Array;
  /** True label of each row. */
  trueLabels: Int32Array;
  /** Label that counts as a successful attack for each row. */
  targetLabels: Int32Array;
}

export interface ApplyTriggerOptions {
  /** For attacks whose test-time trigger is random; every attack here is deterministic and ignores it. */
  rng?: Rng;
}

export interface Attack {
  readonly name: string;
  readonly description: string;
  readonly kind: AttackKind;
  readonly targeting: Targeting;
  /** Resolved parameters (defaults + overrides), to be written next to checkpoints. */
  readonly params: AttackParams;
  readonly spec: Readonly<ImageSpec>;
  /** Whether poison() needs `ctx.cleanModel`. */
  readonly needsCleanModel: boolean;
  /**
   * Poisons a copy of `train` (never modifies it). The same seed gives the same result; the
   * trigger pattern itself depends only on the parameters, so training and test triggers match.
   */
  poison(train: ImageDataset, seed: number, ctx?: AttackContext): Promise<PoisonedTrainingSet>;
  /** The test-time trigger on float [N, C, H, W] images in [0, 1]; returns a new tensor in [0, 1]. */
  applyTrigger(x: Tensor, opts?: ApplyTriggerOptions): Tensor;
  /** Triggered copies of the test images that count for the attack success rate (see Targeting). */
  poisonedTestSet(test: ImageDataset, ctx?: Pick<AttackContext, "batchSize">): PoisonedTestSet;
}
