// ONNX translations of TorchScript's neural-network operators in evaluation mode: convolutions
// (grouped, depthwise, dilated, padded, strided), batch and layer norm, linear / matmul / addmm,
// activations, softmax, max / average / adaptive pooling, mean and sum, dropout (identity).
import { gelu } from "./layers.js";
import {
  axis,
  bool,
  float,
  int,
  ints,
  isNone,
  pair,
  refuse,
  staticValue,
  tensorLike,
  type Dim,
  type OpContext,
  type OpFn,
  type TensorValue,
  type TsValue,
} from "./torchscript-values.js";

function input(c: OpContext, v: TsValue | undefined, what: string): TensorValue {
  if (v === undefined) refuse(`${what} is missing`);
  const x = c.tensor(v, what);
  if (x.dtype !== "float32") refuse(`${what} must be a float32 tensor, got ${x.dtype}`);
  return x;
}

/** A list argument of one value per spatial dimension (a single value stands for all). */
function perAxis(v: TsValue | undefined, n: number, what: string, fallback?: number[]): number[] {
  const xs =
    v === undefined || (v.kind === "static" && Array.isArray(v.value) && v.value.length === 0 && fallback)
      ? (fallback ?? [])
      : ints(v, what);
  if (xs.length === 1 && n > 1) return new Array<number>(n).fill(xs[0] as number);
  if (xs.length !== n) refuse(`${what} must hold ${n} values, got [${xs.join(", ")}]`);
  return xs;
}

/** Output size of a convolution or pooling window along one axis; a symbol where the input size is one. */
function windowOut(c: OpContext, size: Dim, padTotal: number, k: number, stride: number, dilation: number): Dim {
  if (typeof size !== "number") return c.unknownDim();
  return Math.floor((size + padTotal - dilation * (k - 1) - 1) / stride) + 1;
}

// ---- convolution ----

interface ConvArgs {
  x: TsValue | undefined;
  weight: TsValue | undefined;
  bias: TsValue | undefined;
  stride: TsValue | undefined;
  padding: TsValue | undefined;
  dilation: TsValue | undefined;
  groups: TsValue | undefined;
}

function convolution(c: OpContext, a: ConvArgs): TensorValue {
  const x = input(c, a.x, "input");
  const w = input(c, a.weight, "weight");
  const spatial = x.dims.length - 2;
  if (spatial < 1 || w.dims.length !== spatial + 2)
    refuse(`input [${x.dims.join(", ")}] and weight [${w.dims.join(", ")}] are not a 1-, 2- or 3-d convolution`);
  const kernel = w.dims
    .slice(2)
    .map((k) => (typeof k === "number" ? k : refuse("the weight's kernel size must be known when exporting")));
  const stride = perAxis(a.stride, spatial, "stride");
  const dilation = perAxis(a.dilation, spatial, "dilation");
  const groups = int(a.groups, "groups");
  let before: number[];
  let after: number[];
  if (a.padding?.kind === "static" && typeof a.padding.value === "string") {
    // padding="same" puts an odd total's extra row/column at the end, as PyTorch does.
    if (a.padding.value === "valid") before = after = new Array<number>(spatial).fill(0);
    else if (a.padding.value === "same") {
      const total = kernel.map((k, i) => (dilation[i] as number) * (k - 1));
      before = total.map((t) => Math.floor(t / 2));
      after = total.map((t, i) => t - (before[i] as number));
    } else return refuse(`padding "${a.padding.value}" is not one of "same", "valid"`);
  } else before = after = perAxis(a.padding, spatial, "padding");
  const inputs = [x.name, w.name];
  if (!isNone(a.bias)) inputs.push(input(c, a.bias, "bias").name);
  const name = c.g.op("Conv", inputs, {
    kernel_shape: kernel,
    strides: stride,
    dilations: dilation,
    pads: [...before, ...after],
    group: groups,
  });
  const outSpatial = kernel.map((k, i) =>
    windowOut(
      c,
      x.dims[i + 2] as Dim,
      (before[i] as number) + (after[i] as number),
      k,
      stride[i] as number,
      dilation[i] as number,
    ),
  );
  return tensorLike(name, [x.dims[0] as Dim, w.dims[0] as Dim, ...outSpatial], x);
}

// aten::conv2d(input, weight, bias, stride, padding, dilation, groups); padding may be "same" or "valid".
const convNd: OpFn = (c, [x, weight, bias, stride, padding, dilation, groups]) =>
  convolution(c, { x, weight, bias, stride, padding, dilation, groups });

