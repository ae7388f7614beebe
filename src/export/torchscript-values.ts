// What a TorchScript value becomes while its graph is translated to ONNX (torchscript-export.ts):
// a tensor in the ONNX graph (with its rank and what is known of its dims), a constant tensor
// (a weight, written as an initializer when first used), a number, string, bool or list known at
// export time, an integer computed at run time (a size that depends on the batch), or a list or
// tuple of these. Static values let the exporter fold what TorchScript computes on shapes and
// flags, so the ONNX graph carries only the arithmetic on tensors.
import type { Tensor } from "../engine/index.js";
import type { GraphBuilder } from "./graph-builder.js";
import { DataType, type DataTypeCode } from "./onnx-proto.js";

/** A dimension: its size, or a symbol (the batch, or a size the exporter could not work out). */
export type Dim = number | string;

export type ElementType = "float32" | "int64" | "bool";

export interface TensorValue {
  kind: "tensor";
  name: string;
  dims: Dim[];
  dtype: ElementType;
}

/** A tensor constant of the program (a parameter, buffer or folded value); an initializer once used. */
export interface ConstTensorValue {
  kind: "const-tensor";
  tensor: Tensor;
  /** The parameter or buffer it is (state-dict name), or null. */
  name: string | null;
}

/** A Python value known at export time. */
export type Static = null | boolean | number | bigint | string | Static[];

export interface StaticValue {
  kind: "static";
  value: Static;
}

/** An integer known only at run time: an int64 scalar in the graph; `dim` names the symbolic size it equals, if any. */
export interface DynamicInt {
  kind: "int";
  name: string;
  dim?: string;
}

export interface ListValue {
  kind: "list" | "tuple";
  items: TsValue[];
}

/** A value the exporter does not write (the indices of max pooling, an uninitialized placeholder): an error if anything reads it. */
export interface UnavailableValue {
  kind: "unavailable";
  why: string;
}

export type TsValue = TensorValue | ConstTensorValue | StaticValue | DynamicInt | ListValue | UnavailableValue;

/** Raised by an operator's translation; the exporter adds which operator and where. */
export class OpRefusal extends Error {}

export function refuse(message: string): never {
  throw new OpRefusal(message);
}

export const staticValue = (value: Static): StaticValue => ({ kind: "static", value });

/** A tensor value named `name` of shape `dims`, of `like`'s element type. */
export const tensorLike = (name: string, dims: Dim[], like: TensorValue): TensorValue => ({
  kind: "tensor",
  name,
  dims,
  dtype: like.dtype,
});

/** A short description of a value for messages. */
export function describe(v: TsValue): string {
  switch (v.kind) {
    case "tensor":
      return `a tensor [${v.dims.join(", ")}]`;
    case "const-tensor":
      return `the constant tensor ${v.name === null ? "" : `${v.name} `}[${v.tensor.shape.join(", ")}]`;
    case "static":
      return JSON.stringify(v.value, (_k, x: unknown) => (typeof x === "bigint" ? Number(x) : x));
    case "int":
      return "an integer computed at run time";
    case "unavailable":
      return v.why;
    default:
      return `a ${v.kind} of ${v.items.length}`;
  }
}

/** Where the exporter keeps its graph and the constant tensors it has written. */
export interface OpContext {
  readonly g: GraphBuilder;
  /** `v` as a tensor of the graph: constant tensors become initializers (once), static numbers scalars of `like`'s type. */
  tensor(v: TsValue, what: string, like?: ElementType): TensorValue;
  /** A symbol for a dimension the exporter cannot work out. */
  unknownDim(): string;
}

/** Translates one operator: its arguments in, its outputs out (one value, or one per output). */
export type OpFn = (c: OpContext, args: TsValue[]) => TsValue | TsValue[];

// ---- static arguments ----

const isInt = (x: Static): x is number => typeof x === "number" && Number.isInteger(x);

/** An integer argument known at export time. INT64 extremes (slice "to the end") come back as ±Infinity. */
export function int(v: TsValue | undefined, what: string): number {
  if (v?.kind === "static") {
    if (isInt(v.value)) return v.value;
    if (typeof v.value === "bigint") return v.value > 0n ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY;
    if (typeof v.value === "boolean") return v.value ? 1 : 0;
  }
  return refuse(`${what} must be an integer known when exporting, got ${v === undefined ? "nothing" : describe(v)}`);
}

export function float(v: TsValue | undefined, what: string): number {
  if (v?.kind === "static" && typeof v.value === "number") return v.value;
  return refuse(`${what} must be a number known when exporting, got ${v === undefined ? "nothing" : describe(v)}`);
}

