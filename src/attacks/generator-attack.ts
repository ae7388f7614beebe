// What the attacks with a trained trigger network share (ISSBA's steganographic encoder,
// Dynamic's generator and mask network): poison() first trains the network on the attacker's
// data (deterministic from the poisoning seed), then poisons with it as any data-poisoning attack
// does. The network's weights are the attack's artefacts: returned with the poisoned set, stored
// next to the checkpoint (attack.safetensors), and given back to createAttack() to rebuild the
// test-time trigger; the parameter `generatorSha256` records their digest.
import { tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { subset, splitIndices } from "../data/splits.js";
import type { ApplyTriggerOptions, AttackContext, AttackParams, ImageSpec, PoisonedTrainingSet } from "./attack.js";
import { artifactsDigest, type AttackArtifacts } from "./artifacts.js";
import { BaseAttack, type AttackInfo } from "./base.js";
import { checkDataset } from "./images.js";
import { AttackParamError, numberParam, stringParam, type ParamSpec, type ParamTable } from "./params.js";

export const GENERATOR_SHA256: ParamSpec = {
  type: "sha256",
  default: "",
  description: "SHA-256 of the trained network stored next to the checkpoint (attack.safetensors); set by poisoning",
};

/** Images per step of the networks' training. */
export const NETWORK_BATCH = 32;

/** The parameters of the network's training that ISSBA and Dynamic share (their digest included). */
export function networkTrainingParams(o: {
  count: number;
  minCount: number;
  steps: number;
  lr: number;
  what: string;
}): ParamTable {
  return {
    count: {
      type: "integer",
      default: o.count,
      min: o.minCount,
      description: `attacker images ${o.what} trains on (a seeded slice of the training set)`,
    },
    steps: {
      type: "integer",
      default: o.steps,
      min: 1,
      max: 1000000,
      description: `Adam steps of the training of ${o.what} (batch 32)`,
    },
    lr: { type: "number", default: o.lr, above: 0, max: 1, description: `Adam learning rate of ${o.what}` },
    generatorSha256: GENERATOR_SHA256,
  };
}

/** `count` images of `train` chosen with the seed (all when count >= N): the data an attacker trains its own networks on. */
export function attackerSlice(train: ImageDataset, count: number, seed: number): ImageDataset {
  if (count >= train.count) return train;
  return subset(train, splitIndices(train.count, { keep: count }, seed).keep ?? new Int32Array(0));
}

export interface TrainedNetwork {
  artifacts: AttackArtifacts;
  /** Measured while training (bit accuracy, residual size, ...), for the checkpoint's record. */
  details: Record<string, number>;
}

export abstract class GeneratorAttack extends BaseAttack {
  #weights: AttackArtifacts | null = null;

  constructor(info: AttackInfo, params: AttackParams, spec: ImageSpec, artifacts?: AttackArtifacts) {
    super(info, params, spec);
    if (artifacts) {
      const recorded = stringParam(params, "generatorSha256");
      const got = artifactsDigest(artifacts);
      if (recorded !== "" && recorded !== got) {
        throw new AttackParamError(
          `attack '${this.name}': the given network has SHA-256 ${got}, parameter 'generatorSha256' records ${recorded}`,
        );
      }
      this.checkArtifacts(artifacts);
      this.#weights = artifacts;
    }
  }

  /** The trained network, or null before poison() when none was given. */
  get artifacts(): AttackArtifacts | null {
    return this.#weights;
  }

  /** Throws when the artefacts do not fit the network (names, shapes). */
  protected abstract checkArtifacts(a: AttackArtifacts): void;

  /** Trains the network on `data` (a seeded slice of the training set), deterministic from `seed`. */
  protected abstract trainNetwork(data: ImageDataset, seed: number, ctx: AttackContext): Promise<TrainedNetwork>;

  /** The trigger on float [N, C, H, W] images in [0, 1], computed with the network `a`. */
  protected abstract triggerWith(a: AttackArtifacts, x: Tensor): Tensor;

  applyTrigger(x: Tensor, _opts?: ApplyTriggerOptions): Tensor {
    const w = this.#weights;
    if (!w) {
      throw new Error(
        `attack '${this.name}': its trigger comes from a network trained while poisoning; rebuild the attack from a checkpoint trained with it ` +
          "(evaluate-defense and `attack preview --checkpoint` read attack.safetensors there) or poison a training set first",
      );
    }
    const { channels: c, height: h, width: wd } = this.spec;
    const s = x.shape;
    if (s.length !== 4 || s[1] !== c || s[2] !== h || s[3] !== wd) {
      throw new RangeError(`attack '${this.name}': images must be [N, ${c}, ${h}, ${wd}], got [${s.join(", ")}]`);
    }
    return tidy(() => this.triggerWith(w, x).clamp(0, 1));
  }

  /** The attacker's training slice: `count` images of `train` chosen with the seed (all when count >= N). */
  protected attackerSlice(train: ImageDataset, seed: number): ImageDataset {
    return attackerSlice(train, numberParam(this.params, "count"), seed);
  }

  override async poison(train: ImageDataset, seed: number, ctx: AttackContext = {}): Promise<PoisonedTrainingSet> {
    if (!Number.isInteger(seed)) throw new RangeError(`attack '${this.name}': seed must be an integer, got ${seed}`);
    checkDataset(this.name, train, this.spec);
    this.checkContext(ctx);
    const net = await this.trainNetwork(this.attackerSlice(train, seed), seed, ctx);
    for (const [k, t] of net.artifacts) {
      if (!t.data.every(Number.isFinite))
        throw new Error(
          `attack '${this.name}': training its network diverged ('${k}' holds NaN or Infinity); lower 'lr'`,
        );
    }
    this.#weights = net.artifacts;
    const set = this.poisonSync(train, seed, ctx);
    return {
      ...set,
      params: { ...this.params, generatorSha256: artifactsDigest(net.artifacts) },
      artifacts: net.artifacts,
      details: net.details,
    };
  }
}
