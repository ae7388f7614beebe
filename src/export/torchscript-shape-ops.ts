// Shapes, lists and layout in a TorchScript graph: sizes (known when exporting, or read from the
// tensor at run time for the batch), lists and tuples, and the layout operators (reshape, view,
// flatten, permute, transpose, cat, stack, chunk, split, unbind, select, slice, squeeze, unsqueeze,
// expand, contiguous).
import {
  axis,
  describe,
  dimsOfList,
  int,
  intList,
  intScalar,
  ints,
  isNone,
  items,
  numel,
  refuse,
  sizeOf,
  staticValue,
  tensorLike,
  type Dim,
  type OpContext,
  type OpFn,
  type Static,
  type TensorValue,
  type TsValue,
} from "./torchscript-values.js";

function input(c: OpContext, v: TsValue | undefined, what = "input"): TensorValue {
  if (v === undefined) return refuse(`${what} is missing`);
  return c.tensor(v, what);
}

/** A list of values: static when every item is (so that later arithmetic and tests fold). */
export function listOf(xs: TsValue[], kind: "list" | "tuple" = "list"): TsValue {
  if (kind === "list" && xs.every((x) => x.kind === "static"))
    return staticValue(xs.map((x) => (x as { value: Static }).value));
  return { kind, items: xs };
}

// ---- sizes ----

// aten::size(self) → int[]; aten::size(self, dim) → int
const size: OpFn = (c, [xv, dim]) => {
  const x = input(c, xv);
  if (dim === undefined) return listOf(x.dims.map((_, i) => sizeOf(c.g, x, i)));
  return sizeOf(c.g, x, axis(int(dim, "dim"), x.dims.length, "dim"));
};

const dim: OpFn = (c, [xv]) => staticValue(input(c, xv).dims.length);

const len: OpFn = (_c, [v]) => staticValue(items(v, "len's argument").length);

// aten::__getitem__(list, index) and prim::TupleIndex(tuple, index)
const getItem: OpFn = (_c, [v, i]) => {
  const xs = items(v, "the indexed value");
  const k = int(i, "index");
  const item = xs[k < 0 ? k + xs.length : k];
  return item ?? refuse(`index ${k} is out of range for a list of ${xs.length}`);
};

const listConstruct: OpFn = (_c, args) => listOf(args);
const tupleConstruct: OpFn = (_c, args) => ({ kind: "tuple", items: args });
const unpack: OpFn = (_c, [v]) => items(v, "the unpacked value");

// ---- layout ----

/** The dims of reshape's result: -1 worked out where the sizes allow (a batch symbol on both sides cancels). */
function reshapeDims(c: OpContext, x: TensorValue, target: Dim[]): Dim[] {
  const hole = target.indexOf(-1);
  if (hole < 0) return target;
  const symbols = x.dims.filter((d): d is string => typeof d === "string");
  let known = 1;
  for (const d of x.dims) if (typeof d === "number") known *= d;
  let rest = 1;
  for (const [i, d] of target.entries()) {
    if (i === hole) continue;
    if (typeof d === "number") rest *= d;
    else {
      const at = symbols.indexOf(d);
      if (at < 0) return target.map((t, j) => (j === hole ? c.unknownDim() : t));
      symbols.splice(at, 1);
    }
  }
  const filled = symbols.length === 0 && rest > 0 && known % rest === 0 ? known / rest : c.unknownDim();
  return target.map((t, j) => (j === hole ? filled : t));
}

// aten::reshape(self, shape) / aten::view(self, size)
const reshape: OpFn = (c, [xv, shape]) => {
  const x = input(c, xv);
  const target = dimsOfList(c, shape as TsValue, "shape");
  // ONNX Reshape reads 0 as "copy this dimension"; PyTorch means an empty dimension.
  if (target.includes(0)) refuse("a reshape to an empty (size-0) dimension is not supported");
  return tensorLike(c.g.op("Reshape", [x.name, intList(c.g, shape as TsValue, "shape")]), reshapeDims(c, x, target), x);
};

