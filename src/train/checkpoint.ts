// Checkpoints: a directory with `model.safetensors` (the state dict, PyTorch key names) and
// `model.json` (everything needed to rebuild and use the model: architecture and its options,
// dataset, preprocessing, class names, how it was trained, measured metrics, the weights' SHA-256).
// The directory is written whole into a temporary sibling and renamed into place, and model.json
// is validated field by field on load: model files are untrusted input.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { dispose } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { modelForSpec, saveModelSource, TORCHSCRIPT_FILE } from "../models/model-source.js";
import { saveTensors, tensorsFromFile } from "../io/weights.js";
import { parseSafetensors, readSafetensorsBytes, sha256Hex } from "../io/safetensors.js";
import { FieldReader } from "../util/fields.js";
import { writeDirAtomically, type OwnedDirKind } from "../util/atomic-dir.js";
import { escapeControls } from "../util/printable.js";
import { FileReadError, readRegularTextFile } from "../util/read-regular-file.js";
import type { TrainConfig } from "./config.js";
import type { EpochRecord } from "./trainer.js";
import { STATE_META, STATE_WEIGHTS } from "./resume.js";
import { readClassNames, readModelSpec, readPreprocessing, type ModelSpec, type Preprocessing } from "./spec.js";
import { BadExpertError, codeOr } from "../util/errors.js";

export type { ModelSpec, Preprocessing } from "./spec.js";

export const CHECKPOINT_FORMAT = "badexpert-checkpoint";
export const CHECKPOINT_VERSION = 1;

/** model.json is a few kilobytes (tens with a long training history); a larger one is not ours. */
const MAX_META_BYTES = 16 * 1024 * 1024;

/** Our own weight files have headers of a few kilobytes; anything near this is corrupt or hostile. */
export const WEIGHTS_MAX_HEADER_BYTES = 16 * 1024 * 1024;

/** The backdoor a model was trained with (attack parameters are plain values). */
export interface AttackRecord {
  name: string;
  params: Record<string, number | string | boolean>;
  seed?: number;
  poisonCount?: number;
  coverCount?: number;
  cleanModel?: string;
}

/** How a model was trained: the run's configuration plus what happened. Fields a test or an older run left out are absent. */
export interface TrainingRecord extends Partial<TrainConfig> {
  trainCount?: number;
  device?: string;
  attack?: AttackRecord | null;
  history?: EpochRecord[];
  seconds?: number;
  /** Set by `badexpert attack apply`: the clean checkpoint a model-tampering attack started from, and what it changed. */
  tampering?: Record<string, unknown>;
  /** Set by `badexpert import`: where the model came from (state_dict file or TorchScript file). */
  imported?: Record<string, unknown>;
}

export interface CheckpointMeta {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  model: ModelSpec;
  dataset: { name: string; path?: string; trainCount?: number; testCount?: number };
  preprocessing: Preprocessing;
  classNames: string[];
  training: TrainingRecord;
  /** Measured figures (clean accuracy, attack success rate, ...); NaN where not measured. */
  metrics: Record<string, number>;
  createdAt: string;
  /** SHA-256 of model.safetensors (absent in checkpoints written before it was recorded). */
  weightsSha256?: string;
  /** SHA-256 of the TorchScript program of an imported model ("torchscript" spec): it defines the computation. */
  programSha256?: string;
}

export const MODEL_WEIGHTS = "model.safetensors";
export const MODEL_META = "model.json";
/** The weights of a network an attack trained while poisoning (attacks/artifacts.ts), stored with the checkpoint. */
export const CHECKPOINT_ATTACK_FILE = "attack.safetensors";

/** A checkpoint directory as our writers make it: what `--force` may replace. */
export const CHECKPOINT_DIR: OwnedDirKind = {
  what: "badexpert checkpoint",
  manifest: MODEL_META,
  files: [MODEL_META, MODEL_WEIGHTS, TORCHSCRIPT_FILE, STATE_META, STATE_WEIGHTS, CHECKPOINT_ATTACK_FILE],
  recognise: (m) => typeof m === "object" && m !== null && (m as { format?: unknown }).format === CHECKPOINT_FORMAT,
};

export interface SaveCheckpointOptions {
  /** Replace an existing non-empty directory when it is a checkpoint of ours (a run's own checkpoint, or --force). */
  replace?: boolean;
  /** Writes more files (e.g. the training state) into the new directory before it is renamed into place. */
  also?: (dir: string) => Promise<void>;
  /** Files kept from the directory being replaced (e.g. the training state). */
  carry?: readonly string[];
  /** How the user allows replacing, for the refusal message (e.g. "--force"). */
  forceHint?: string;
  /** The option that named the directory, for messages (e.g. "--out"). */
  argument?: string;
}

