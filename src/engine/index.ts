// The engine's public surface: tensors, ops, scopes, autograd, runtime settings.
export { Tensor, type Scalar, type TensorOrScalar, formatShape } from "./tensor.js";
export { type DType, type TypedArray, DTYPES, isFloating } from "./dtype.js";
export { tidy, keep, dispose, type MemoryInfo } from "./scope.js";
export * from "./creation.js";
export * from "./combine.js";
export * as F from "./functional.js";
export { noGrad, enableGrad, inferenceMode, isGradEnabled, gradients } from "./autograd.js";
export {
  setNumThreads,
  getNumThreads,
  returnLargeBuffersToTheOs,
  setBlasThreads,
  manualSeed,
  cudaAvailable,
  cudaDeviceCount,
  libtorchVersion,
  memory,
  checkDevice,
  defaultDevice,
} from "./runtime.js";