// aten::_convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...): what traced models record.
const convolutionOp: OpFn = (c, [x, weight, bias, stride, padding, dilation, transposed, , groups]) => {
  if (bool(transposed, "transposed")) refuse("transposed convolutions are not supported");
  return convolution(c, { x, weight, bias, stride, padding, dilation, groups });
};

// ---- normalisation ----

function ones(c: OpContext, dims: number[], fill: number): string {
  const n = dims.reduce((p, q) => p * q, 1);
  return c.g.constFloat(new Array<number>(n).fill(fill), dims);
}

// aten::batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)
const batchNorm: OpFn = (c, [xv, weight, bias, mean, variance, training, , eps]) => {
  const x = input(c, xv, "input");
  if (bool(training, "training"))
    refuse(
      "batch_norm runs in training mode (normalising each batch by its own statistics); export the model in evaluation mode",
    );
  if (isNone(mean) || isNone(variance))
    refuse(
      "batch_norm without running statistics normalises each batch by its own statistics; only running statistics can be exported",
    );
  const m = input(c, mean, "running_mean");
  const n = m.dims[0];
  if (typeof n !== "number") return refuse("running_mean must have a known length");
  const scale = isNone(weight) ? ones(c, [n], 1) : input(c, weight, "weight").name;
  const shift = isNone(bias) ? ones(c, [n], 0) : input(c, bias, "bias").name;
  const name = c.g.op("BatchNormalization", [x.name, scale, shift, m.name, input(c, variance, "running_var").name], {
    epsilon: { float: float(eps, "eps") },
  });
  return tensorLike(name, x.dims, x);
};

// aten::layer_norm(input, normalized_shape, weight, bias, eps, cudnn_enable)
const layerNorm: OpFn = (c, [xv, shape, weight, bias, eps]) => {
  const x = input(c, xv, "input");
  const dims = ints(shape, "normalized_shape");
  const scale = isNone(weight) ? ones(c, dims, 1) : input(c, weight, "weight").name;
  const shift = isNone(bias) ? ones(c, dims, 0) : input(c, bias, "bias").name;
  const name = c.g.op("LayerNormalization", [x.name, scale, shift], {
    axis: -dims.length,
    epsilon: { float: float(eps, "eps") },
  });
  return tensorLike(name, x.dims, x);
};

// ---- linear algebra ----

// aten::linear(input, weight, bias): Gemm for [N, in], MatMul with the transposed weight for more dims.
const linear: OpFn = (c, [xv, weight, bias]) => {
  const x = input(c, xv, "input");
  const w = input(c, weight, "weight");
  if (w.dims.length !== 2) refuse(`weight must be a matrix, got [${w.dims.join(", ")}]`);
  const dims = [...x.dims.slice(0, -1), w.dims[0] as Dim];
  const b = isNone(bias) ? null : input(c, bias, "bias").name;
  if (x.dims.length === 2)
    return tensorLike(c.g.op("Gemm", b === null ? [x.name, w.name] : [x.name, w.name, b], { transB: 1 }), dims, x);
  // onnxruntime folds the Transpose of an initializer when it loads the graph.
  const y = c.g.op("MatMul", [x.name, c.g.op("Transpose", [w.name], { perm: [1, 0] })]);
  return tensorLike(b === null ? y : c.g.op("Add", [y, b]), dims, x);
};

function matmulDims(a: Dim[], b: Dim[]): Dim[] {
  if (a.length === 1 && b.length === 1) return [];
  if (a.length === 1) return [...b.slice(0, -2), b.at(-1) as Dim];
  if (b.length === 1) return a.slice(0, -1);
  const batchA = a.slice(0, -2);
  const batchB = b.slice(0, -2);
  const rank = Math.max(batchA.length, batchB.length);
  const batch: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const x = batchA[batchA.length - rank + i] ?? 1;
    const y = batchB[batchB.length - rank + i] ?? 1;
    batch.push(x === 1 ? y : x);
  }
  return [...batch, a.at(-2) as Dim, b.at(-1) as Dim];
}

// aten::matmul / mm / bmm: ONNX MatMul has torch.matmul's broadcasting.
const matmul: OpFn = (c, [av, bv]) => {
  const a = input(c, av, "self");
  const b = input(c, bv, "other");
  return tensorLike(c.g.op("MatMul", [a.name, b.name]), matmulDims(a.dims, b.dims), a);
};