// aten::flatten(self, start_dim, end_dim)
const flatten: OpFn = (c, [xv, s, e]) => {
  const x = input(c, xv);
  const rank = x.dims.length;
  if (rank === 0) return tensorLike(c.g.op("Reshape", [x.name, c.g.constInt64([1])]), [1], x);
  const start = axis(s === undefined ? 0 : int(s, "start_dim"), rank, "start_dim");
  const end = axis(e === undefined ? -1 : int(e, "end_dim"), rank, "end_dim");
  if (end < start) refuse(`flatten: end_dim ${end} is before start_dim ${start}`);
  if (end === start) return x;
  const merged = numel(x.dims.slice(start, end + 1));
  const dims = [...x.dims.slice(0, start), merged ?? c.unknownDim(), ...x.dims.slice(end + 1)];
  if (start === 1 && end === rank - 1) return tensorLike(c.g.op("Flatten", [x.name], { axis: 1 }), dims, x);
  // The kept dimensions come from the tensor's own shape at run time, the merged one is -1.
  const shape = c.g.op("Shape", [x.name]);
  const parts = [
    ...(start > 0 ? [c.g.op("Slice", [shape, c.g.constInt64([0]), c.g.constInt64([start])])] : []),
    c.g.constInt64([-1]),
    ...(end < rank - 1 ? [c.g.op("Slice", [shape, c.g.constInt64([end + 1]), c.g.constInt64([rank])])] : []),
  ];
  return tensorLike(
    c.g.op("Reshape", [x.name, parts.length === 1 ? (parts[0] as string) : c.g.op("Concat", parts, { axis: 0 })]),
    dims,
    x,
  );
};

function transposeBy(c: OpContext, x: TensorValue, perm: number[]): TensorValue {
  if (perm.every((p, i) => p === i)) return x;
  return tensorLike(
    c.g.op("Transpose", [x.name], { perm }),
    perm.map((p) => x.dims[p] as Dim),
    x,
  );
}

const permute: OpFn = (c, [xv, dims]) => {
  const x = input(c, xv);
  const perm = ints(dims, "dims").map((d) => axis(d, x.dims.length, "dims"));
  if (new Set(perm).size !== x.dims.length || perm.length !== x.dims.length)
    refuse(`permute: [${perm.join(", ")}] is not a permutation of ${x.dims.length} dimensions`);
  return transposeBy(c, x, perm);
};

const transpose: OpFn = (c, [xv, d0, d1]) => {
  const x = input(c, xv);
  const rank = x.dims.length;
  const [a, b] = [axis(int(d0, "dim0"), rank, "dim0"), axis(int(d1, "dim1"), rank, "dim1")];
  const perm = x.dims.map((_, i) => (i === a ? b : i === b ? a : i));
  return transposeBy(c, x, perm);
};

const t: OpFn = (c, [xv]) => {
  const x = input(c, xv);
  if (x.dims.length > 2) refuse(`t() takes at most 2 dimensions, got ${x.dims.length}`);
  return x.dims.length < 2 ? x : transposeBy(c, x, [1, 0]);
};

const identity: OpFn = (c, [xv]) => input(c, xv);

// aten::cat(tensors, dim)
const cat: OpFn = (c, [list, d]) => {
  const xs = items(list, "tensors").map((v, i) => input(c, v, `tensors[${i}]`));
  const first = xs[0] ?? refuse("cat of an empty list");
  const ax = axis(d === undefined ? 0 : int(d, "dim"), first.dims.length, "dim");
  const total = xs.reduce<Dim | null>(
    (sum, x) => (typeof sum === "number" && typeof x.dims[ax] === "number" ? sum + (x.dims[ax] as number) : null),
    0,
  );
  const dims = first.dims.map((dd, i) => (i === ax ? (total ?? c.unknownDim()) : dd));
  return xs.length === 1
    ? first
    : tensorLike(
        c.g.op(
          "Concat",
          xs.map((x) => x.name),
          { axis: ax },
        ),
        dims,
        first,
      );
};

// aten::stack(tensors, dim)
const stack: OpFn = (c, [list, d]) => {
  const xs = items(list, "tensors").map((v, i) => input(c, v, `tensors[${i}]`));
  const first = xs[0] ?? refuse("stack of an empty list");
  const ax = axis(d === undefined ? 0 : int(d, "dim"), first.dims.length + 1, "dim");
  const parts = xs.map((x) => c.g.op("Unsqueeze", [x.name, c.g.constInt64([ax])]));
  const dims = [...first.dims.slice(0, ax), xs.length, ...first.dims.slice(ax)];
  return tensorLike(parts.length === 1 ? (parts[0] as string) : c.g.op("Concat", parts, { axis: ax }), dims, first);
};

/** Split x along ax into pieces of the given sizes (static or run-time), as a list of tensors. */
function splitInto(c: OpContext, x: TensorValue, ax: number, sizes: TsValue[]): TsValue {
  if (sizes.length === 1) return listOf([x]);
  const outs = c.g.node(
    "Split",
    [x.name, intList(c.g, { kind: "list", items: sizes }, "split sizes")],
    { axis: ax },
    sizes.length,
  );
  return listOf(
    outs.map((name, i) => {
      const s = sizes[i] as TsValue;
      const d =
        s.kind === "static" && typeof s.value === "number"
          ? s.value
          : s.kind === "int" && s.dim !== undefined
            ? s.dim
            : c.unknownDim();
      return tensorLike(
        name,
        x.dims.map((dd, j) => (j === ax ? d : dd)),
        x,
      );
    }),
  );
}

