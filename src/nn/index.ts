// The nn layer: modules with PyTorch's names and state-dict keys, initialisers, containers.
// Use as `import * as nn from "./nn/index.js"`: nn.Conv2d, nn.init.kaimingUniform_, ...
export { Module, type AnyModule, type StateDict, type LoadStateDictResult } from "./module.js";
export { StateDictError, type ShapeMismatch } from "./state-dict-error.js";
export * as init from "./init.js";
export { Linear, type LinearOptions } from "./linear.js";
export { Conv2d, type Conv2dOptions, type Conv2dPadding } from "./conv.js";
export { BatchNorm1d, BatchNorm2d, type BatchNormOptions } from "./batchnorm.js";
export { LayerNorm, type LayerNormOptions } from "./layernorm.js";
export { ReLU, ReLU6, GELU, Sigmoid, Tanh, type GELUApproximation } from "./activation.js";
export { Identity } from "./identity.js";
export { Flatten } from "./flatten.js";
export { Dropout } from "./dropout.js";
export { MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, type MaxPool2dOptions, type AvgPool2dOptions } from "./pooling.js";
export { Sequential } from "./sequential.js";
export { ModuleList } from "./module-list.js";
export {
  MultiheadAttention,
  type MultiheadAttentionOptions,
  type AttentionOptions,
  type AttentionOutput,
} from "./multihead-attention.js";
export type { IntPair } from "./options.js";
