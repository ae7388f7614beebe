// ONNX exporters of the nn layers (eval-mode forward of each): Conv, BatchNormalization, Gemm or
// MatMul+Add, LayerNormalization, activations, pooling, Flatten, and Sequential as a chain.
import { tidy } from "../engine/index.js";
import {
  AdaptiveAvgPool2d,
  AvgPool2d,
  BatchNorm2d,
  Conv2d,
  Dropout,
  Flatten,
  GELU,
  Identity,
  LayerNorm,
  Linear,
  MaxPool2d,
  ReLU,
  ReLU6,
  Sequential,
  Sigmoid,
  Tanh,
} from "../nn/index.js";
import type { IntPair } from "../nn/index.js";
import type { GraphBuilder, Value } from "./graph-builder.js";
import { rule, type ExportContext, type ModuleRule } from "./module-rule.js";

function pair(v: IntPair): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/** ONNX pads are [top, left, bottom, right] for 2-D. */
function symmetricPads(p: IntPair): number[] {
  const [h, w] = pair(p);
  return [h, w, h, w];
}

function conv(c: ExportContext, m: Conv2d, x: Value): Value {
  let pads: number[];
  if (m.padding === "valid") pads = [0, 0, 0, 0];
  else if (m.padding === "same") {
    // As Conv2d.forward: total dilation*(k-1); an odd total puts the extra row/column bottom/right.
    const totalH = m.dilation[0] * (m.kernelSize[0] - 1);
    const totalW = m.dilation[1] * (m.kernelSize[1] - 1);
    const top = Math.floor(totalH / 2);
    const left = Math.floor(totalW / 2);
    pads = [top, left, totalH - top, totalW - left];
  } else pads = symmetricPads(m.padding);
  const inputs = [x.name, c.param(m.weight, "weight")];
  const bias = m.bias;
  if (bias !== null) inputs.push(c.param(bias, "bias"));
  const name = c.g.op("Conv", inputs, {
    kernel_shape: [...m.kernelSize],
    strides: [...m.stride],
    dilations: [...m.dilation],
    pads,
    group: m.groups,
  });
  return { name, rank: 4 };
}

function batchNorm(c: ExportContext, m: BatchNorm2d, x: Value): Value {
  const mean = m.runningMean;
  const variance = m.runningVar;
  if (mean === null || variance === null) {
    throw new Error(
      "onnx export: BatchNorm2d without running statistics normalises every batch by its own statistics; only running statistics can be exported",
    );
  }
  const n = m.numFeatures;
  const w = m.weight;
  const b = m.bias;
  const scale = w === null ? c.g.constFloat(new Array<number>(n).fill(1)) : c.param(w, "weight");
  const shift = b === null ? c.g.constFloat(new Array<number>(n).fill(0)) : c.param(b, "bias");
  const name = c.g.op(
    "BatchNormalization",
    [x.name, scale, shift, c.param(mean, "running_mean"), c.param(variance, "running_var")],
    { epsilon: { float: m.eps } },
  );
  return { name, rank: x.rank };
}

function linear(c: ExportContext, m: Linear, x: Value): Value {
  const bias = m.bias;
  if (x.rank === 2) {
    const inputs = [x.name, c.param(m.weight, "weight")];
    if (bias !== null) inputs.push(c.param(bias, "bias"));
    return { name: c.g.op("Gemm", inputs, { transB: 1 }), rank: 2 };
  }
  // Gemm takes matrices only: tokens [N, T, D] go through MatMul with the transposed weight.
  const wt = tidy(() => {
    const t = m.weight.transpose(0, 1).contiguous();
    try {
      return c.param(t, "weight", [m.inFeatures, m.outFeatures]);
    } finally {
      t.dispose();
    }
  });
  let y = c.g.op("MatMul", [x.name, wt]);
  if (bias !== null) y = c.g.op("Add", [y, c.param(bias, "bias")]);
  return { name: y, rank: x.rank };
}

function layerNorm(c: ExportContext, m: LayerNorm, x: Value): Value {
  const dims = m.normalizedShape;
  const count = dims.reduce((a, b) => a * b, 1);
  const w = m.weight;
  const b = m.bias;
  const scale = w === null ? c.g.constFloat(new Array<number>(count).fill(1), dims) : c.param(w, "weight");
  const shift = b === null ? c.g.constFloat(new Array<number>(count).fill(0), dims) : c.param(b, "bias");
  const name = c.g.op("LayerNormalization", [x.name, scale, shift], { axis: -dims.length, epsilon: { float: m.eps } });
  return { name, rank: x.rank };
}

