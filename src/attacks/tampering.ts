// Model-tampering attacks (FT, SRA, TrojanNN): a trained clean model in, a backdoored one out.
// They share the Attack interface with the data-poisoning attacks for everything that happens at
// test time (the trigger, the poisoned test set), so evaluate-defense and the benches treat the
// tampered model like any backdoored one; instead of poison() they provide tamper(), which edits
// or finetunes the model in place. `badexpert attack apply` (src/jobs/tamper.ts) runs it.
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { subset, splitIndices } from "../data/splits.js";
import { DEFAULT_CONFIG, type TrainConfig } from "../train/config.js";
import { fit } from "../train/trainer.js";
import type { Rng } from "../util/rng.js";
import type {
  ApplyTriggerOptions,
  Attack,
  AttackContext,
  AttackParams,
  ImageSpec,
  ParamValue,
  PoisonedTrainingSet,
} from "./attack.js";
import { BaseAttack, type PoisonPlan } from "./base.js";
import { checkImages, pasteTrigger, type TriggerCanvas } from "./canvas.js";
import { numberParam, rateParam, type ParamTable } from "./params.js";

export interface TamperContext {
  /** The clean model; modified in place and left in eval mode. */
  model: Module;
  /** Per-channel mean/std in [0, 1] units the model expects its inputs normalised with. */
  normalization: { mean: readonly number[]; std: readonly number[] };
  /** Clean training images the attacker holds (FT and TrojanNN finetune on a slice; SRA needs none). */
  data?: ImageDataset;
  device?: string;
  /** No progress bars while finetuning. */
  silent?: boolean;
}

export interface TamperResult {
  /** The attack's parameters after tampering (TrojanNN adds its optimised trigger): the test-time attack is built from these. */
  params: Record<string, ParamValue>;
  /** Finetuning samples that carried the trigger (0 for SRA). */
  poisonCount: number;
  /** What was chosen or replaced (channels, neurons), for the checkpoint's record. */
  details: Record<string, unknown>;
}

export interface TamperingAttack extends Attack {
  /** Whether tamper() needs ctx.data. */
  readonly needsData: boolean;
  /** Whether the test-time trigger is known before tampering (TrojanNN optimises its own). */
  hasTrigger(): boolean;
  tamper(ctx: TamperContext, seed: number): Promise<TamperResult>;
}

export function isTamperingAttack(a: Attack): a is TamperingAttack {
  return typeof (a as Partial<TamperingAttack>).tamper === "function";
}

/** The finetuning parameters FT and TrojanNN share (the attacker's small clean set, part of it triggered). */
export function finetuneParams(o: { rate: number; count: number; epochs: number; lr: number }): ParamTable {
  return {
    rate: rateParam(o.rate, "fraction of the finetuning set triggered and relabelled to the target"),
    count: {
      type: "integer",
      default: o.count,
      min: 1,
      description: "clean training images the attacker finetunes on (a seeded slice of the training set)",
    },
    epochs: { type: "integer", default: o.epochs, min: 1, max: 1000, description: "finetuning epochs" },
    lr: {
      type: "number",
      default: o.lr,
      above: 0,
      max: 10,
      description: "finetuning learning rate (SGD, momentum 0.9)",
    },
  };
}

/**
 * What the tampering attacks share: a fixed trigger under a mask at test time (null until known:
 * TrojanNN optimises its own), dirty-label all-to-one test convention, no poison().
 */
export abstract class TamperingBase extends BaseAttack implements TamperingAttack {
  abstract readonly needsData: boolean;
  protected canvas: TriggerCanvas | null = null;

  /** Every tampering attack is all-to-one (the poisoned test set excludes the target class). */
  constructor(name: string, description: string, params: AttackParams, spec: ImageSpec) {
    super({ name, description, kind: "model-tampering", targeting: "all-to-one" }, params, spec);
  }

  abstract tamper(ctx: TamperContext, seed: number): Promise<TamperResult>;

  hasTrigger(): boolean {
    return this.canvas !== null;
  }

  /** The test-time trigger's canvas (throws when the attack does not know it yet). */
  triggerCanvas(): TriggerCanvas {
    if (!this.canvas) throw new Error(this.missingTrigger());
    return this.canvas;
  }

  /** The message when the trigger is not known (only TrojanNN, before tampering, lacks one). */
  protected missingTrigger(): string {
    return `attack '${this.name}' has no trigger`;
  }

  applyTrigger(x: Tensor, _opts?: ApplyTriggerOptions): Tensor {
    const canvas = this.triggerCanvas();
    checkImages(`attack '${this.name}'`, x, canvas);
    return pasteTrigger(x, canvas);
  }