/** Writes the checkpoint directory atomically: the old one (if replaced) stays whole until the new one is complete. */
export async function saveCheckpoint(
  dir: string,
  model: Module,
  meta: Omit<CheckpointMeta, "format" | "version" | "createdAt" | "weightsSha256" | "programSha256">,
  o: SaveCheckpointOptions = {},
): Promise<CheckpointMeta> {
  let full: CheckpointMeta | undefined;
  await writeDirAtomically(
    dir,
    async (tmp) => {
      const written = await saveTensors(join(tmp, MODEL_WEIGHTS), model.stateDict(), {
        format: CHECKPOINT_FORMAT,
        model: meta.model.name,
      });
      const program = saveModelSource(tmp, model, meta.model);
      full = {
        format: CHECKPOINT_FORMAT,
        version: CHECKPOINT_VERSION,
        createdAt: new Date().toISOString(),
        ...meta,
        weightsSha256: written.sha256,
        ...(program ? { programSha256: program.sha256 } : {}),
      };
      await writeFile(join(tmp, MODEL_META), `${JSON.stringify(full, null, 2)}\n`);
      await o.also?.(tmp);
    },
    {
      kinds: [CHECKPOINT_DIR],
      ...(o.replace !== undefined ? { replace: o.replace } : {}),
      ...(o.carry ? { carry: o.carry } : {}),
      ...(o.forceHint ? { forceHint: o.forceHint } : {}),
      ...(o.argument ? { argument: o.argument } : {}),
    },
  );
  if (!full) throw new Error(`checkpoint: ${dir} was not written`);
  return full;
}

export async function readCheckpointMeta(dir: string): Promise<CheckpointMeta> {
  const path = join(dir, MODEL_META);
  let text: string;
  try {
    text = await readRegularTextFile(path, { maxBytes: MAX_META_BYTES, what: "checkpoint metadata file" });
  } catch (e) {
    const code = e instanceof FileReadError ? e.reason : (e as NodeJS.ErrnoException).code;
    throw new BadExpertError(
      "E_IO",
      code === "ENOENT"
        ? `checkpoint: ${path} not found (a checkpoint directory holds ${MODEL_META} and ${MODEL_WEIGHTS})`
        : `checkpoint: ${e instanceof FileReadError ? e.message : `${path}: cannot read (${code ?? (e as Error).message})`}`,
      { cause: e },
    );
  }
  let meta: unknown;
  try {
    meta = JSON.parse(text);
  } catch (e) {
    throw new BadExpertError(
      "E_MODEL_FORMAT",
      `checkpoint: ${path} is not valid JSON: ${escapeControls((e as Error).message)}`,
      { cause: e },
    );
  }
  return validateCheckpointMeta(meta, path);
}

/** A recorded attack: null, or {name, params of plain values, counts}. */
export function readAttackRecord(r: FieldReader, v: unknown, path: string): AttackRecord | null {
  if (v === null) return null;
  const o = r.object(v, path);
  const params: Record<string, number | string | boolean> = {};
  for (const [k, p] of Object.entries(r.object(o.params, `${path}.params`))) {
    if (typeof p !== "number" && typeof p !== "string" && typeof p !== "boolean")
      r.fail(`${path}.params.${k}`, "a number, string or boolean", p);
    Object.defineProperty(params, k, { value: p, enumerable: true, writable: true, configurable: true });
  }
  const int = (x: unknown, name: string) =>
    r.optional(x, (y) => r.number(y, `${path}.${name}`, { integer: true, min: 0 }));
  const seed = int(o.seed, "seed");
  const poisonCount = int(o.poisonCount, "poisonCount");
  const coverCount = int(o.coverCount, "coverCount");
  const cleanModel = r.optional(o.cleanModel, (x) => r.string(x, `${path}.cleanModel`));
  return {
    name: r.string(o.name, `${path}.name`, { maxLength: 200 }),
    params,
    ...(seed !== undefined ? { seed } : {}),
    ...(poisonCount !== undefined ? { poisonCount } : {}),
    ...(coverCount !== undefined ? { coverCount } : {}),
    ...(cleanModel !== undefined ? { cleanModel } : {}),
  };
}

function readEpoch(r: FieldReader, v: unknown, path: string): EpochRecord {
  const e = r.object(v, path);
  const n = (name: string) => (e[name] === null ? Number.NaN : r.number(e[name], `${path}.${name}`));
  const testAccuracy = e.testAccuracy === undefined ? undefined : n("testAccuracy");
  const attackSuccessRate = e.attackSuccessRate === undefined ? undefined : n("attackSuccessRate");
  return {
    epoch: r.number(e.epoch, `${path}.epoch`, { integer: true, min: 1 }),
    trainLoss: n("trainLoss"),
    trainAccuracy: n("trainAccuracy"),
    ...(testAccuracy !== undefined ? { testAccuracy } : {}),
    ...(attackSuccessRate !== undefined ? { attackSuccessRate } : {}),
    lr: n("lr"),
    seconds: n("seconds"),
  };
}