// aten::addmm(self, mat1, mat2, beta, alpha) = beta * self + alpha * mat1 @ mat2
const addmm: OpFn = (c, [bias, m1, m2, beta, alpha]) => {
  const a = input(c, m1, "mat1");
  const b = input(c, m2, "mat2");
  if (a.dims.length !== 2 || b.dims.length !== 2) refuse("addmm takes matrices");
  const attrs = {
    alpha: { float: alpha === undefined ? 1 : float(alpha, "alpha") },
    beta: { float: beta === undefined ? 1 : float(beta, "beta") },
  };
  return tensorLike(
    c.g.op("Gemm", [a.name, b.name, input(c, bias, "self").name], attrs),
    [a.dims[0] as Dim, b.dims[1] as Dim],
    a,
  );
};

// ---- activations ----

function unary(op: string, attrs: Record<string, number | { float: number }> = {}): OpFn {
  return (c, [xv]) => {
    const x = input(c, xv, "input");
    return tensorLike(c.g.op(op, [x.name], attrs), x.dims, x);
  };
}

const silu: OpFn = (c, [xv]) => {
  const x = input(c, xv, "input");
  return tensorLike(c.g.op("Mul", [x.name, c.g.op("Sigmoid", [x.name])]), x.dims, x);
};

const geluOp: OpFn = (c, [xv, approximate]) => {
  const x = input(c, xv, "input");
  const mode = approximate === undefined ? "none" : approximate.kind === "static" ? approximate.value : null;
  if (mode !== "none" && mode !== "tanh")
    refuse(`gelu approximate must be "none" or "tanh", got ${JSON.stringify(mode)}`);
  return tensorLike(gelu(c.g, x.name, mode), x.dims, x);
};

const hardtanh: OpFn = (c, [xv, lo, hi]) => {
  const x = input(c, xv, "input");
  const min = lo === undefined ? -1 : float(lo, "min_val");
  const max = hi === undefined ? 1 : float(hi, "max_val");
  return tensorLike(c.g.op("Clip", [x.name, c.g.constFloat([min], []), c.g.constFloat([max], [])]), x.dims, x);
};

const relu6: OpFn = (c, [xv]) => hardtanh(c, [xv as TsValue, staticValue(0), staticValue(6)]);

function softmaxLike(op: string): OpFn {
  return (c, [xv, dim, dtype]) => {
    const x = input(c, xv, "input");
    if (!isNone(dtype) && int(dtype, "dtype") !== 6) refuse("softmax with a dtype other than float32 is not supported");
    return tensorLike(c.g.op(op, [x.name], { axis: axis(int(dim, "dim"), x.dims.length, "dim") }), x.dims, x);
  };
}

// aten::dropout(input, p, train) and its variants: identity in evaluation mode.
const dropout: OpFn = (c, [xv, , train]) => {
  if (bool(train, "train")) refuse("dropout runs in training mode; export the model in evaluation mode");
  return input(c, xv, "input");
};

// ---- pooling ----

interface PoolArgs {
  kernel: number[];
  stride: number[];
  padding: number[];
  dilation: number[];
  ceil: boolean;
}

/**
 * ONNX pads and output dims of a PyTorch pooling window. With ceil_mode, PyTorch drops a last
 * window that would start in the padding; the exporter writes that as explicit end padding with
 * ceil_mode off, so both agree. Returns the extra end padding per axis.
 */
function poolGeometry(c: OpContext, x: TensorValue, p: PoolArgs): { pads: number[]; dims: Dim[]; extra: number[] } {
  const n = p.kernel.length;
  const extra: number[] = [];
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const size = x.dims[x.dims.length - n + i] as Dim;
    const [k, s, pad, d] = [p.kernel[i], p.stride[i], p.padding[i], p.dilation[i]] as [number, number, number, number];
    if (!p.ceil) {
      out.push(windowOut(c, size, 2 * pad, k, s, d));
      extra.push(0);
      continue;
    }
    if (typeof size !== "number")
      return refuse("ceil_mode pooling needs the input's spatial size known when exporting");
    let o = Math.ceil((size + 2 * pad - d * (k - 1) - 1) / s) + 1;
    if ((o - 1) * s >= size + pad) o--;
    out.push(o);
    extra.push(Math.max(0, (o - 1) * s + d * (k - 1) + 1 - (size + 2 * pad)));
  }
  return {
    pads: [...p.padding, ...p.padding.map((q, i) => q + (extra[i] as number))],
    dims: [...x.dims.slice(0, -n), ...out],
    extra,
  };
}

