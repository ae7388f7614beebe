// Trained models reused across runs (the demo and the benchmarks): one checkpoint directory per
// (dataset, model, attack and its parameters, epochs, seed) under ~/.cache/badexpert/models or
// $BADEXPERT_MODEL_CACHE. An entry counts only when its run finished (the ASR is recorded last);
// an entry whose run was killed after some epochs resumes from its last epoch.
// A model-tampering attack (FT, SRA, TrojanNN) is applied to the cached clean model of the same
// dataset, model, epochs and seed (trained first if missing), with the same seed.
import { homedir } from "node:os";
import { join } from "node:path";
import { readCheckpointMeta } from "../train/checkpoint.js";
import { hasTrainState } from "../train/resume.js";
import { recipeFor } from "../train/recipes.js";
import { attackInfo } from "../attacks/registry.js";
import { runTraining } from "./train.js";
import { runTampering } from "./tamper.js";

export function modelCacheDir(): string {
  return (
    process.env.BADEXPERT_MODEL_CACHE ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "badexpert", "models")
  );
}

export interface CachedModelSpec {
  dataset: string;
  /** Zoo model; default: the dataset recipe's. */
  model?: string;
  attack: string | null;
  attackParams?: Record<string, string | number | boolean>;
  epochs: number;
  seed: number;
  dataPath?: string;
  /** Clean checkpoint for attacks that craft poison against one (not part of the cache key). */
  cleanModel?: string;
}

export function cachedModelPath(s: CachedModelSpec): string {
  const model = s.model ?? recipeFor(s.dataset).model;
  const params = Object.entries(s.attackParams ?? {})
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(",");
  const attack = s.attack ? `-${s.attack}${params ? `-${params}` : ""}` : "-clean";
  return join(modelCacheDir(), `${s.dataset}-${model}${attack}-e${s.epochs}-seed${s.seed}`);
}

async function complete(dir: string, s: CachedModelSpec): Promise<boolean> {
  try {
    const meta = await readCheckpointMeta(dir);
    const history = meta.training.history;
    const done = Array.isArray(history) ? history.length : 0;
    return done >= s.epochs && (s.attack === null || meta.metrics.attackSuccessRate !== undefined);
  } catch {
    return false;
  }
}

/** The cached checkpoint directory, training it first when missing or incomplete (or when `retrain`). */
export async function cachedModel(
  s: CachedModelSpec,
  o: { retrain?: boolean; device?: string; log?: (l: string) => void } = {},
): Promise<{ dir: string; trained: boolean; seconds: number }> {
  const dir = cachedModelPath(s);
  if (!o.retrain && (await complete(dir, s))) return { dir, trained: false, seconds: 0 };
  if (s.attack && attackInfo(s.attack).kind === "model-tampering") {
    // `retrain` redoes the tampering, not the clean model under it.
    const clean = await cachedModel({ ...s, attack: null, attackParams: {} }, { ...o, retrain: false });
    const r = await runTampering({
      attack: s.attack,
      params: s.attackParams ?? {},
      checkpoint: clean.dir,
      out: dir,
      seed: s.seed,
      force: true,
      ...(o.device ? { device: o.device } : {}),
      ...(s.dataPath ? { dataPath: s.dataPath } : {}),
      ...(o.log ? { log: o.log } : {}),
    });
    return { dir, trained: true, seconds: clean.seconds + r.seconds };
  }
  const recipe = recipeFor(s.dataset);
  // A killed run left its last finished epoch and the optimizer state: continue it (same seed,
  // same poison) instead of starting over; a long CIFAR-10 model can then be trained over several runs.
  const resume = !o.retrain && (await hasTrainState(dir));
  const r = await runTraining({
    dataset: s.dataset,
    model: s.model ?? recipe.model,
    config: { ...recipe.config, epochs: s.epochs, seed: s.seed },
    out: dir,
    // The cache entry is missing, incomplete or being retrained: it is ours to replace.
    force: true,
    resume,
    ...(o.device ? { device: o.device } : {}),
    ...(s.dataPath ? { dataPath: s.dataPath } : {}),
    ...(s.attack ? { attack: { name: s.attack, params: s.attackParams ?? {} } } : {}),
    ...(s.cleanModel ? { cleanModel: s.cleanModel } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
  return { dir, trained: true, seconds: r.seconds };
}
