// Arithmetic in a TorchScript graph, on tensors and on numbers. Numbers known when exporting are
// folded (a head size's square root, a flag test); integers known only at run time (sizes that
// depend on the batch, as traced models compute them through NumToTensor and Int) become int64
// scalars of the graph; tensors get the elementwise ONNX operator with PyTorch's broadcasting.
import {
  ONNX_TYPES,
  broadcastDims,
  describe,
  float,
  intScalar,
  refuse,
  staticValue,
  type DynamicInt,
  type ElementType,
  type OpContext,
  type OpFn,
  type Static,
  type StaticValue,
  type TensorValue,
  type TsValue,
} from "./torchscript-values.js";

type Scalar = StaticValue | DynamicInt;

/** `v` as a number (known or run-time integer), or null when it is a tensor. A one-element integer constant counts (traced shape arithmetic). */
function scalarOf(v: TsValue | undefined): Scalar | null {
  if (v === undefined) return null;
  if (v.kind === "int") return v;
  if (v.kind === "static") {
    if (typeof v.value === "number") return v;
    if (typeof v.value === "boolean") return staticValue(v.value ? 1 : 0);
    return null;
  }
  // Python numbers in a traced program are 0-d float64/int64 tensors.
  if (
    v.kind === "const-tensor" &&
    (v.tensor.dtype === "int64" || v.tensor.dtype === "float64") &&
    v.tensor.shape.length === 0
  )
    return staticValue(Number(v.tensor.item()));
  return null;
}

const num = (s: StaticValue): number => s.value as number;

/** A tensor operand pair with one element type: an integer side meets a float side as float. */
function operands(c: OpContext, a: TsValue | undefined, b: TsValue | undefined): [TensorValue, TensorValue] {
  if (a === undefined || b === undefined) return refuse("an operand is missing");
  const like: ElementType =
    [a, b].some((v) => v.kind === "tensor" && v.dtype === "float32") ||
    [a, b].some((v) => v.kind === "const-tensor" && v.tensor.dtype === "float32")
      ? "float32"
      : "int64";
  const cast = (v: TensorValue): TensorValue =>
    v.dtype === like ? v : { ...v, name: c.g.op("Cast", [v.name], { to: ONNX_TYPES[like] }), dtype: like };
  return [cast(c.tensor(a, "self", like)), cast(c.tensor(b, "other", like))];
}

function elementwise(c: OpContext, op: string, x: TensorValue, y: TensorValue): TensorValue {
  return { kind: "tensor", name: c.g.op(op, [x.name, y.name]), dims: broadcastDims(x.dims, y.dims), dtype: x.dtype };
}

/** alpha * y for add/sub's alpha argument (1 leaves y as it is). */
function scaled(c: OpContext, y: TensorValue, alpha: TsValue | undefined): TensorValue {
  const k = alpha === undefined ? 1 : float(alpha, "alpha");
  if (k === 1) return y;
  const factor = y.dtype === "float32" ? c.g.constFloat([k], []) : c.g.constInt64([k], []);
  return { ...y, name: c.g.op("Mul", [y.name, factor]) };
}

/** Integer arithmetic at run time: int64 scalars of the graph. */
function intOp(c: OpContext, op: string, a: Scalar, b: Scalar, what: string): DynamicInt {
  for (const s of [a, b])
    if (s.kind === "static" && !Number.isInteger(s.value))
      refuse(`${what} of a run-time integer and the non-integer ${String(s.value)} is not supported`);
  return { kind: "int", name: c.g.op(op, [intScalar(c.g, a, what), intScalar(c.g, b, what)]) };
}

function binary(op: "Add" | "Sub" | "Mul", fold: (p: number, q: number) => number): OpFn {
  return (c, [a, b, alpha]) => {
    const [sa, sb] = [scalarOf(a), scalarOf(b)];
    if (sa && sb) {
      const k = alpha === undefined ? 1 : float(alpha, "alpha");
      if (sa.kind === "static" && sb.kind === "static") return staticValue(fold(num(sa), k * num(sb)));
      if (k !== 1) refuse("alpha other than 1 on run-time integers is not supported");
      return intOp(c, op, sa, sb, op.toLowerCase());
    }
    const [x, y] = operands(c, a, b);
    return elementwise(c, op, x, alpha === undefined ? y : scaled(c, y, alpha));
  };
}