  override poison(_train: ImageDataset, _seed: number, _ctx?: AttackContext): Promise<PoisonedTrainingSet> {
    return Promise.reject(
      new Error(
        `attack '${this.name}' tampers with a trained model rather than poisoning a training set: ` +
          `use \`badexpert attack apply --attack ${this.name} --checkpoint CLEAN --out DIR\``,
      ),
    );
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    const t = this.targetClass;
    return {
      poison: this.choosePoisonOutsideTarget(train, numberParam(this.params, "rate"), rng),
      cover: new Int32Array(0),
      poisonLabel: () => t,
    };
  }

  protected requireData(ctx: TamperContext): ImageDataset {
    if (!ctx.data)
      throw new Error(
        `attack '${this.name}' finetunes on clean training images: pass ctx.data (the training set, of which it uses a slice)`,
      );
    return ctx.data;
  }

  /**
   * Finetunes ctx.model (SGD, momentum 0.9, no schedule, no augmentation) on a seeded slice of
   * `count` training images of which `rate` carry the trigger and the target label. Returns the
   * number of triggered samples.
   */
  protected async finetuneOnPoison(ctx: TamperContext, seed: number): Promise<number> {
    const data = this.requireData(ctx);
    const p = (n: string) => numberParam(this.params, n);
    const count = p("count");
    if (count > data.count)
      throw new RangeError(
        `attack '${this.name}': parameter 'count' asks for ${count} finetuning images, the training set has ${data.count}`,
      );
    const slice =
      count < data.count
        ? subset(data, splitIndices(data.count, { keep: count }, seed).keep ?? new Int32Array(0))
        : data;
    const poisoned = this.poisonSync(slice, seed, {});
    const config: TrainConfig = {
      ...DEFAULT_CONFIG,
      epochs: p("epochs"),
      lr: p("lr"),
      batchSize: 128,
      optimizer: "sgd",
      momentum: 0.9,
      nesterov: false,
      weightDecay: 0,
      schedule: "none",
      seed,
      augment: {},
      milestones: [],
    };
    await fit(ctx.model, poisoned.dataset, config, {
      normalization: ctx.normalization,
      silent: ctx.silent ?? true,
      ...(ctx.device ? { device: ctx.device } : {}),
    });
    ctx.model.eval();
    return poisoned.poisonIndices.length;
  }
}

/** Editable CPU float32 copies of a model's state tensors, written back together by commit(). */
export class WeightEditor {
  readonly #model: Module;
  readonly #edits = new Map<string, { data: Float32Array; shape: number[] }>();

  constructor(model: Module) {
    this.#model = model;
  }

  has(key: string): boolean {
    return this.#model.stateDict().has(key);
  }

  /** The tensor's values (row-major) and shape; later edits to `data` are kept for commit(). */
  get(key: string): { data: Float32Array; shape: number[] } {
    const e = this.#edits.get(key);
    if (e) return e;
    const t = this.#model.stateDict().get(key);
    if (!t) throw new Error(`WeightEditor: the model has no state tensor '${key}'`);
    const data = tidy(() => Float32Array.from(t.to({ device: "cpu", dtype: "float32" }).data() as Float32Array));
    const out = { data, shape: [...t.shape] };
    this.#edits.set(key, out);
    return out;
  }

  /** Copies every edited tensor back into the model (dtype and device as they were). */
  commit(): void {
    const sd = new Map<string, Tensor>();
    try {
      for (const [k, e] of this.#edits) sd.set(k, tensor(e.data, { shape: e.shape }));
      this.#model.loadStateDict(sd, { strict: false });
    } finally {
      for (const t of sd.values()) t.dispose();
    }
    this.#edits.clear();
  }
}

/** Index of the smallest value (the first on ties). */
export function argmin(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if ((values[i] as number) < (values[best] as number)) best = i;
  return best;
}

/**
 * Sum of |w| per index along `axis` of a row-major tensor: axis 0 gives one value per output
 * unit, axis 1 one per input unit (over all other dimensions).
 */
export function absSums(w: { data: Float32Array; shape: number[] }, axis: 0 | 1): number[] {
  const [o, i] = w.shape as [number, number];
  const inner = w.data.length / (o * i);
  const out = new Array<number>(axis === 0 ? o : i).fill(0);
  for (let a = 0; a < o; a++) {
    for (let b = 0; b < i; b++) {
      let s = 0;
      for (let k = 0; k < inner; k++) s += Math.abs(w.data[(a * i + b) * inner + k] as number);
      out[axis === 0 ? a : b] = (out[axis === 0 ? a : b] as number) + s;
    }
  }
  return out;
}