function staticSize(x: TensorValue, ax: number, what: string): number {
  const n = x.dims[ax];
  return typeof n === "number" ? n : refuse(`${what} needs the size of dimension ${ax} known when exporting`);
}

/** Pieces of `each` (the last one smaller), as torch.split(int) and torch.chunk make them. */
function evenPieces(n: number, each: number): TsValue[] {
  const out: TsValue[] = [];
  for (let at = 0; at < n; at += each) out.push(staticValue(Math.min(each, n - at)));
  return out;
}

// aten::chunk(self, chunks, dim)
const chunk: OpFn = (c, [xv, k, d]) => {
  const x = input(c, xv);
  const ax = axis(int(d, "dim"), x.dims.length, "dim");
  const n = staticSize(x, ax, "chunk");
  return splitInto(c, x, ax, evenPieces(n, Math.ceil(n / int(k, "chunks"))));
};

// aten::split(self, split_size or split_sizes, dim) and aten::split_with_sizes(self, split_sizes, dim)
const split: OpFn = (c, [xv, sizes, d]) => {
  const x = input(c, xv);
  const ax = axis(d === undefined ? 0 : int(d, "dim"), x.dims.length, "dim");
  if (sizes?.kind === "static" && typeof sizes.value === "number")
    return splitInto(c, x, ax, evenPieces(staticSize(x, ax, "split"), sizes.value));
  return splitInto(c, x, ax, items(sizes, "split_sizes"));
};

// aten::unbind(self, dim): q, k, v = qkv.unbind(0)
const unbind: OpFn = (c, [xv, d]) => {
  const x = input(c, xv);
  const ax = axis(d === undefined ? 0 : int(d, "dim"), x.dims.length, "dim");
  const n = staticSize(x, ax, "unbind");
  const pieces = splitInto(c, x, ax, evenPieces(n, 1));
  return listOf(
    items(pieces, "pieces").map((p) => {
      const v = p as TensorValue;
      return tensorLike(
        c.g.op("Squeeze", [v.name, c.g.constInt64([ax])]),
        x.dims.filter((_, i) => i !== ax),
        x,
      );
    }),
  );
};

// aten::select(self, dim, index)
const select: OpFn = (c, [xv, d, i]) => {
  const x = input(c, xv);
  const ax = axis(int(d, "dim"), x.dims.length, "dim");
  if (i === undefined) return refuse("index is missing");
  const index = intScalar(c.g, i, "index");
  return tensorLike(
    c.g.op("Gather", [x.name, index], { axis: ax }),
    x.dims.filter((_, k) => k !== ax),
    x,
  );
};

// aten::slice(self, dim, start, end, step); None and INT64_MAX mean "from the start" and "to the end".
const slice: OpFn = (c, [xv, d, s, e, st]) => {
  const x = input(c, xv);
  const ax = axis(d === undefined ? 0 : int(d, "dim"), x.dims.length, "dim");
  const step = st === undefined ? 1 : int(st, "step");
  if (step < 1) refuse(`slice step must be positive, got ${step}`);
  const bound = (v: TsValue | undefined, fallback: number, what: string): { value: TsValue; known: number | null } => {
    if (isNone(v)) return { value: staticValue(fallback), known: fallback };
    if ((v as TsValue).kind === "int") return { value: v as TsValue, known: null };
    const n = int(v, what);
    const clamped = Number.isFinite(n) ? n : n > 0 ? Number.MAX_SAFE_INTEGER : -Number.MAX_SAFE_INTEGER;
    return { value: staticValue(clamped), known: clamped };
  };
  const start = bound(s, 0, "start");
  const end = bound(e, Number.MAX_SAFE_INTEGER, "end");
  const n = x.dims[ax];
  if (start.known === 0 && end.known === Number.MAX_SAFE_INTEGER && step === 1) return x;
  let out: Dim = c.unknownDim();
  if (typeof n === "number" && start.known !== null && end.known !== null) {
    const clamp = (k: number): number => Math.min(Math.max(k < 0 ? k + n : k, 0), n);
    out = Math.max(0, Math.ceil((clamp(end.known) - clamp(start.known)) / step));
  }
  const as1d = (v: TsValue, what: string): string =>
    c.g.op("Unsqueeze", [intScalar(c.g, v, what), c.g.constInt64([0])]);
  const name = c.g.op("Slice", [
    x.name,
    as1d(start.value, "start"),
    as1d(end.value, "end"),
    c.g.constInt64([ax]),
    c.g.constInt64([step]),
  ]);
  return tensorLike(
    name,
    x.dims.map((dd, k) => (k === ax ? out : dd)),
    x,
  );
};