/** GELU from opset-17 operators (Gelu itself arrived in opset 20). */
export function gelu(g: GraphBuilder, x: string, approximate: "none" | "tanh"): string {
  const half = g.constFloat([0.5], []);
  const one = g.constFloat([1], []);
  let inner: string;
  if (approximate === "none") {
    // x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
    inner = g.op("Erf", [g.op("Div", [x, g.constFloat([Math.SQRT2], [])])]);
  } else {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    const cube = g.op("Mul", [g.op("Mul", [x, x]), x]);
    const poly = g.op("Add", [x, g.op("Mul", [cube, g.constFloat([0.044715], [])])]);
    inner = g.op("Tanh", [g.op("Mul", [poly, g.constFloat([Math.sqrt(2 / Math.PI)], [])])]);
  }
  return g.op("Mul", [g.op("Mul", [x, half]), g.op("Add", [inner, one])]);
}

function maxPool(c: ExportContext, m: MaxPool2d, x: Value): Value {
  const name = c.g.op("MaxPool", [x.name], {
    kernel_shape: pair(m.kernelSize),
    strides: pair(m.stride),
    pads: symmetricPads(m.padding),
    dilations: pair(m.dilation),
    ceil_mode: m.ceilMode ? 1 : 0,
  });
  return { name, rank: 4 };
}

function avgPool(c: ExportContext, m: AvgPool2d, x: Value): Value {
  const name = c.g.op("AveragePool", [x.name], {
    kernel_shape: pair(m.kernelSize),
    strides: pair(m.stride),
    pads: symmetricPads(m.padding),
    ceil_mode: m.ceilMode ? 1 : 0,
    count_include_pad: m.countIncludePad ? 1 : 0,
  });
  return { name, rank: 4 };
}

export function globalAveragePool(g: GraphBuilder, x: Value): Value {
  if (x.rank !== 4)
    throw new RangeError(`onnx export: global average pooling needs [N, C, H, W], got a rank-${x.rank} value`);
  return { name: g.op("GlobalAveragePool", [x.name]), rank: 4 };
}

/** flatten(1) of [N, ...] to [N, features]. */
export function flattenFrom1(g: GraphBuilder, x: Value): Value {
  return { name: g.op("Flatten", [x.name], { axis: 1 }), rank: 2 };
}

export const LAYER_RULES: readonly ModuleRule[] = [
  rule(Conv2d, conv),
  rule(BatchNorm2d, batchNorm),
  rule(Linear, linear),
  rule(LayerNorm, layerNorm),
  rule(ReLU, (c, _m, x) => ({ name: c.g.op("Relu", [x.name]), rank: x.rank })),
  rule(ReLU6, (c, _m, x) => ({
    name: c.g.op("Clip", [x.name, c.g.constFloat([0], []), c.g.constFloat([6], [])]),
    rank: x.rank,
  })),
  rule(GELU, (c, m, x) => ({ name: gelu(c.g, x.name, m.approximate), rank: x.rank })),
  rule(Sigmoid, (c, _m, x) => ({ name: c.g.op("Sigmoid", [x.name]), rank: x.rank })),
  rule(Tanh, (c, _m, x) => ({ name: c.g.op("Tanh", [x.name]), rank: x.rank })),
  // Evaluation mode: dropout and identity pass values through.
  rule(Identity, (_c, _m, x) => x),
  rule(Dropout, (_c, _m, x) => x),
  rule(Flatten, (c, m, x) => {
    const end = m.endDim < 0 ? m.endDim + x.rank : m.endDim;
    if (m.startDim !== 1 || end !== x.rank - 1) {
      throw new RangeError(
        `onnx export: Flatten(startDim=${m.startDim}, endDim=${m.endDim}) on a rank-${x.rank} value: only flattening every dimension after the batch is supported`,
      );
    }
    return flattenFrom1(c.g, x);
  }),
  rule(MaxPool2d, maxPool),
  rule(AvgPool2d, avgPool),
  rule(AdaptiveAvgPool2d, (c, m, x) => {
    const [h, w] = pair(m.outputSize);
    if (h !== 1 || w !== 1)
      throw new RangeError(
        `onnx export: AdaptiveAvgPool2d to ${h}x${w}: only output size 1 (global average pooling) is supported`,
      );
    return globalAveragePool(c.g, x);
  }),
  rule(Sequential, (c, m, x) => m.namedChildren().reduce((v, [name, child]) => c.child(child, name, v), x)),
];