// aten::max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode); stride [] means the kernel size.
const maxPool2d: OpFn = (c, [xv, kernel, stride, padding, dilation, ceil]) => {
  const x = input(c, xv, "input");
  const k = pair(kernel, "kernel_size");
  const p: PoolArgs = {
    kernel: k,
    stride: perAxis(stride, 2, "stride", k),
    padding: perAxis(padding, 2, "padding"),
    dilation: perAxis(dilation, 2, "dilation"),
    ceil: ceil !== undefined && bool(ceil, "ceil_mode"),
  };
  const { pads, dims } = poolGeometry(c, x, p);
  return tensorLike(
    c.g.op("MaxPool", [x.name], { kernel_shape: p.kernel, strides: p.stride, pads, dilations: p.dilation }),
    dims,
    x,
  );
};

// aten::avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
const avgPool2d: OpFn = (c, [xv, kernel, stride, padding, ceil, countPad, divisor]) => {
  const x = input(c, xv, "input");
  if (!isNone(divisor)) refuse("avg_pool2d with divisor_override is not supported");
  const k = pair(kernel, "kernel_size");
  const p: PoolArgs = {
    kernel: k,
    stride: perAxis(stride, 2, "stride", k),
    padding: perAxis(padding, 2, "padding"),
    dilation: [1, 1],
    ceil: ceil !== undefined && bool(ceil, "ceil_mode"),
  };
  const includePad = countPad === undefined || bool(countPad, "count_include_pad");
  const { pads, dims, extra } = poolGeometry(c, x, p);
  // PyTorch counts the padding in a window's divisor but not what lies beyond it.
  if (includePad && extra.some((e) => e > 0))
    refuse("avg_pool2d with ceil_mode and count_include_pad on a window that runs past the padding is not supported");
  return tensorLike(
    c.g.op("AveragePool", [x.name], {
      kernel_shape: p.kernel,
      strides: p.stride,
      pads,
      count_include_pad: includePad ? 1 : 0,
    }),
    dims,
    x,
  );
};

/**
 * Adaptive pooling: global pooling for output 1x1; one pooling window where PyTorch's bins
 * (start floor(i*in/out), end ceil((i+1)*in/out)) are all the same size at a fixed stride; per
 * axis slices and reductions otherwise (the bins of the two axes are independent).
 */
function adaptivePool(kind: "avg" | "max"): OpFn {
  return (c, [xv, size]) => {
    const x = input(c, xv, "input");
    if (x.dims.length !== 4) refuse(`adaptive pooling takes [N, C, H, W], got [${x.dims.join(", ")}]`);
    const spec = size?.kind === "static" && Array.isArray(size.value) ? size.value : [int(size, "output_size")];
    const wanted = (spec.length === 1 ? [spec[0], spec[0]] : spec).map((v, i) => (v === null ? x.dims[2 + i] : v));
    if (wanted.length !== 2) refuse(`output_size must hold 1 or 2 values, got ${wanted.length}`);
    const dims = [x.dims[0] as Dim, x.dims[1] as Dim, ...(wanted as Dim[])];
    const onnx = kind === "avg" ? "AveragePool" : "MaxPool";
    const results = (y: string): TsValue[] => {
      const out = tensorLike(y, dims, x);
      return kind === "max"
        ? [out, { kind: "unavailable", why: "the indices of adaptive_max_pool2d (not exported)" }]
        : [out];
    };
    if (wanted[0] === 1 && wanted[1] === 1)
      return results(c.g.op(kind === "avg" ? "GlobalAveragePool" : "GlobalMaxPool", [x.name]));
    const bins = [0, 1].map((i) => {
      const inSize = x.dims[2 + i];
      const o = wanted[i];
      if (typeof inSize !== "number" || typeof o !== "number")
        return refuse("adaptive pooling to a size other than 1 needs the input's spatial size known when exporting");
      return Array.from(
        { length: o },
        (_, j) => [Math.floor((j * inSize) / o), Math.ceil(((j + 1) * inSize) / o)] as [number, number],
      );
    });
    const uniform = bins.map((b) => {
      const k = (b[0] as [number, number])[1] - (b[0] as [number, number])[0];
      const s = b.length > 1 ? (b[1] as [number, number])[0] - (b[0] as [number, number])[0] : 1;
      return b.every(([lo, hi], j) => hi - lo === k && lo === j * s) ? { k, s } : null;
    });
    const [u0, u1] = uniform;
    if (u0 && u1)
      return results(c.g.op(onnx, [x.name], { kernel_shape: [u0.k, u1.k], strides: [u0.s, u1.s], pads: [0, 0, 0, 0] }));
    const reduce = kind === "avg" ? "ReduceMean" : "ReduceMax";
    let y = x.name;
    for (const i of [0, 1]) {
      const ax = 2 + i;
      const parts = (bins[i] as [number, number][]).map(([lo, hi]) =>
        c.g.op(reduce, [c.g.op("Slice", [y, c.g.constInt64([lo]), c.g.constInt64([hi]), c.g.constInt64([ax])])], {
          axes: [ax],
          keepdims: 1,
        }),
      );
      y = parts.length === 1 ? (parts[0] as string) : c.g.op("Concat", parts, { axis: ax });
    }
    return results(y);
  };
}

