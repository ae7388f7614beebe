// Tensor: a thin TS object around a native libtorch handle. Methods validate what libtorch
// would report cryptically, then make exactly one native call. Every returned tensor is new
// and tracked by the current scope (see scope.ts).
import { native, type Handle } from "./native.js";
import { type DType, type TypedArray, viewBytes, isFloating } from "./dtype.js";
import { track, untrack, TENSOR_MARK } from "./scope.js";

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | Scalar;

function operand(x: TensorOrScalar): Handle | Scalar {
  return x instanceof Tensor ? x.handle : x;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function formatShape(s: readonly number[]): string {
  return `[${s.join(", ")}]`;
}

export class Tensor {
  readonly [TENSOR_MARK] = true;
  #handle: Handle | null;
  #shape: number[] | null = null;
  #dtype: DType | null = null;

  /** Wraps a native handle; used by ops, not by users. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  get handle(): Handle {
    if (this.#handle === null)
      throw new Error("tensor was disposed: it cannot be used any more (keep() it or clone it before its scope ends)");
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  dispose(): void {
    if (this.#handle === null) return;
    native.dispose(this.#handle);
    this.#handle = null;
    untrack(this);
  }

  // ---- metadata ----
  get shape(): number[] {
    this.#shape ??= native.shape(this.handle);
    return this.#shape.slice();
  }
  get rank(): number {
    this.#shape ??= native.shape(this.handle);
    return this.#shape.length;
  }
  get size(): number {
    this.#shape ??= native.shape(this.handle);
    return this.#shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    this.#dtype ??= native.dtype(this.handle) as DType;
    return this.#dtype;
  }
  get device(): string {
    return native.device(this.handle);
  }
  dim(i: number): number {
    const s = this.shape;
    const k = i < 0 ? s.length + i : i;
    const v = s[k];
    if (v === undefined) throw new RangeError(`dim: index ${i} out of range for a tensor of rank ${s.length}`);
    return v;
  }

  toString(): string {
    return this.isDisposed ? "Tensor(disposed)" : `Tensor(${formatShape(this.shape)}, ${this.dtype}, ${this.device})`;
  }

  // ---- data out ----
  /** A copy of the elements as the typed array of this dtype (float16/bfloat16 come out as float32). */
  data(): TypedArray {
    if (this.dtype === "float16" || this.dtype === "bfloat16") {
      const f = this.to({ dtype: "float32" });
      try {
        return f.data();
      } finally {
        f.dispose();
      }
    }
    return viewBytes(native.toBytes(this.handle), this.dtype);
  }
  /** Elements as plain numbers (int64 narrowed to number). */
  toArray(): number[] {
    const d = this.data();
    if (d instanceof BigInt64Array) return Array.from(d, (v) => Number(v));
    return Array.from(d);
  }
  item(): number {
    if (this.size !== 1)
      throw new RangeError(`item: expected a tensor with one element, got shape ${formatShape(this.shape)}`);
    return Number(native.item(this.handle));
  }

  // ---- conversion ----
  to(opts: { device?: string; dtype?: DType }): Tensor {
    return new Tensor(native.to(this.handle, opts.device ?? null, opts.dtype ?? null));
  }
  float(): Tensor {
    return this.to({ dtype: "float32" });
  }
  double(): Tensor {
    return this.to({ dtype: "float64" });
  }
  long(): Tensor {
    return this.to({ dtype: "int64" });
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.handle));
  }
  contiguous(): Tensor {
    return new Tensor(native.contiguous(this.handle));
  }
  /** Another handle to the same tensor (shared storage and autograd identity). */
  alias(): Tensor {
    return new Tensor(native.alias(this.handle));
  }

  // ---- arithmetic (broadcasting) ----
  add(other: TensorOrScalar, alpha = 1): Tensor {
    if (alpha !== 1) {
      if (!(other instanceof Tensor))
        return new Tensor(native.add(this.handle, other === true ? alpha : Number(other) * alpha));
      const scaled = other.mul(alpha);
      try {
        return new Tensor(native.add(this.handle, scaled.handle));
      } finally {
        scaled.dispose();
      }
    }
    return new Tensor(native.add(this.handle, operand(other)));
  }
  sub(other: TensorOrScalar): Tensor {
    return new Tensor(native.sub(this.handle, operand(other)));
  }
  /** other - this */
  rsub(other: TensorOrScalar): Tensor {
    return new Tensor(native.rsub(this.handle, operand(other)));
  }
  mul(other: TensorOrScalar): Tensor {
    return new Tensor(native.mul(this.handle, operand(other)));
  }
  div(other: TensorOrScalar): Tensor {
    return new Tensor(native.div(this.handle, operand(other)));
  }
  pow(exponent: TensorOrScalar): Tensor {
    return new Tensor(native.pow(this.handle, operand(exponent)));
  }
  remainder(other: TensorOrScalar): Tensor {
    return new Tensor(native.remainder(this.handle, operand(other)));
  }
  floorDivide(other: TensorOrScalar): Tensor {
    return new Tensor(native.floorDivide(this.handle, operand(other)));
  }
  maximum(other: Tensor): Tensor {
    return new Tensor(native.maximum(this.handle, other.handle));
  }
  minimum(other: Tensor): Tensor {
    return new Tensor(native.minimum(this.handle, other.handle));
  }
  clamp(min?: number | null, max?: number | null): Tensor {
    if (min != null && max != null && min > max)
      throw new RangeError(`clamp: min (${min}) must not exceed max (${max})`);
    return new Tensor(native.clamp(this.handle, min ?? null, max ?? null));
  }
  matmul(other: Tensor): Tensor {
    return new Tensor(native.matmul(this.handle, other.handle));
  }
  neg(): Tensor {
    return new Tensor(native.neg(this.handle));
  }
  exp(): Tensor {
    return new Tensor(native.exp(this.handle));
  }
  log(): Tensor {
    return new Tensor(native.log(this.handle));
  }
  log1p(): Tensor {
    return new Tensor(native.log1p(this.handle));
  }
  sqrt(): Tensor {
    return new Tensor(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return new Tensor(native.rsqrt(this.handle));
  }
  abs(): Tensor {
    return new Tensor(native.abs(this.handle));
  }
  sign(): Tensor {
    return new Tensor(native.sign(this.handle));
  }
  sin(): Tensor {
    return new Tensor(native.sin(this.handle));
  }
  cos(): Tensor {
    return new Tensor(native.cos(this.handle));
  }
  floor(): Tensor {
    return new Tensor(native.floor(this.handle));
  }
  ceil(): Tensor {
    return new Tensor(native.ceil(this.handle));
  }
  round(): Tensor {
    return new Tensor(native.round(this.handle));
  }
  reciprocal(): Tensor {
    return new Tensor(native.reciprocal(this.handle));
  }
  square(): Tensor {
    return new Tensor(native.square(this.handle));
  }
  erf(): Tensor {
    return new Tensor(native.erf(this.handle));
  }
  erfinv(): Tensor {
    return new Tensor(native.erfinv(this.handle));
  }

  // ---- comparisons and logic (results are bool tensors) ----
  eq(other: TensorOrScalar): Tensor {
    return new Tensor(native.eq(this.handle, operand(other)));
  }
  ne(other: TensorOrScalar): Tensor {
    return new Tensor(native.ne(this.handle, operand(other)));
  }
  lt(other: TensorOrScalar): Tensor {
    return new Tensor(native.lt(this.handle, operand(other)));
  }
  le(other: TensorOrScalar): Tensor {
    return new Tensor(native.le(this.handle, operand(other)));
  }
  gt(other: TensorOrScalar): Tensor {
    return new Tensor(native.gt(this.handle, operand(other)));
  }
  ge(other: TensorOrScalar): Tensor {
    return new Tensor(native.ge(this.handle, operand(other)));
  }
  logicalAnd(other: Tensor): Tensor {
    return new Tensor(native.logicalAnd(this.handle, other.handle));
  }
  logicalOr(other: Tensor): Tensor {
    return new Tensor(native.logicalOr(this.handle, other.handle));
  }
  logicalNot(): Tensor {
    return new Tensor(native.logicalNot(this.handle));
  }
  isnan(): Tensor {
    return new Tensor(native.isnan(this.handle));
  }
  isfinite(): Tensor {
    return new Tensor(native.isfinite(this.handle));
  }

  // ---- activations ----
  relu(): Tensor {
    return new Tensor(native.relu(this.handle));
  }
  relu6(): Tensor {
    return new Tensor(native.relu6(this.handle));
  }
  gelu(approximate: "none" | "tanh" = "none"): Tensor {
    return new Tensor(native.gelu(this.handle, approximate));
  }
  sigmoid(): Tensor {
    return new Tensor(native.sigmoid(this.handle));
  }
  tanh(): Tensor {
    return new Tensor(native.tanh(this.handle));
  }
  silu(): Tensor {
    return new Tensor(native.silu(this.handle));
  }
  leakyRelu(negativeSlope = 0.01): Tensor {
    return new Tensor(native.leakyRelu(this.handle, negativeSlope));
  }
  softmax(dim: number): Tensor {
    this.checkDim("softmax", dim);
    return new Tensor(native.softmax(this.handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    this.checkDim("logSoftmax", dim);
    return new Tensor(native.logSoftmax(this.handle, dim));
  }

  // ---- reductions ----
  sum(dims?: number | number[] | null, keepdim = false): Tensor {
    return new Tensor(native.sum(this.handle, this.reduceDims(dims, keepdim), keepdim));
  }
  mean(dims?: number | number[] | null, keepdim = false): Tensor {
    return new Tensor(native.mean(this.handle, this.reduceDims(dims, keepdim), keepdim));
  }
  /** Maximum value over `dims` (all when omitted). */
  max(dims?: number | number[] | null, keepdim = false): Tensor {
    return new Tensor(native.amax(this.handle, this.reduceDims(dims, keepdim) ?? [], keepdim));
  }
  min(dims?: number | number[] | null, keepdim = false): Tensor {
    return new Tensor(native.amin(this.handle, this.reduceDims(dims, keepdim) ?? [], keepdim));
  }
  /** Values and indices of the maximum along one dimension (PyTorch's `x.max(dim)`). */
  maxAlong(dim: number, keepdim = false): [Tensor, Tensor] {
    this.checkDim("maxAlong", dim);
    const [v, i] = native.maxDim(this.handle, dim, keepdim);
    return [new Tensor(v), new Tensor(i)];
  }
  minAlong(dim: number, keepdim = false): [Tensor, Tensor] {
    this.checkDim("minAlong", dim);
    const [v, i] = native.minDim(this.handle, dim, keepdim);
    return [new Tensor(v), new Tensor(i)];
  }
  var(dims?: number | number[] | null, opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const keepdim = opts.keepdim ?? false;
    return new Tensor(native.var(this.handle, this.reduceDims(dims, keepdim), opts.unbiased ?? true, keepdim));
  }
  std(dims?: number | number[] | null, opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const keepdim = opts.keepdim ?? false;
    return new Tensor(native.std(this.handle, this.reduceDims(dims, keepdim), opts.unbiased ?? true, keepdim));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return new Tensor(native.logsumexp(this.handle, this.reduceDims(dims, keepdim) ?? [], keepdim));
  }
  prod(): Tensor {
    return new Tensor(native.prod(this.handle));
  }
  cumsum(dim: number): Tensor {
    this.checkDim("cumsum", dim);
    return new Tensor(native.cumsum(this.handle, dim));
  }
  all(): Tensor {
    return new Tensor(native.all(this.handle));
  }
  any(): Tensor {
    return new Tensor(native.any(this.handle));
  }
  norm(p = 2, dims?: number | number[] | null, keepdim = false): Tensor {
    return new Tensor(native.norm(this.handle, p, this.reduceDims(dims, keepdim), keepdim));
  }
  argmax(dim?: number | null, keepdim = false): Tensor {
    if (dim != null) this.checkDim("argmax", dim);
    return new Tensor(native.argmax(this.handle, dim ?? null, keepdim));
  }
  argmin(dim?: number | null, keepdim = false): Tensor {
    if (dim != null) this.checkDim("argmin", dim);
    return new Tensor(native.argmin(this.handle, dim ?? null, keepdim));
  }
  topk(k: number, opts: { dim?: number; largest?: boolean; sorted?: boolean } = {}): [Tensor, Tensor] {
    const dim = opts.dim ?? -1;
    this.checkDim("topk", dim);
    const n = this.dim(dim);
    if (!Number.isInteger(k) || k < 0 || k > n)
      throw new RangeError(`topk: k must be an integer in [0, ${n}] for dim ${dim}, got ${k}`);
    const [v, i] = native.topk(this.handle, k, dim, opts.largest ?? true, opts.sorted ?? true);
    return [new Tensor(v), new Tensor(i)];
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    this.checkDim("sort", dim);
    const [v, i] = native.sort(this.handle, dim, descending);
    return [new Tensor(v), new Tensor(i)];
  }

  // ---- shape ----
  reshape(shape: number[]): Tensor {
    const known = shape.filter((d) => d !== -1);
    const inferred = shape.length - known.length;
    const product = known.reduce((a, b) => a * b, 1);
    const ok = inferred === 0 ? product === this.size : inferred === 1 && product > 0 && this.size % product === 0;
    if (!ok || known.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new RangeError(
        `reshape: cannot view shape ${formatShape(this.shape)} (${this.size} elements) as ${formatShape(shape)}`,
      );
    }
    return new Tensor(native.reshape(this.handle, shape));
  }
  view(shape: number[]): Tensor {
    return this.reshape(shape);
  }
  permute(dims: number[]): Tensor {
    if (dims.length !== this.rank)
      throw new RangeError(
        `permute: expected ${this.rank} dims for shape ${formatShape(this.shape)}, got ${formatShape(dims)}`,
      );
    return new Tensor(native.permute(this.handle, dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    this.checkDim("transpose", dim0);
    this.checkDim("transpose", dim1);
    return new Tensor(native.transpose(this.handle, dim0, dim1));
  }
  /** Matrix transpose of the last two dimensions. */
  get T(): Tensor {
    return this.transpose(-2, -1);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return new Tensor(native.flatten(this.handle, startDim, endDim));
  }
  squeeze(dim?: number): Tensor {
    if (dim !== undefined) this.checkDim("squeeze", dim);
    return new Tensor(native.squeeze(this.handle, dim ?? null));
  }
  unsqueeze(dim: number): Tensor {
    const r = this.rank;
    if (!Number.isInteger(dim) || dim < -(r + 1) || dim > r)
      throw new RangeError(`unsqueeze: dim must be in [${-(r + 1)}, ${r}], got ${dim}`);
    return new Tensor(native.unsqueeze(this.handle, dim));
  }
  expand(shape: number[]): Tensor {
    return new Tensor(native.expand(this.handle, shape));
  }
  repeat(reps: number[]): Tensor {
    return new Tensor(native.repeat(this.handle, reps));
  }
  flip(dims: number[]): Tensor {
    return new Tensor(native.flip(this.handle, dims));
  }
  roll(shifts: number[], dims: number[]): Tensor {
    return new Tensor(native.roll(this.handle, shifts, dims));
  }
  tril(k = 0): Tensor {
    return new Tensor(native.tril(this.handle, k));
  }
  triu(k = 0): Tensor {
    return new Tensor(native.triu(this.handle, k));
  }
  /** Elements start..end (exclusive; negative counts from the end) with a step, along `dim`. */
  slice(dim: number, start = 0, end?: number, step = 1): Tensor {
    this.checkDim("slice", dim);
    if (!Number.isInteger(step) || step < 1)
      throw new RangeError(`slice: step must be a positive integer, got ${step}`);
    const n = this.dim(dim);
    return new Tensor(native.slice(this.handle, dim, start, end ?? n, step));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return this.slice(dim, start, start + length);
  }
  /** Index `index` of dimension `dim`, removing that dimension. */
  select(dim: number, index: number): Tensor {
    this.checkDim("select", dim);
    const n = this.dim(dim);
    if (!Number.isInteger(index) || index < -n || index >= n)
      throw new RangeError(`select: index ${index} out of range for dim ${dim} of size ${n}`);
    return new Tensor(native.select(this.handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    this.checkDim("indexSelect", dim);
    this.checkIndex("indexSelect", index);
    return new Tensor(native.indexSelect(this.handle, dim, index.handle));
  }
  /** A copy of this tensor with rows `index` (along `dim`) replaced by `source`'s. */
  indexCopy(dim: number, index: Tensor, source: Tensor): Tensor {
    this.checkDim("indexCopy", dim);
    this.checkIndex("indexCopy", index);
    return new Tensor(native.indexCopy(this.handle, dim, index.handle, source.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    this.checkDim("gather", dim);
    this.checkIndex("gather", index);
    return new Tensor(native.gather(this.handle, dim, index.handle));
  }
  scatter(dim: number, index: Tensor, src: TensorOrScalar): Tensor {
    this.checkDim("scatter", dim);
    this.checkIndex("scatter", index);
    return new Tensor(native.scatter(this.handle, dim, index.handle, operand(src)));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    this.checkDim("scatterAdd", dim);
    this.checkIndex("scatterAdd", index);
    return new Tensor(native.scatterAdd(this.handle, dim, index.handle, src.handle));
  }
  maskedFill(mask: Tensor, value: Scalar): Tensor {
    if (mask.dtype !== "bool") throw new TypeError(`maskedFill: mask must be a bool tensor, got ${mask.dtype}`);
    return new Tensor(native.maskedFill(this.handle, mask.handle, value));
  }
  maskedSelect(mask: Tensor): Tensor {
    if (mask.dtype !== "bool") throw new TypeError(`maskedSelect: mask must be a bool tensor, got ${mask.dtype}`);
    return new Tensor(native.maskedSelect(this.handle, mask.handle));
  }
  nonzero(): Tensor {
    return new Tensor(native.nonzero(this.handle));
  }
  oneHot(numClasses: number): Tensor {
    if (this.dtype !== "int64") throw new TypeError(`oneHot: expected int64 class indices, got ${this.dtype}`);
    return new Tensor(native.oneHot(this.handle, numClasses));
  }
  /** Pads the last dimensions: [left, right, top, bottom, ...] as in PyTorch's F.pad. */
  pad(pads: number[], mode: "constant" | "reflect" | "replicate" | "circular" = "constant", value = 0): Tensor {
    if (pads.length % 2 !== 0 || pads.length / 2 > this.rank) {
      throw new RangeError(`pad: expected an even number of pads, at most ${2 * this.rank}, got ${formatShape(pads)}`);
    }
    return new Tensor(native.pad(this.handle, pads, mode, value));
  }
  split(size: number, dim = 0): Tensor[] {
    this.checkDim("split", dim);
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`split: size must be a positive integer, got ${size}`);
    return native.split(this.handle, size, dim).map((h) => new Tensor(h));
  }

  // ---- in-place updates (for optimizers and initialisers; use under noGrad) ----
  add_(other: TensorOrScalar, alpha = 1): this {
    if (other instanceof Tensor) native.add_(this.handle, other.handle, alpha);
    else native.add_(this.handle, Number(other) * alpha);
    return this;
  }
  sub_(other: TensorOrScalar, alpha = 1): this {
    return this.add_(other, -alpha);
  }
  mul_(other: TensorOrScalar): this {
    native.mul_(this.handle, operand(other));
    return this;
  }
  div_(other: TensorOrScalar): this {
    native.div_(this.handle, operand(other));
    return this;
  }
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  fill_(value: Scalar): this {
    native.fill_(this.handle, value);
    return this;
  }
  addcmul_(t1: Tensor, t2: Tensor, value = 1): this {
    native.addcmul_(this.handle, t1.handle, t2.handle, value);
    return this;
  }
  addcdiv_(t1: Tensor, t2: Tensor, value = 1): this {
    native.addcdiv_(this.handle, t1.handle, t2.handle, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    native.lerp_(this.handle, end.handle, weight);
    return this;
  }
  clamp_(min?: number | null, max?: number | null): this {
    native.clamp_(this.handle, min ?? null, max ?? null);
    return this;
  }
  maximum_(other: Tensor): this {
    native.maximum_(this.handle, other.handle);
    return this;
  }
  uniform_(low = 0, high = 1): this {
    this.checkFloat("uniform_");
    native.uniform_(this.handle, low, high);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    this.checkFloat("normal_");
    native.normal_(this.handle, mean, std);
    return this;
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  requiresGrad_(value = true): this {
    if (value && !isFloating(this.dtype))
      throw new TypeError(`requiresGrad_: only floating-point tensors can require gradients, got ${this.dtype}`);
    native.setRequiresGrad(this.handle, value);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  retainGrad(): this {
    native.retainGrad(this.handle);
    return this;
  }
  /** The accumulated gradient as a new handle (dispose it or read it inside tidy), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  /** Replaces the gradient (null clears it, as PyTorch's zero_grad(set_to_none=True)). */
  setGrad(g: Tensor | null): void {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    if (gradient === undefined && this.size !== 1) {
      throw new RangeError(
        `backward: a gradient argument is needed for a non-scalar output of shape ${formatShape(this.shape)}`,
      );
    }
    if (gradient !== undefined && !sameShape(gradient.shape, this.shape)) {
      throw new RangeError(
        `backward: gradient shape ${formatShape(gradient.shape)} does not match output shape ${formatShape(this.shape)}`,
      );
    }
    native.backward(this.handle, gradient?.handle ?? null, opts.retainGraph ?? false);
  }

  // ---- helpers ----
  private checkDim(op: string, dim: number): void {
    const r = this.rank;
    const lo = r === 0 ? -1 : -r;
    const hi = r === 0 ? 0 : r - 1;
    if (!Number.isInteger(dim) || dim < lo || dim > hi) {
      throw new RangeError(
        `${op}: dim must be an integer in [${lo}, ${hi}] for shape ${formatShape(this.shape)}, got ${dim}`,
      );
    }
  }
  private checkIndex(op: string, index: Tensor): void {
    if (index.dtype !== "int64") throw new TypeError(`${op}: index must be an int64 tensor, got ${index.dtype}`);
  }
  private checkFloat(op: string): void {
    if (!isFloating(this.dtype)) throw new TypeError(`${op}: expected a floating-point tensor, got ${this.dtype}`);
  }
  private reduceDims(dims: number | number[] | null | undefined, keepdim: boolean): number[] | null {
    if (dims == null) return keepdim ? Array.from({ length: this.rank }, (_, i) => i) : null;
    const list = typeof dims === "number" ? [dims] : dims;
    for (const d of list) this.checkDim("reduce", d);
    return list;
  }
}
