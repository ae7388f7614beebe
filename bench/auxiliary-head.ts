// M''s output layer re-initialised before finetuning (bench:unlearning --aux-head reset): a study
// option. The mapping from features to classes is then learned from the clean reserved set alone;
// measured on the 6-epoch Adaptive-Patch model, M' relearned the trigger's route to the target
// from the features (BENCHMARKS.md), so defend keeps the paper's M' (an exact copy of M's head).
import { manualSeed } from "../src/engine/index.js";
import { Linear, type Module } from "../src/nn/index.js";
import type { ImageDataset } from "../src/data/dataset.js";
import type { ModelSpec } from "../src/train/checkpoint.js";
import { cloneModel, finetuneAuxiliary } from "../src/defense/fit.js";

export const AUXILIARY_HEADS = ["keep", "reset"] as const;
export type AuxiliaryHead = (typeof AUXILIARY_HEADS)[number];

/**
 * The output layer of a zoo model: the last Linear (in PyTorch's module order) with one output per
 * class. Every architecture of the zoo ends in one; an imported TorchScript model has no Linear
 * modules to find, so it is refused by name.
 */
export function outputLayer(model: Module, numClasses: number): { name: string; layer: Linear } {
  let found: { name: string; layer: Linear } | undefined;
  for (const [name, m] of model.namedModules()) if (m instanceof Linear && m.outFeatures === numClasses) found = { name, layer: m };
  if (!found) throw new RangeError(`--aux-head reset: the model has no Linear output layer with ${numClasses} outputs (an imported TorchScript model cannot have its head reset; use "keep")`);
  return found;
}

/**
 * finetuneAuxiliary, from M's weights with the output layer kept ("keep": the paper's M') or
 * drawn afresh ("reset", seeded by o.seed, so a rerun draws the same head).
 */
export async function finetuneAuxiliaryWithHead(model: Module, spec: ModelSpec, reserved: ImageDataset, o: Parameters<typeof finetuneAuxiliary>[3], head: AuxiliaryHead): Promise<Module> {
  if (head === "keep") return finetuneAuxiliary(model, spec, reserved, o);
  const start = cloneModel(model, spec);
  try {
    const { layer } = outputLayer(start, spec.numClasses);
    manualSeed(o.seed + 2);
    layer.resetParameters();
    // finetuneAuxiliary trains a copy of `start`; training reseeds itself, so the copy changes nothing.
    return await finetuneAuxiliary(start, spec, reserved, o);
  } finally {
    start.dispose();
  }
}