// aten::div(a, b) and aten::div(a, b, rounding_mode)
const div: OpFn = (c, [a, b, mode]) => {
  const rounding =
    mode === undefined || (mode.kind === "static" && mode.value === null)
      ? null
      : mode.kind === "static"
        ? mode.value
        : undefined;
  if (rounding !== null && rounding !== "floor" && rounding !== "trunc")
    return refuse(`rounding_mode must be None, "floor" or "trunc", got ${mode ? describe(mode) : "nothing"}`);
  const [sa, sb] = [scalarOf(a), scalarOf(b)];
  if (sa && sb) {
    if (sa.kind === "static" && sb.kind === "static") {
      const q = num(sa) / num(sb);
      return staticValue(rounding === "floor" ? Math.floor(q) : rounding === "trunc" ? Math.trunc(q) : q);
    }
    // Sizes are never negative, so int64 Div (which truncates) is also the floor.
    if (rounding === null) refuse("true division of a run-time integer gives a run-time float, which is not supported");
    return intOp(c, "Div", sa, sb, "div");
  }
  const [x, y] = operands(c, a, b);
  if (x.dtype !== "float32") refuse("division of integer tensors is not supported");
  const q = elementwise(c, "Div", x, y);
  if (rounding === "trunc") refuse('div with rounding_mode "trunc" on tensors is not supported');
  return rounding === "floor" ? { ...q, name: c.g.op("Floor", [q.name]) } : q;
};

// aten::floordiv(int, int) and aten::floor_divide(Tensor, Tensor): sizes in traced and scripted code.
const floordiv: OpFn = (c, [a, b]) => div(c, [a as TsValue, b as TsValue, staticValue("floor")]);

// aten::rsub(self, other, alpha) = other - alpha * self
const rsub: OpFn = (c, [a, b, alpha]) =>
  binary("Sub", (p, q) => p - q)(c, [b as TsValue, a as TsValue, ...(alpha ? [alpha] : [])]);

function unaryMath(op: string, fold: (x: number) => number): OpFn {
  return (c, [a]) => {
    const s = scalarOf(a);
    if (s?.kind === "static") return staticValue(fold(num(s)));
    if (s?.kind === "int" && op === "Neg") return { kind: "int", name: c.g.op("Neg", [s.name]) };
    if (s) refuse(`${op.toLowerCase()} of a run-time integer is not supported`);
    const x = c.tensor(a as TsValue, "self", "float32");
    if (x.dtype !== "float32") refuse(`${op.toLowerCase()} of an integer tensor is not supported`);
    const y = op === "Rsqrt" ? c.g.op("Reciprocal", [c.g.op("Sqrt", [x.name])]) : c.g.op(op, [x.name]);
    return { ...x, name: y };
  };
}

// aten::pow(self, exponent): tensor ** number, tensor ** tensor, number ** number.
const pow: OpFn = (c, [a, b]) => {
  const [sa, sb] = [scalarOf(a), scalarOf(b)];
  if (sa?.kind === "static" && sb?.kind === "static") return staticValue(num(sa) ** num(sb));
  const [x, y] = operands(c, a, b);
  if (x.dtype !== "float32") refuse("pow of integer tensors is not supported");
  return elementwise(c, "Pow", x, y);
};

// ---- comparisons and logic on values known when exporting (shape and flag tests) ----

function known(v: TsValue | undefined, what: string): Static {
  const s = scalarOf(v);
  if (s?.kind === "static") return s.value;
  if (v?.kind === "static") return v.value;
  if (v?.kind === "int")
    refuse(`${what} of a size known only at run time (control flow on the input's shape is not supported)`);
  if (v?.kind === "tensor")
    refuse(`${what} of a tensor computed from the input (control flow on the input's values is not supported)`);
  return refuse(`${what} of ${v === undefined ? "nothing" : describe(v)}, which is not known when exporting`);
}

