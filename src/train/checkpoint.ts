// Checkpoints: a directory with `model.safetensors` (the state dict, PyTorch key names) and
// `model.json` (everything needed to rebuild and use the model: architecture and its options,
// dataset, preprocessing, class names, how it was trained, measured metrics).
import { mkdir, readFile, writeFile, rename, access } from "node:fs/promises";
import { join } from "node:path";
import { dispose } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { modelForSpec, saveModelSource } from "../models/model-source.js";
import { loadTensors, saveTensors } from "../io/weights.js";

export const CHECKPOINT_FORMAT = "badexpert-checkpoint";
export const CHECKPOINT_VERSION = 1;

export interface ModelSpec {
  /** Zoo name, e.g. "resnet18". */
  name: string;
  numClasses: number;
  inChannels: number;
  imageSize: number;
}

export interface Preprocessing {
  /** Height and width the model takes. */
  imageSize: [number, number];
  channels: number;
  /** Per-channel mean/std in [0, 1] units, applied after scaling pixels to [0, 1]. */
  mean: number[];
  std: number[];
}

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  model: ModelSpec;
  dataset: { name: string; path?: string; trainCount?: number; testCount?: number };
  preprocessing: Preprocessing;
  classNames: string[];
  /** Free-form training record (hyperparameters, epochs, seed, attack, ...). */
  training: Record<string, unknown>;
  /** Measured figures (clean accuracy, attack success rate, ...). */
  metrics: Record<string, number>;
  createdAt: string;
}

export const MODEL_WEIGHTS = "model.safetensors";
export const MODEL_META = "model.json";

/** Writes the model's weights and metadata; the JSON goes last, so a crash never leaves a half checkpoint that looks complete. */
export async function saveCheckpoint(dir: string, model: Module, meta: Omit<CheckpointMeta, "format" | "version" | "createdAt">): Promise<CheckpointMeta> {
  await mkdir(dir, { recursive: true });
  const full: CheckpointMeta = { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, createdAt: new Date().toISOString(), ...meta };
  await saveTensors(join(dir, MODEL_WEIGHTS), model.stateDict(), { format: CHECKPOINT_FORMAT, model: meta.model.name });
  saveModelSource(dir, model, meta.model);
  const tmp = join(dir, `${MODEL_META}.tmp-${process.pid}`);
  await writeFile(tmp, `${JSON.stringify(full, null, 2)}\n`);
  await rename(tmp, join(dir, MODEL_META));
  return full;
}

export async function readCheckpointMeta(dir: string): Promise<CheckpointMeta> {
  const path = join(dir, MODEL_META);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new Error(`checkpoint: ${path} not found (a checkpoint directory holds ${MODEL_META} and ${MODEL_WEIGHTS})`);
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    throw new Error(`checkpoint: ${path} is not valid JSON: ${(e as Error).message}`);
  }
  return validateMeta(meta, path);
}

function validateMeta(x: unknown, path: string): CheckpointMeta {
  const m = x as Partial<CheckpointMeta> | null;
  if (!m || typeof m !== "object" || m.format !== CHECKPOINT_FORMAT) {
    throw new Error(`checkpoint: ${path}: "format" must be "${CHECKPOINT_FORMAT}"`);
  }
  if (m.version !== CHECKPOINT_VERSION) throw new Error(`checkpoint: ${path}: version ${String(m.version)} is not supported (expected ${CHECKPOINT_VERSION})`);
  const spec = m.model;
  if (!spec || typeof spec.name !== "string" || !Number.isInteger(spec.numClasses) || !Number.isInteger(spec.inChannels) || !Number.isInteger(spec.imageSize)) {
    throw new Error(`checkpoint: ${path}: "model" must give name, numClasses, inChannels and imageSize`);
  }
  const p = m.preprocessing;
  if (!p || !Array.isArray(p.mean) || !Array.isArray(p.std) || p.mean.length !== spec.inChannels || p.std.length !== spec.inChannels) {
    throw new Error(`checkpoint: ${path}: "preprocessing" must give mean and std with ${spec.inChannels} values each`);
  }
  if (!Array.isArray(m.classNames) || m.classNames.length !== spec.numClasses) {
    throw new Error(`checkpoint: ${path}: "classNames" must list ${spec.numClasses} names`);
  }
  return m as CheckpointMeta;
}

/** Rebuilds the model from the zoo and loads its weights (strict: every key must match). */
export async function loadCheckpoint(dir: string): Promise<{ model: Module; meta: CheckpointMeta }> {
  const meta = await readCheckpointMeta(dir);
  const weights = join(dir, MODEL_WEIGHTS);
  try {
    await access(weights);
  } catch {
    throw new Error(`checkpoint: ${weights} not found`);
  }
  const model = modelForSpec(meta.model, dir);
  const { tensors } = await loadTensors(weights);
  try {
    model.loadStateDict(tensors, { strict: true });
  } catch (e) {
    model.dispose();
    throw new Error(`checkpoint: ${weights} does not fit a ${meta.model.name}: ${(e as Error).message}`);
  } finally {
    dispose(tensors);
  }
  model.eval();
  return { model, meta };
}
