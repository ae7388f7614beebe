// Making tensors: from JS data, constants, ranges and random draws (seeded by manualSeed).
import { native } from "./native.js";
import { type DType, type TypedArray, assertDType, bytesPerElement, dtypeOfArray } from "./dtype.js";
import { Tensor, formatShape } from "./tensor.js";
import { checkDevice } from "./runtime.js";

export interface CreateOptions {
  dtype?: DType;
  device?: string;
  requiresGrad?: boolean;
}

type Nested = number | boolean | Nested[];

function checkShape(op: string, shape: number[]): void {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new RangeError(`${op}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
}

function finish(t: Tensor, opts: CreateOptions): Tensor {
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

function dev(opts: CreateOptions): string | undefined {
  return opts.device === undefined ? undefined : checkDevice(opts.device);
}

function inferShape(x: Nested): number[] {
  const shape: number[] = [];
  let cur: Nested = x;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0] as Nested;
  }
  return shape;
}

function flattenNested(x: Nested, shape: number[], depth: number, out: number[]): void {
  if (depth === shape.length) {
    if (Array.isArray(x)) throw new RangeError(`tensor: ragged nested array (expected a scalar at depth ${depth})`);
    out.push(typeof x === "boolean" ? (x ? 1 : 0) : x);
    return;
  }
  if (!Array.isArray(x) || x.length !== shape[depth]) {
    throw new RangeError(`tensor: ragged nested array: expected length ${shape[depth]} at depth ${depth}`);
  }
  for (const v of x) flattenNested(v, shape, depth + 1, out);
}

function encode(values: ArrayLike<number>, dtype: DType): TypedArray {
  switch (dtype) {
    case "float32":
      return Float32Array.from(values);
    case "float64":
      return Float64Array.from(values);
    case "int64":
      return BigInt64Array.from(Array.from(values), (v) => BigInt(Math.trunc(v)));
    case "int32":
      return Int32Array.from(values);
    case "int16":
      return Int16Array.from(values);
    case "int8":
      return Int8Array.from(values);
    case "uint8":
      return Uint8Array.from(values);
    case "bool":
      return Uint8Array.from(values, (v) => (v ? 1 : 0));
    default:
      return Float32Array.from(values);
  }
}

/**
 * A tensor from a typed array (with `shape`) or nested JS arrays (shape inferred).
 * Default dtype: the typed array's own, float32 for numbers, bool for booleans.
 */
export function tensor(data: TypedArray | Nested, opts: CreateOptions & { shape?: number[] } = {}): Tensor {
  if (opts.dtype !== undefined) assertDType(opts.dtype, "tensor: dtype");
  if (ArrayBuffer.isView(data)) {
    const shape = opts.shape ?? [data.length];
    checkShape("tensor", shape);
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length)
      throw new RangeError(`tensor: shape ${formatShape(shape)} needs ${n} elements, the array has ${data.length}`);
    const own = dtypeOfArray(data);
    const wanted = opts.dtype ?? own;
    const bytes =
      wanted === own || (wanted === "bool" && own === "uint8") ? data : encode(Array.from(data, Number), wanted);
    const h = native.fromBytes(bytes, wanted === "float16" || wanted === "bfloat16" ? "float32" : wanted, shape);
    let t = new Tensor(h);
    if (wanted === "float16" || wanted === "bfloat16") {
      const c = t.to({ dtype: wanted });
      t.dispose();
      t = c;
    }
    if (opts.device !== undefined && opts.device !== "cpu") {
      const moved = t.to({ device: dev(opts) as string });
      t.dispose();
      t = moved;
    }
    return finish(t, opts);
  }
  const shape = opts.shape ?? inferShape(data);
  const flat: number[] = [];
  if (opts.shape !== undefined) {
    if (Array.isArray(data)) flattenNested(data, inferShape(data), 0, flat);
    else flat.push(typeof data === "boolean" ? Number(data) : data);
  } else {
    flattenNested(data, shape, 0, flat);
  }
  const isBool = typeof firstLeaf(data) === "boolean";
  const dtype = opts.dtype ?? (isBool ? "bool" : "float32");
  return tensor(encode(flat, dtype), { ...opts, dtype, shape });
}

function firstLeaf(x: Nested): number | boolean | undefined {
  let cur: Nested | undefined = x;
  while (Array.isArray(cur)) cur = cur[0];
  return cur;
}

/** A tensor from raw little-endian bytes (as found in safetensors files). */
export function fromBytes(bytes: Uint8Array, dtype: DType, shape: number[], opts: { device?: string } = {}): Tensor {
  checkShape("fromBytes", shape);
  const n = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== n * bytesPerElement(dtype)) {
    throw new RangeError(
      `fromBytes: shape ${formatShape(shape)} of ${dtype} needs ${n * bytesPerElement(dtype)} bytes, got ${bytes.byteLength}`,
    );
  }
  return new Tensor(native.fromBytes(bytes, dtype, shape, dev(opts)));
}

export function zeros(shape: number[], opts: CreateOptions = {}): Tensor {
  checkShape("zeros", shape);
  return finish(new Tensor(native.zeros(shape, opts.dtype ?? "float32", dev(opts))), opts);
}
/** Uninitialised memory (fast; fill it before reading). */
export function empty(shape: number[], opts: CreateOptions = {}): Tensor {
  checkShape("empty", shape);
  return finish(new Tensor(native.empty(shape, opts.dtype ?? "float32", dev(opts))), opts);
}
export function ones(shape: number[], opts: CreateOptions = {}): Tensor {
  checkShape("ones", shape);
  return finish(new Tensor(native.ones(shape, opts.dtype ?? "float32", dev(opts))), opts);
}
export function full(shape: number[], value: number | boolean, opts: CreateOptions = {}): Tensor {
  checkShape("full", shape);
  const dtype = opts.dtype ?? (typeof value === "boolean" ? "bool" : "float32");
  return finish(new Tensor(native.full(shape, value, dtype, dev(opts))), opts);
}
export function scalar(value: number, opts: CreateOptions = {}): Tensor {
  return full([], value, opts);
}
export function zerosLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device, ...opts });
}
export function onesLike(t: Tensor, opts: CreateOptions = {}): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device, ...opts });
}
export function fullLike(t: Tensor, value: number, opts: CreateOptions = {}): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...opts });
}
/** Values start, start+step, … below end. Integer arguments give int64 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  if (step === 0) throw new RangeError("arange: step must not be zero");
  const ints = Number.isInteger(s) && Number.isInteger(e) && Number.isInteger(step);
  return finish(new Tensor(native.arange(s, e, step, opts.dtype ?? (ints ? "int64" : "float32"), dev(opts))), opts);
}
export function linspace(start: number, end: number, steps: number, opts: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.linspace(start, end, steps, opts.dtype ?? "float32", dev(opts))), opts);
}
export function eye(n: number, opts: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.eye(n, opts.dtype ?? "float32", dev(opts))), opts);
}

// ---- random (deterministic after manualSeed) ----
export function rand(shape: number[], opts: CreateOptions = {}): Tensor {
  checkShape("rand", shape);
  return finish(new Tensor(native.rand(shape, opts.dtype ?? "float32", dev(opts))), opts);
}
export function randn(shape: number[], opts: CreateOptions = {}): Tensor {
  checkShape("randn", shape);
  return finish(new Tensor(native.randn(shape, opts.dtype ?? "float32", dev(opts))), opts);
}
/** Integers uniformly in [low, high). */
export function randint(low: number, high: number, shape: number[], opts: CreateOptions = {}): Tensor {
  checkShape("randint", shape);
  if (!(high > low)) throw new RangeError(`randint: high (${high}) must be greater than low (${low})`);
  return new Tensor(native.randint(low, high, shape, opts.dtype ?? "int64", dev(opts)));
}
export function randperm(n: number, opts: CreateOptions = {}): Tensor {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`randperm: n must be a non-negative integer, got ${n}`);
  return new Tensor(native.randperm(n, opts.dtype ?? "int64", dev(opts)));
}
/** Draws 0/1 with the probabilities in `p` (same shape). */
export function bernoulli(p: Tensor): Tensor {
  return new Tensor(native.bernoulli(p.handle));
}
export function multinomial(p: Tensor, numSamples: number, replacement = false): Tensor {
  return new Tensor(native.multinomial(p.handle, numSamples, replacement));
}
