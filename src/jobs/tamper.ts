// The `attack apply` job: a clean checkpoint in, a backdoored one out, for the model-tampering
// attacks (FT, SRA, TrojanNN). The new checkpoint is a normal one (same model, preprocessing and
// dataset), written atomically; its training record keeps the clean model's and adds the attack
// (with the parameters after tampering: TrojanNN's optimised trigger) and where it came from, and
// its metrics are the tampered model's clean accuracy and attack success rate.
import type { ParamValue } from "../attacks/attack.js";
import { attackInfo, attackNames, createAttack } from "../attacks/registry.js";
import { isTamperingAttack } from "../attacks/tampering.js";
import { loadDataset } from "../data/registry.js";
import {
  CHECKPOINT_DIR,
  loadCheckpoint,
  readCheckpointMeta,
  saveCheckpoint,
  type CheckpointMeta,
} from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import { assertWritableDir } from "../util/atomic-dir.js";
import { testSplit } from "./defender-data.js";
import { attackSuccessRate } from "./train.js";
import { BadExpertError } from "../util/errors.js";

export interface TamperRunOptions {
  attack: string;
  params: Record<string, ParamValue>;
  /** The clean checkpoint directory. */
  checkpoint: string;
  out: string;
  /** Seeds the finetuning slice, its poisoned samples and TrojanNN's trigger start. */
  seed: number;
  /** Where the dataset lives (default: the path recorded in the checkpoint). */
  dataPath?: string;
  device?: string;
  /** Replace a non-empty --out. */
  force?: boolean;
  silent?: boolean;
  log?: (line: string) => void;
}

export interface TamperRunResult {
  checkpoint: string;
  meta: CheckpointMeta;
  cleanAccuracyBefore: number;
  cleanAccuracy: number;
  /** null where the trigger is only known after tampering (TrojanNN). */
  attackSuccessRateBefore: number | null;
  attackSuccessRate: number;
  poisonCount: number;
  details: Record<string, unknown>;
  seconds: number;
}

/** The attacks `attack apply` takes. */
export function tamperingAttackNames(): string[] {
  return attackNames().filter((n) => attackInfo(n).kind === "model-tampering");
}

export async function runTampering(o: TamperRunOptions): Promise<TamperRunResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  // Everything that can be refused is refused before the model and data are loaded.
  if (attackInfo(o.attack).kind !== "model-tampering") {
    throw new BadExpertError(
      "E_USAGE",
      `attack '${o.attack}' poisons training data: train with \`badexpert train --attack ${o.attack}\`; ` +
        `\`attack apply\` takes the model-tampering attacks: ${tamperingAttackNames().join(", ")}`,
    );
  }
  if (!Number.isInteger(o.seed) || o.seed < 0)
    throw new BadExpertError("E_USAGE", `attack apply: seed must be a non-negative integer, got ${o.seed}`);
  await assertWritableDir(o.out, {
    kinds: [CHECKPOINT_DIR],
    replace: o.force === true,
    forceHint: "--force",
    argument: "--out",
  });
  const meta0 = await readCheckpointMeta(o.checkpoint);
  const [h, w] = meta0.preprocessing.imageSize;
  const channels = meta0.preprocessing.channels;
  const spec = { numClasses: meta0.classNames.length, height: h, width: w, channels, dataset: meta0.dataset.name };
  const attack = createAttack(o.attack, o.params, spec);
  if (!isTamperingAttack(attack)) throw new Error(`attack '${o.attack}' has no tamper()`);
  const path = o.dataPath ?? meta0.dataset.path;
  const test = await testSplit(meta0.dataset.name, path, [h, w], channels);
  const train = attack.needsData
    ? await loadDataset(meta0.dataset.name, {
        split: "train",
        ...(path ? { path } : {}),
        imageSize: [h, w],
        channels: channels === 1 ? 1 : 3,
      })
    : undefined;
  const normalization = { mean: meta0.preprocessing.mean, std: meta0.preprocessing.std };
  const device = o.device ?? "cpu";
  const { model, meta } = await loadCheckpoint(o.checkpoint);
  const t0 = Date.now();
  try {
    if (device !== "cpu") model.to(device);
    const evalOpts = { normalization, ...(device !== "cpu" ? { device } : {}) };
    const caBefore = evaluateModel(model, test, evalOpts).accuracy;
    const asrBefore = attack.hasTrigger() ? attackSuccessRate(model, attack, test, normalization, device) : null;
    const r = await attack.tamper(
      {
        model,
        normalization,
        ...(train ? { data: train } : {}),
        ...(device !== "cpu" ? { device } : {}),
        silent: o.silent ?? true,
      },
      o.seed,
    );
    // The test-time attack as evaluate-defense will rebuild it from the record.
    const final = createAttack(o.attack, r.params, spec);
    const ca = evaluateModel(model, test, evalOpts).accuracy;
    const asr = attackSuccessRate(model, final, test, normalization, device);
    const seconds = (Date.now() - t0) / 1000;
    log(
      `${o.attack}: clean accuracy ${(100 * caBefore).toFixed(2)}% -> ${(100 * ca).toFixed(2)}%, attack success rate ${(100 * asr).toFixed(2)}% (${seconds.toFixed(1)} s)`,
    );
    const saved = await saveCheckpoint(
      o.out,
      model,
      {
        model: meta.model,
        dataset: meta.dataset,
        preprocessing: meta.preprocessing,
        classNames: meta.classNames,
        training: {
          ...meta.training,
          attack: { name: o.attack, params: r.params, seed: o.seed, poisonCount: r.poisonCount, coverCount: 0 },
          tampering: {
            from: o.checkpoint,
            fromWeightsSha256: meta.weightsSha256 ?? null,
            seconds,
            details: r.details,
            cleanAccuracyBefore: caBefore,
          },
        },
        metrics: { ...meta.metrics, cleanAccuracy: ca, attackSuccessRate: asr },
      },
      { replace: o.force === true, forceHint: "--force", argument: "--out" },
    );
    return {
      checkpoint: o.out,
      meta: saved,
      cleanAccuracyBefore: caBefore,
      cleanAccuracy: ca,
      attackSuccessRateBefore: asrBefore,
      attackSuccessRate: asr,
      poisonCount: r.poisonCount,
      details: r.details,
      seconds,
    };
  } finally {
    model.dispose();
  }
}