function compare(test: (p: Static, q: Static) => boolean, what: string): OpFn {
  return (_c, [a, b]) => staticValue(test(known(a, what), known(b, what)));
}

const same = (p: Static, q: Static): boolean =>
  JSON.stringify(p, (_k, x: unknown) => (typeof x === "bigint" ? String(x) : x)) ===
  JSON.stringify(q, (_k, x: unknown) => (typeof x === "bigint" ? String(x) : x));
const order = (p: Static, q: Static): number => {
  if (typeof p !== "number" || typeof q !== "number") return refuse("ordering comparisons need numbers");
  return p - q;
};

/** `is None` / `is not None`: a tensor, a list or a run-time integer is never None. */
function isNoneTest(negate: boolean): OpFn {
  return (_c, [a, b]) => {
    const none = (v: TsValue | undefined): boolean => v?.kind === "static" && v.value === null;
    if (!none(a) && !none(b) && a?.kind === "static" && b?.kind === "static")
      return staticValue(same(a.value, b.value) !== negate);
    return staticValue((none(a) && none(b)) !== negate);
  };
}

function logic(fn: (p: boolean, q: boolean) => boolean): OpFn {
  return (_c, [a, b]) => {
    const p = known(a, "a logical operator");
    const q = b === undefined ? false : known(b, "a logical operator");
    return staticValue(fn(Boolean(p), Boolean(q)));
  };
}

// ---- conversions between numbers and tensors ----

/** prim::NumToTensor, aten::Int, aten::Float, aten::ScalarImplicit: a number stays the number it is (0-d tensors of sizes are numbers here). */
const asNumber: OpFn = (c, [a]) => {
  const s = scalarOf(a);
  if (s) return s;
  if (a?.kind === "const-tensor" && a.tensor.shape.length === 0) return staticValue(Number(a.tensor.item()));
  if (a?.kind === "tensor" && a.dims.length === 0 && a.dtype === "int64") return { kind: "int", name: a.name };
  return refuse(`expected a number, got ${a === undefined ? "nothing" : describe(a)}`);
};

export const ARITH_OPS: Record<string, OpFn> = {
  "aten::add": binary("Add", (p, q) => p + q),
  "aten::add_": binary("Add", (p, q) => p + q),
  "aten::sub": binary("Sub", (p, q) => p - q),
  "aten::sub_": binary("Sub", (p, q) => p - q),
  "aten::mul": binary("Mul", (p, q) => p * q),
  "aten::mul_": binary("Mul", (p, q) => p * q),
  "aten::div": div,
  "aten::div_": div,
  "aten::floordiv": floordiv,
  "aten::floor_divide": floordiv,
  "aten::rsub": rsub,
  "aten::neg": unaryMath("Neg", (x) => -x),
  "aten::sqrt": unaryMath("Sqrt", Math.sqrt),
  "aten::rsqrt": unaryMath("Rsqrt", (x) => 1 / Math.sqrt(x)),
  "aten::exp": unaryMath("Exp", Math.exp),
  "aten::pow": pow,
  "aten::eq": compare(same, "the comparison =="),
  "aten::ne": compare((p, q) => !same(p, q), "the comparison !="),
  "aten::lt": compare((p, q) => order(p, q) < 0, "the comparison <"),
  "aten::le": compare((p, q) => order(p, q) <= 0, "the comparison <="),
  "aten::gt": compare((p, q) => order(p, q) > 0, "the comparison >"),
  "aten::ge": compare((p, q) => order(p, q) >= 0, "the comparison >="),
  "aten::__is__": isNoneTest(false),
  "aten::__isnot__": isNoneTest(true),
  "aten::__not__": logic((p) => !p),
  "aten::__and__": logic((p, q) => p && q),
  "aten::__or__": logic((p, q) => p || q),
  "prim::NumToTensor": asNumber,
  "aten::Int": asNumber,
  "aten::Float": asNumber,
  "aten::ScalarImplicit": asNumber,
};