export function bool(v: TsValue | undefined, what: string): boolean {
  if (v?.kind === "static" && typeof v.value === "boolean") return v.value;
  return refuse(`${what} must be a bool known when exporting, got ${v === undefined ? "nothing" : describe(v)}`);
}

export function isNone(v: TsValue | undefined): boolean {
  return v === undefined || (v.kind === "static" && v.value === null);
}

/** A list of integers known at export time (a single integer counts as a list of one, as in int[2] arguments). */
export function ints(v: TsValue | undefined, what: string): number[] {
  if (v?.kind === "static") {
    if (Array.isArray(v.value)) return v.value.map((x, i) => int(staticValue(x), `${what}[${i}]`));
    if (isInt(v.value)) return [v.value];
  }
  if (v?.kind === "list" || v?.kind === "tuple") return v.items.map((x, i) => int(x, `${what}[${i}]`));
  return refuse(
    `${what} must be a list of integers known when exporting, got ${v === undefined ? "nothing" : describe(v)}`,
  );
}

/** An int[2] argument (kernel, stride, padding, dilation): one value stands for both. */
export function pair(v: TsValue | undefined, what: string): [number, number] {
  const xs = ints(v, what);
  if (xs.length === 1) return [xs[0] as number, xs[0] as number];
  if (xs.length !== 2) refuse(`${what} must hold 1 or 2 integers, got ${xs.length}`);
  return [xs[0] as number, xs[1] as number];
}

/** The items of a list or tuple value. */
export function items(v: TsValue | undefined, what: string): TsValue[] {
  if (v?.kind === "list" || v?.kind === "tuple") return v.items;
  if (v?.kind === "static" && Array.isArray(v.value)) return v.value.map(staticValue);
  return refuse(`${what} must be a list, got ${v === undefined ? "nothing" : describe(v)}`);
}

/** dim in [-rank, rank) → [0, rank). */
export function axis(d: number, rank: number, what: string): number {
  if (!Number.isInteger(d) || d < -rank || d >= rank) refuse(`${what} ${d} is out of range for a rank-${rank} tensor`);
  return d < 0 ? d + rank : d;
}

// ---- dims ----

export function numel(dims: readonly Dim[]): number | null {
  let n = 1;
  for (const d of dims) {
    if (typeof d !== "number") return null;
    n *= d;
  }
  return n;
}

/** Broadcast dims (numpy rules, as torch): a static 1 yields to the other side. */
export function broadcastDims(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x === 1) out.push(y);
    else if (y === 1 || x === y) out.push(x);
    else if (typeof x === "number" && typeof y === "number")
      refuse(`shapes [${a.join(", ")}] and [${b.join(", ")}] do not broadcast`);
    else out.push(typeof x === "number" ? x : y);
  }
  return out;
}

// ---- integer lists in the graph ----

/** An int64 scalar of the graph: `v` known or computed at run time. */
export function intScalar(g: GraphBuilder, v: TsValue, what: string): string {
  if (v.kind === "int") return v.name;
  return g.constInt64([int(v, what)], []);
}

/** An int64 [n] tensor of the graph holding the list's integers (static or computed at run time). */
export function intList(g: GraphBuilder, v: TsValue, what: string): string {
  const xs = items(v, what);
  if (xs.every((x) => x.kind === "static")) return g.constInt64(ints(v, what));
  const parts = xs.map((x, i) =>
    x.kind === "int" ? g.op("Unsqueeze", [x.name, g.constInt64([0])]) : g.constInt64([int(x, `${what}[${i}]`)]),
  );
  return g.op("Concat", parts, { axis: 0 });
}

/** What the dims list says of each dimension: a size, a symbol (a run-time size that equals a known symbol), or a fresh unknown. */
export function dimsOfList(c: OpContext, v: TsValue, what: string): Dim[] {
  return items(v, what).map((x, i) => {
    if (x.kind === "int") return x.dim ?? c.unknownDim();
    return int(x, `${what}[${i}]`);
  });
}

/** Size of dimension d of x: a static number, or a run-time integer read from its shape. */
export function sizeOf(g: GraphBuilder, x: TensorValue, d: number): StaticValue | DynamicInt {
  const dim = x.dims[d];
  if (typeof dim === "number") return staticValue(dim);
  const name = g.op("Gather", [g.op("Shape", [x.name]), g.constInt64([d], [])], { axis: 0 });
  return dim === undefined ? { kind: "int", name } : { kind: "int", name, dim };
}

export const ONNX_TYPES: Record<ElementType, DataTypeCode> = {
  float32: DataType.FLOAT,
  int64: DataType.INT64,
  bool: DataType.BOOL,
};
