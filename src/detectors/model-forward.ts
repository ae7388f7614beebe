// M's outputs on raw [0, 1] images: every baseline perturbs images in pixel space (superimposing,
// scaling, corrupting, masking) and then asks M, which expects its own normalisation.
import { tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { normalize } from "../data/augment.js";
import type { Preprocessing } from "../train/checkpoint.js";

export function logitsOf(model: Module, p: Preprocessing, x: Tensor): Tensor {
  return tidy(() => model.forward(normalize(x, p.mean, p.std)));
}

/** argmax of M's logits as int32 values. */
export function predictionOf(model: Module, p: Preprocessing, x: Tensor): Int32Array {
  return tidy(() => logitsOf(model, p, x).argmax(1).to({ dtype: "int32" }).data() as Int32Array);
}