// ---- reductions ----

/** aten::mean(input, dim, keepdim, dtype) or aten::mean(input, dtype): all dimensions when dim is missing or empty. */
function reduction(op: "ReduceMean" | "ReduceSum"): OpFn {
  return (c, args) => {
    const x = input(c, args[0], "input");
    const rank = x.dims.length;
    const overDims = args.length >= 3;
    const dimList = overDims && !isNone(args[1]) ? ints(args[1], "dim") : [];
    const keep = overDims ? bool(args[2], "keepdim") : false;
    const dtype = overDims ? args[3] : args[1];
    if (!isNone(dtype) && int(dtype, "dtype") !== 6)
      refuse("a reduction with a dtype other than float32 is not supported");
    const axes = (dimList.length === 0 ? x.dims.map((_, i) => i) : dimList.map((d) => axis(d, rank, "dim"))).sort(
      (p, q) => p - q,
    );
    const dims = x.dims.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
    // Opset 17: ReduceMean takes its axes as an attribute, ReduceSum as an input.
    const name =
      op === "ReduceMean"
        ? c.g.op(op, [x.name], { axes, keepdims: keep ? 1 : 0 })
        : c.g.op(op, [x.name, c.g.constInt64(axes)], { keepdims: keep ? 1 : 0 });
    return tensorLike(name, dims, x);
  };
}

export const NN_OPS: Record<string, OpFn> = {
  "aten::_convolution": convolutionOp,
  "aten::conv1d": convNd,
  "aten::conv2d": convNd,
  "aten::conv3d": convNd,
  "aten::batch_norm": batchNorm,
  "aten::layer_norm": layerNorm,
  "aten::linear": linear,
  "aten::matmul": matmul,
  "aten::mm": matmul,
  "aten::bmm": matmul,
  "aten::addmm": addmm,
  "aten::relu": unary("Relu"),
  "aten::relu_": unary("Relu"),
  "aten::relu6": relu6,
  "aten::hardtanh": hardtanh,
  "aten::hardtanh_": hardtanh,
  "aten::gelu": geluOp,
  "aten::silu": silu,
  "aten::silu_": silu,
  "aten::sigmoid": unary("Sigmoid"),
  "aten::sigmoid_": unary("Sigmoid"),
  "aten::tanh": unary("Tanh"),
  "aten::tanh_": unary("Tanh"),
  "aten::hardswish": unary("HardSwish"),
  "aten::hardswish_": unary("HardSwish"),
  "aten::hardsigmoid": unary("HardSigmoid", { alpha: { float: 1 / 6 }, beta: { float: 0.5 } }),
  "aten::hardsigmoid_": unary("HardSigmoid", { alpha: { float: 1 / 6 }, beta: { float: 0.5 } }),
  "aten::softmax": softmaxLike("Softmax"),
  "aten::log_softmax": softmaxLike("LogSoftmax"),
  "aten::dropout": dropout,
  "aten::dropout_": dropout,
  "aten::feature_dropout": dropout,
  "aten::alpha_dropout": dropout,
  "aten::feature_alpha_dropout": dropout,
  "aten::max_pool2d": maxPool2d,
  "aten::avg_pool2d": avgPool2d,
  "aten::adaptive_avg_pool2d": adaptivePool("avg"),
  "aten::adaptive_max_pool2d": adaptivePool("max"),
  "aten::mean": reduction("ReduceMean"),
  "aten::sum": reduction("ReduceSum"),
};
