// Where a model of a given spec comes from: the zoo (built from its name) or a TorchScript file
// kept next to the weights ("torchscript": any architecture, imported with `badexpert import
// --torchscript`). Checkpoints, bundles and the defense's finetuned copies all go through these
// three functions, so a TorchScript model is saved, loaded and cloned like a zoo model.
import { join } from "node:path";
import { sha256Hex } from "../io/safetensors.js";
import type { Module } from "../nn/index.js";
import { TorchScriptModule, type ScriptLoadOptions } from "../nn/torchscript-module.js";
import { readRegularFileSync } from "../util/read-regular-file.js";
import { createModel, modelNames } from "./registry.js";

/** The architecture name of imported TorchScript models. */
export const TORCHSCRIPT_ARCH = "torchscript";
/** The TorchScript program (with M's weights) inside a checkpoint or bundle directory. */
export const TORCHSCRIPT_FILE = "model.torchscript.pt";

export interface ArchitectureSpec {
  name: string;
  numClasses: number;
  inChannels: number;
  imageSize: number;
}

export function isKnownArchitecture(name: string): boolean {
  return name === TORCHSCRIPT_ARCH || modelNames().includes(name);
}

/**
 * A model of `spec` whose weights are then loaded by the caller: a fresh zoo model, or the
 * TorchScript program in `dir` — checked against `program.sha256` when the directory recorded one
 * (the program defines the computation, so it is as much a part of the model as its weights).
 */
export function modelForSpec(spec: ArchitectureSpec, dir: string, program: ScriptLoadOptions = {}): Module {
  if (spec.name === TORCHSCRIPT_ARCH) return TorchScriptModule.load(join(dir, TORCHSCRIPT_FILE), program);
  return createModel(spec.name, spec);
}

/**
 * Writes what modelForSpec needs besides the weights: the TorchScript program (nothing for zoo
 * models). Returns the program's size and SHA-256, for the directory's manifest.
 */
export function saveModelSource(
  dir: string,
  model: Module,
  spec: ArchitectureSpec,
): { bytes: number; sha256: string } | undefined {
  if (spec.name !== TORCHSCRIPT_ARCH) return undefined;
  if (!(model instanceof TorchScriptModule))
    throw new TypeError(`saveModelSource: spec "${TORCHSCRIPT_ARCH}" needs a TorchScriptModule, got ${model.typeName}`);
  const path = join(dir, TORCHSCRIPT_FILE);
  model.save(path);
  // Read back as written, with the checks every read gets (it is hashed for the manifest).
  const bytes = readRegularFileSync(path, { maxBytes: 2 ** 32 - 1, what: "TorchScript file" });
  return { bytes: bytes.length, sha256: sha256Hex(bytes) };
}

/** An independent model of the same architecture carrying `model`'s weights. */
export function cloneModel(model: Module, spec: ArchitectureSpec): Module {
  if (model instanceof TorchScriptModule) return model.clone();
  const copy = createModel(spec.name, spec);
  copy.loadStateDict(model.stateDict(), { strict: true });
  return copy;
}