// aten::squeeze(self), squeeze(self, dim), squeeze(self, dims): only dimensions of size 1 go, as in PyTorch.
const squeeze: OpFn = (c, [xv, d]) => {
  const x = input(c, xv);
  const rank = x.dims.length;
  const asked = d === undefined ? x.dims.map((_, i) => i) : ints(d, "dim").map((k) => axis(k, rank, "dim"));
  const axes = asked.filter((a) => {
    const n = x.dims[a];
    if (typeof n !== "number")
      return d === undefined ? false : refuse(`squeeze needs the size of dimension ${a} known when exporting`);
    return n === 1;
  });
  if (axes.length === 0) return x;
  return tensorLike(
    c.g.op("Squeeze", [x.name, c.g.constInt64(axes)]),
    x.dims.filter((_, i) => !axes.includes(i)),
    x,
  );
};

const unsqueeze: OpFn = (c, [xv, d]) => {
  const x = input(c, xv);
  const ax = axis(int(d, "dim"), x.dims.length + 1, "dim");
  return tensorLike(
    c.g.op("Unsqueeze", [x.name, c.g.constInt64([ax])]),
    [...x.dims.slice(0, ax), 1, ...x.dims.slice(ax)],
    x,
  );
};

// aten::expand(self, size, implicit): -1 keeps the tensor's own size.
const expand: OpFn = (c, [xv, sizeList]) => {
  const x = input(c, xv);
  const wanted = items(sizeList, "size");
  const offset = wanted.length - x.dims.length;
  if (offset < 0) refuse(`expand to ${wanted.length} dimensions from ${x.dims.length}`);
  const resolved = wanted.map((w, i) =>
    w.kind === "static" && w.value === -1
      ? i < offset
        ? refuse("expand: -1 in a new leading dimension")
        : sizeOf(c.g, x, i - offset)
      : w,
  );
  const dims = dimsOfList(c, { kind: "list", items: resolved }, "size");
  return tensorLike(c.g.op("Expand", [x.name, intList(c.g, { kind: "list", items: resolved }, "size")]), dims, x);
};

/**
 * aten::to in its dtype and device forms (`x.float()`, `x.to("cpu")`, `x.to(torch.float32)`): a
 * float32 tensor on the CPU stays what it is. ScalarType 6 is float32; a conversion to another
 * type, or to another tensor's type, is refused.
 */
const to: OpFn = (c, [xv, ...rest]) => {
  const x = input(c, xv);
  for (const [i, a] of rest.slice(0, 2).entries()) {
    if (a.kind !== "static")
      refuse(`to(): argument ${i + 1} is ${describe(a)}; only conversions to float32 on the CPU are supported`);
    const v = a.value;
    if (typeof v === "number" && v !== 6)
      refuse(`to(): a conversion to ScalarType ${v} is not supported (float32 is 6)`);
    if (typeof v === "string" && v !== "cpu")
      refuse(`to(): device "${v}" is not supported (the graph runs wherever onnxruntime does)`);
  }
  if (x.dtype !== "float32") refuse(`to(): a conversion of a ${x.dtype} tensor is not supported`);
  return x;
};

// contiguous's argument is a memory format: the graph has no layouts, so it passes values through.
export const SHAPE_OPS: Record<string, OpFn> = {
  "aten::size": size,
  "aten::dim": dim,
  "aten::len": len,
  "aten::__getitem__": getItem,
  "prim::TupleIndex": getItem,
  "prim::ListConstruct": listConstruct,
  "prim::TupleConstruct": tupleConstruct,
  "prim::ListUnpack": unpack,
  "prim::TupleUnpack": unpack,
  "aten::reshape": reshape,
  "aten::view": reshape,
  "aten::flatten": flatten,
  "aten::permute": permute,
  "aten::transpose": transpose,
  "aten::t": t,
  "aten::contiguous": identity,
  "aten::to": to,
  "aten::clone": identity,
  "aten::detach": identity,
  "aten::cat": cat,
  "aten::stack": stack,
  "aten::chunk": chunk,
  "aten::split": split,
  "aten::split_with_sizes": split,
  "aten::unbind": unbind,
  "aten::select": select,
  "aten::slice": slice,
  "aten::squeeze": squeeze,
  "aten::unsqueeze": unsqueeze,
  "aten::expand": expand,
};
