// Neural-network functionals (torch.nn.functional): each validates shapes with a clear message
// and makes one libtorch call.
import { native } from "./native.js";
import { Tensor, formatShape } from "./tensor.js";

type Pair = number | [number, number];
function pair(op: string, name: string, v: Pair): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : v;
  if (p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new RangeError(`${op}: ${name} must be a non-negative integer or a pair of them, got ${JSON.stringify(v)}`);
  }
  return p;
}
function need4d(op: string, x: Tensor): number[] {
  const s = x.shape;
  if (s.length !== 4) throw new RangeError(`${op}: expected a 4-D input [N, C, H, W], got shape ${formatShape(s)}`);
  return s;
}
export type Reduction = "mean" | "sum" | "none";

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const inF = weight.dim(1);
  if (x.dim(-1) !== inF) {
    throw new RangeError(
      `linear: input's last dimension is ${x.dim(-1)} (shape ${formatShape(x.shape)}) but the weight expects ${inF} features`,
    );
  }
  return new Tensor(native.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null | undefined, o: Conv2dOptions = {}): Tensor {
  const s = need4d("conv2d", x);
  const groups = o.groups ?? 1;
  const wIn = weight.dim(1) * groups;
  if (s[1] !== wIn) {
    throw new RangeError(
      `conv2d: input has ${s[1]} channels (shape ${formatShape(s)}) but the weight ${formatShape(weight.shape)} with groups=${groups} expects ${wIn}`,
    );
  }
  return new Tensor(
    native.conv2d(
      x.handle,
      weight.handle,
      bias?.handle ?? null,
      pair("conv2d", "stride", o.stride ?? 1),
      pair("conv2d", "padding", o.padding ?? 0),
      pair("conv2d", "dilation", o.dilation ?? 1),
      groups,
    ),
  );
}

export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null | undefined,
  o: Conv2dOptions & { outputPadding?: Pair } = {},
): Tensor {
  const s = need4d("convTranspose2d", x);
  if (s[1] !== weight.dim(0))
    throw new RangeError(`convTranspose2d: input has ${s[1]} channels but the weight expects ${weight.dim(0)}`);
  return new Tensor(
    native.convTranspose2d(
      x.handle,
      weight.handle,
      bias?.handle ?? null,
      pair("convTranspose2d", "stride", o.stride ?? 1),
      pair("convTranspose2d", "padding", o.padding ?? 0),
      pair("convTranspose2d", "outputPadding", o.outputPadding ?? 0),
      o.groups ?? 1,
      pair("convTranspose2d", "dilation", o.dilation ?? 1),
    ),
  );
}

export interface BatchNormArgs {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  training: boolean;
  momentum?: number;
  eps?: number;
}
/** Batch normalisation over dim 1; in training mode the running statistics are updated in place. */
export function batchNorm(x: Tensor, a: BatchNormArgs): Tensor {
  const s = x.shape;
  if (s.length < 2)
    throw new RangeError(`batchNorm: expected an input of rank >= 2 [N, C, ...], got shape ${formatShape(s)}`);
  const c = s[1];
  for (const [name, t] of [
    ["weight", a.weight],
    ["bias", a.bias],
    ["runningMean", a.runningMean],
    ["runningVar", a.runningVar],
  ] as const) {
    if (t && t.size !== c)
      throw new RangeError(`batchNorm: ${name} has ${t.size} elements but the input has ${c} channels`);
  }
  if (!a.training && (!a.runningMean || !a.runningVar))
    throw new Error("batchNorm: evaluation mode needs runningMean and runningVar");
  return new Tensor(
    native.batchNorm(
      x.handle,
      a.weight?.handle ?? null,
      a.bias?.handle ?? null,
      a.runningMean?.handle ?? null,
      a.runningVar?.handle ?? null,
      a.training,
      a.momentum ?? 0.1,
      a.eps ?? 1e-5,
    ),
  );
}

export function layerNorm(
  x: Tensor,
  normalizedShape: number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  const tail = x.shape.slice(-normalizedShape.length);
  if (tail.length !== normalizedShape.length || tail.some((d, i) => d !== normalizedShape[i])) {
    throw new RangeError(
      `layerNorm: input shape ${formatShape(x.shape)} does not end with normalizedShape ${formatShape(normalizedShape)}`,
    );
  }
  return new Tensor(native.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps));
}

export function softmax(x: Tensor, dim: number): Tensor {
  return x.softmax(dim);
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  return x.logSoftmax(dim);
}

