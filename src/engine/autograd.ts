// Gradient-mode scopes and functional gradients.
import { native } from "./native.js";
import { Tensor } from "./tensor.js";

/** Runs fn without recording operations for autograd (PyTorch's torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Re-enables gradient recording inside a noGrad scope. */
export function enableGrad<T>(fn: () => T): T {
  const prev = native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/**
 * Runs fn in libtorch's inference mode: faster than noGrad, but tensors made inside can never
 * take part in autograd later (use it for pure evaluation and scoring).
 */
export function inferenceMode<T>(fn: () => T): T {
  native.enterInferenceMode();
  try {
    return fn();
  } finally {
    native.exitInferenceMode();
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

/**
 * Gradients of `outputs` with respect to `inputs` without touching `.grad`
 * (torch.autograd.grad). Inputs that do not affect the outputs give null.
 */
export function gradients(
  outputs: Tensor[],
  inputs: Tensor[],
  opts: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean } = {},
): (Tensor | null)[] {
  const hs = native.gradients(
    outputs.map((t) => t.handle),
    inputs.map((t) => t.handle),
    opts.gradOutputs?.map((t) => t.handle) ?? null,
    opts.retainGraph ?? false,
    opts.createGraph ?? false,
  );
  return hs.map((h) => (h === null ? null : new Tensor(h)));
}