function readTraining(r: FieldReader, v: unknown): TrainingRecord {
  const o = r.object(v, "training");
  const int = (name: string) => r.optional(o[name], (x) => r.number(x, `training.${name}`, { integer: true, min: 0 }));
  int("epochs");
  int("seed");
  int("trainCount");
  r.optional(o.device, (x) => r.string(x, "training.device"));
  r.optional(o.seconds, (x) => r.number(x, "training.seconds", { min: 0 }));
  const attack = r.optional(o.attack, (x) => readAttackRecord(r, x, "training.attack"));
  const history = r.optional(o.history, (x) =>
    r.array(x, "training.history").map((e, i) => readEpoch(r, e, `training.history[${i}]`)),
  );
  // The remaining fields are the run's configuration, read by people and by --resume from
  // train-state.json (which validates it), not used to rebuild the model.
  return {
    ...(o as TrainingRecord),
    ...(attack !== undefined ? { attack } : {}),
    ...(history !== undefined ? { history } : {}),
  };
}

/** Checks every field a checkpoint's users read; the message names the file and the field. */
export function validateCheckpointMeta(x: unknown, path: string): CheckpointMeta {
  const r = new FieldReader(`checkpoint: ${path}`, "E_MODEL_FORMAT");
  const m = r.object(x, "(top level)");
  if (m.format !== CHECKPOINT_FORMAT) r.fail("format", `"${CHECKPOINT_FORMAT}"`, m.format);
  if (m.version !== CHECKPOINT_VERSION)
    r.fail("version", `${CHECKPOINT_VERSION} (the version this badexpert reads)`, m.version);
  const model = readModelSpec(r, m.model, "model");
  const d = r.object(m.dataset, "dataset");
  const path_ = r.optional(d.path, (v) => r.string(v, "dataset.path"));
  const trainCount = r.optional(d.trainCount, (v) => r.number(v, "dataset.trainCount", { integer: true, min: 1 }));
  const testCount = r.optional(d.testCount, (v) => r.number(v, "dataset.testCount", { integer: true, min: 1 }));
  const metrics: Record<string, number> = {};
  for (const [k, v] of Object.entries(r.object(m.metrics, "metrics"))) {
    // JSON has no NaN: a metric not measured (NaN) was written as null.
    const value = v === null ? Number.NaN : r.number(v, `metrics.${k}`);
    Object.defineProperty(metrics, k, { value, enumerable: true, writable: true, configurable: true });
  }
  const hash = (field: "weightsSha256" | "programSha256"): string | undefined => {
    const h = r.optional(m[field], (v) => r.string(v, field));
    if (h !== undefined && !/^[0-9a-f]{64}$/.test(h)) r.fail(field, "64 lowercase hex digits", h);
    return h;
  };
  const sha = hash("weightsSha256");
  const programSha = hash("programSha256");
  return {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    model,
    dataset: {
      name: r.string(d.name, "dataset.name"),
      ...(path_ !== undefined ? { path: path_ } : {}),
      ...(trainCount !== undefined ? { trainCount } : {}),
      ...(testCount !== undefined ? { testCount } : {}),
    },
    preprocessing: readPreprocessing(r, m.preprocessing, "preprocessing", model),
    classNames: readClassNames(r, m.classNames, "classNames", model),
    training: readTraining(r, m.training),
    metrics,
    createdAt: r.optional(m.createdAt, (v) => r.string(v, "createdAt")) ?? "",
    ...(sha !== undefined ? { weightsSha256: sha } : {}),
    ...(programSha !== undefined ? { programSha256: programSha } : {}),
  };
}

/** Rebuilds the model from the zoo and loads its weights (strict: every key must match; no NaN or Infinity). */
export async function loadCheckpoint(dir: string): Promise<{ model: Module; meta: CheckpointMeta }> {
  const meta = await readCheckpointMeta(dir);
  const weights = join(dir, MODEL_WEIGHTS);
  let bytes: Uint8Array;
  try {
    bytes = await readSafetensorsBytes(weights, { maxHeaderBytes: WEIGHTS_MAX_HEADER_BYTES });
  } catch (e) {
    throw new BadExpertError(codeOr(e, "E_MODEL_FORMAT"), `checkpoint: ${(e as Error).message}`, { cause: e });
  }
  if (meta.weightsSha256 !== undefined && sha256Hex(bytes) !== meta.weightsSha256) {
    throw new BadExpertError(
      "E_MODEL_FORMAT",
      `checkpoint: ${weights} does not match the SHA-256 recorded in ${join(dir, MODEL_META)} (the file was changed or replaced after the checkpoint was written)`,
    );
  }
  const file = parseSafetensors(bytes, weights, { maxHeaderBytes: WEIGHTS_MAX_HEADER_BYTES });
  const tensors = tensorsFromFile(file, weights, { requireFinite: true });
  let model: Module | undefined;
  try {
    model = modelForSpec(
      meta.model,
      dir,
      meta.programSha256 !== undefined ? { sha256: meta.programSha256, recordedIn: join(dir, MODEL_META) } : {},
    );
    model.loadStateDict(tensors, { strict: true });
  } catch (e) {
    const msg = (e as Error).message;
    if (model === undefined) throw new BadExpertError(codeOr(e, "E_MODEL_FORMAT"), `checkpoint: ${msg}`, { cause: e });
    model.dispose();
    throw new BadExpertError("E_MODEL_FORMAT", `checkpoint: ${weights} does not fit a ${meta.model.name}: ${msg}`, {
      cause: e,
    });
  } finally {
    dispose(tensors);
  }
  model.eval();
  return { model, meta };
}