/**
 * Cross-entropy of logits [N, C] against int64 class indices [N] or soft targets [N, C]
 * (probabilities), as torch.nn.functional.cross_entropy.
 */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { reduction?: Reduction; labelSmoothing?: number } = {},
): Tensor {
  const ls = logits.shape;
  const ts = target.shape;
  if (ls.length < 1) throw new RangeError("crossEntropy: logits must have at least one dimension");
  if (target.dtype === "int64") {
    if (ls.length >= 2 && (ts.length !== ls.length - 1 || ts[0] !== ls[0])) {
      throw new RangeError(
        `crossEntropy: class-index target shape ${formatShape(ts)} does not match logits ${formatShape(ls)} (expected [${ls[0]}])`,
      );
    }
  } else if (ts.length !== ls.length || ts.some((d, i) => d !== ls[i])) {
    throw new RangeError(
      `crossEntropy: probability target shape ${formatShape(ts)} must equal logits shape ${formatShape(ls)} (or pass int64 class indices)`,
    );
  }
  return new Tensor(native.crossEntropy(logits.handle, target.handle, o.reduction ?? "mean", o.labelSmoothing ?? 0));
}

export function nllLoss(logProbs: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  if (target.dtype !== "int64") throw new TypeError(`nllLoss: target must be int64 class indices, got ${target.dtype}`);
  return new Tensor(native.nllLoss(logProbs.handle, target.handle, reduction));
}
export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(native.mseLoss(input.handle, target.handle, reduction));
}
export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, reduction: Reduction = "mean"): Tensor {
  return new Tensor(native.bceWithLogits(logits.handle, target.handle, reduction));
}

export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return new Tensor(native.dropout(x.handle, p, training));
}

export interface Pool2dOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}
/** A pooling window, checked: kernel, stride (default: the kernel) and padding (default 0) of a 4-D input. */
function poolWindow(
  op: string,
  x: Tensor,
  kernelSize: Pair,
  o: Pool2dOptions,
): [[number, number], [number, number], [number, number]] {
  need4d(op, x);
  const k = pair(op, "kernelSize", kernelSize);
  return [k, pair(op, "stride", o.stride ?? k), pair(op, "padding", o.padding ?? 0)];
}
export function maxPool2d(x: Tensor, kernelSize: Pair, o: Pool2dOptions & { dilation?: Pair } = {}): Tensor {
  const [k, stride, padding] = poolWindow("maxPool2d", x, kernelSize, o);
  const dilation = pair("maxPool2d", "dilation", o.dilation ?? 1);
  return new Tensor(native.maxPool2d(x.handle, k, stride, padding, dilation, o.ceilMode ?? false));
}
export function avgPool2d(x: Tensor, kernelSize: Pair, o: Pool2dOptions & { countIncludePad?: boolean } = {}): Tensor {
  const [k, stride, padding] = poolWindow("avgPool2d", x, kernelSize, o);
  return new Tensor(native.avgPool2d(x.handle, k, stride, padding, o.ceilMode ?? false, o.countIncludePad ?? true));
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  const s = x.shape;
  if (s.length !== 3 && s.length !== 4)
    throw new RangeError(`adaptiveAvgPool2d: expected a 3-D or 4-D input, got shape ${formatShape(s)}`);
  return new Tensor(native.adaptiveAvgPool2d(x.handle, pair("adaptiveAvgPool2d", "outputSize", outputSize)));
}

export type InterpolateMode = "nearest" | "bilinear" | "bicubic";
/** Resizes [N, C, H, W] images to `size`. */
export function interpolate(x: Tensor, size: Pair, mode: InterpolateMode = "nearest", alignCorners = false): Tensor {
  need4d("interpolate", x);
  const sz = pair("interpolate", "size", size);
  if (sz[0] < 1 || sz[1] < 1) throw new RangeError(`interpolate: size must be positive, got ${JSON.stringify(size)}`);
  return new Tensor(native.interpolate(x.handle, sz, mode, alignCorners));
}

/** Samples x [N, C, H, W] at grid [N, Ho, Wo, 2] locations in [-1, 1] (x, y order). */
export function gridSample(
  x: Tensor,
  grid: Tensor,
  o: {
    mode?: "bilinear" | "nearest" | "bicubic";
    paddingMode?: "zeros" | "border" | "reflection";
    alignCorners?: boolean;
  } = {},
): Tensor {
  const s = need4d("gridSample", x);
  const g = grid.shape;
  if (g.length !== 4 || g[3] !== 2 || g[0] !== s[0]) {
    throw new RangeError(
      `gridSample: grid must have shape [${s[0]}, H_out, W_out, 2] for input ${formatShape(s)}, got ${formatShape(g)}`,
    );
  }
  return new Tensor(
    native.gridSample(x.handle, grid.handle, o.mode ?? "bilinear", o.paddingMode ?? "zeros", o.alignCorners ?? false),
  );
}

export function affineGrid(theta: Tensor, size: [number, number, number, number], alignCorners = false): Tensor {
  return new Tensor(native.affineGrid(theta.handle, size, alignCorners));
}
