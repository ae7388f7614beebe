// Resumable training state next to a checkpoint: `train-state.safetensors` holds the optimizer's
// tensors (moment buffers) under `state.<param>.<name>`; `train-state.json` holds the epoch,
// step counts, group hyperparameters, the schedule and the run's configuration.
import { writeFile, rename, access } from "node:fs/promises";
import { join } from "node:path";
import { dispose, tidy, type Tensor } from "../engine/index.js";
import { SGD, type LRSchedulerState, type SavedParamGroup, type SgdHyper, type AdamHyper } from "../optim/index.js";
import { loadTensors, saveTensors } from "../io/weights.js";
import { readRegularTextFile } from "../util/read-regular-file.js";
import type { TrainConfig } from "./config.js";
import type { AnyOptimizer, EpochRecord } from "./trainer.js";

export const STATE_WEIGHTS = "train-state.safetensors";
export const STATE_META = "train-state.json";
/** train-state.json holds the configuration, the history and per-parameter counters: kilobytes, never this much. */
const MAX_STATE_META_BYTES = 64 * 1024 * 1024;

interface SavedState {
  epochsDone: number;
  config: TrainConfig;
  history: EpochRecord[];
  numbers: Record<string, Record<string, number>>;
  paramGroups: unknown[];
  schedule: LRSchedulerState | null;
}

export async function saveTrainState(
  dir: string,
  s: {
    epochsDone: number;
    config: TrainConfig;
    history: EpochRecord[];
    optimizer: AnyOptimizer;
    schedule: { stateDict(): LRSchedulerState } | null;
  },
): Promise<void> {
  const tensors = new Map<string, Tensor>();
  const numbers: Record<string, Record<string, number>> = {};
  // stateDict() hands out copies: collect them inside tidy and write before the scope frees them.
  const sd = tidy(() => s.optimizer.stateDict());
  try {
    for (const [idx, entry] of Object.entries(sd.state)) {
      for (const [name, v] of Object.entries(entry)) {
        if (typeof v === "number") (numbers[idx] ??= {})[name] = v;
        else tensors.set(`state.${idx}.${name}`, v);
      }
    }
    await saveTensors(join(dir, STATE_WEIGHTS), tensors);
  } finally {
    dispose(sd);
  }
  const saved: SavedState = {
    epochsDone: s.epochsDone,
    config: s.config,
    history: s.history,
    numbers,
    paramGroups: sd.paramGroups,
    schedule: s.schedule?.stateDict() ?? null,
  };
  const tmp = join(dir, `${STATE_META}.tmp-${process.pid}`);
  await writeFile(tmp, `${JSON.stringify(saved, null, 2)}\n`);
  await rename(tmp, join(dir, STATE_META));
}

export interface LoadedTrainState {
  epochsDone: number;
  config: TrainConfig;
  history: EpochRecord[];
  /** Applies the saved optimizer and schedule state (call from FitOptions.restore). */
  restore(state: { optimizer: AnyOptimizer; schedule: { loadStateDict(s: LRSchedulerState): void } | null }): void;
}

export async function hasTrainState(dir: string): Promise<boolean> {
  try {
    await access(join(dir, STATE_META));
    await access(join(dir, STATE_WEIGHTS));
    return true;
  } catch {
    return false;
  }
}

/** Reads the saved state; the returned object owns the loaded tensors until restore() or dispose(). */
export async function loadTrainState(dir: string): Promise<LoadedTrainState & { dispose(): void }> {
  const path = join(dir, STATE_META);
  let text: string;
  try {
    text = await readRegularTextFile(path, { maxBytes: MAX_STATE_META_BYTES, what: "training state file" });
  } catch (e) {
    throw new Error(`resume: ${(e as Error).message}`, { cause: e });
  }
  let saved: SavedState;
  try {
    saved = JSON.parse(text) as SavedState;
  } catch (e) {
    throw new Error(`resume: ${path} is not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof saved !== "object" || saved === null || !Number.isInteger(saved.epochsDone) || !saved.config)
    throw new Error(`resume: ${path} is not a training state file`);
  const { tensors } = await loadTensors(join(dir, STATE_WEIGHTS));
  const state: Record<number, Record<string, Tensor | number>> = {};
  for (const [idx, entry] of Object.entries(saved.numbers)) Object.assign((state[Number(idx)] ??= {}), entry);
  for (const [key, t] of tensors) {
    const m = /^state\.(\d+)\.(.+)$/.exec(key);
    if (!m) throw new Error(`resume: unexpected tensor "${key}" in ${join(dir, STATE_WEIGHTS)}`);
    (state[Number(m[1])] ??= {})[m[2] as string] = t;
  }
  return {
    epochsDone: saved.epochsDone,
    config: saved.config,
    history: saved.history ?? [],
    restore: ({ optimizer, schedule }) => {
      try {
        // The JSON was written by the same optimizer kind; loadStateDict validates groups and shapes.
        if (optimizer instanceof SGD)
          optimizer.loadStateDict({ state, paramGroups: saved.paramGroups as SavedParamGroup<SgdHyper>[] });
        else optimizer.loadStateDict({ state, paramGroups: saved.paramGroups as SavedParamGroup<AdamHyper>[] });
        if (schedule && saved.schedule) schedule.loadStateDict(saved.schedule);
      } finally {
        dispose(tensors);
      }
    },
    dispose: () => dispose(tensors),
  };
}
