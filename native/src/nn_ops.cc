// Neural-network functionals: convolution, normalisation, pooling, losses, resampling.
#include "handles.h"

namespace bx {

using CI = const Napi::CallbackInfo&;

static int64_t reductionOf(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw std::runtime_error("unknown reduction '" + r + "'");
}

void registerNnOps(Napi::Env env, Napi::Object exports) {
  // linear(x, weight, bias?)
  def(env, exports, "linear", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::linear(T(info, 0), T(info, 1), optTensor(info[2])));
  });
  // conv2d(x, weight, bias?, stride[2], padding[2], dilation[2], groups)
  def(env, exports, "conv2d", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::conv2d(T(info, 0), T(info, 1), optTensor(info[2]), intList(info[3]), intList(info[4]),
                                          intList(info[5]), i64(info, 6)));
  });
  // convTranspose2d(x, weight, bias?, stride, padding, outputPadding, groups, dilation)
  def(env, exports, "convTranspose2d", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::conv_transpose2d(T(info, 0), T(info, 1), optTensor(info[2]), intList(info[3]), intList(info[4]),
                                                    intList(info[5]), i64(info, 6), intList(info[7])));
  });
  // batchNorm(x, weight?, bias?, runningMean?, runningVar?, training, momentum, eps)
  // In training mode libtorch updates the running statistics in place.
  def(env, exports, "batchNorm", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::batch_norm(T(info, 0), optTensor(info[1]), optTensor(info[2]), optTensor(info[3]),
                                              optTensor(info[4]), flag(info, 5), f64(info, 6), f64(info, 7), true));
  });
  // layerNorm(x, normalizedShape, weight?, bias?, eps)
  def(env, exports, "layerNorm", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::layer_norm(T(info, 0), intList(info[1]), optTensor(info[2]), optTensor(info[3]), f64(info, 4), true));
  });
  def(env, exports, "softmax", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::softmax(T(info, 0), i64(info, 1))); });
  def(env, exports, "logSoftmax", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::log_softmax(T(info, 0), i64(info, 1))); });
  // crossEntropy(logits, target, reduction, labelSmoothing): int64 class indices or float probabilities.
  def(env, exports, "crossEntropy", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::cross_entropy_loss(T(info, 0), T(info, 1), {}, reductionOf(str(info, 2)), -100, f64(info, 3)));
  });
  def(env, exports, "nllLoss", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::nll_loss(T(info, 0), T(info, 1), {}, reductionOf(str(info, 2))));
  });
  def(env, exports, "mseLoss", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::mse_loss(T(info, 0), T(info, 1), reductionOf(str(info, 2))));
  });
  def(env, exports, "bceWithLogits", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::binary_cross_entropy_with_logits(T(info, 0), T(info, 1), {}, {}, reductionOf(str(info, 2))));
  });
  def(env, exports, "dropout", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::dropout(T(info, 0), f64(info, 1), flag(info, 2))); });
  // maxPool2d(x, kernel[2], stride[2], padding[2], dilation[2], ceilMode)
  def(env, exports, "maxPool2d", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::max_pool2d(T(info, 0), intList(info[1]), intList(info[2]), intList(info[3]), intList(info[4]), flag(info, 5)));
  });
  // avgPool2d(x, kernel[2], stride[2], padding[2], ceilMode, countIncludePad)
  def(env, exports, "avgPool2d", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::avg_pool2d(T(info, 0), intList(info[1]), intList(info[2]), intList(info[3]), flag(info, 4), flag(info, 5)));
  });
  def(env, exports, "adaptiveAvgPool2d", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::adaptive_avg_pool2d(T(info, 0), intList(info[1])));
  });
  // interpolate(x, size[2], mode, alignCorners) for 4-D inputs.
  def(env, exports, "interpolate", [](CI info) -> Napi::Value {
    auto& x = T(info, 0);
    auto size = intList(info[1]);
    auto mode = str(info, 2);
    bool align = flag(info, 3);
    if (mode == "nearest") return wrap(info.Env(), torch::upsample_nearest2d(x, size));
    if (mode == "bilinear") return wrap(info.Env(), torch::upsample_bilinear2d(x, size, align));
    if (mode == "bicubic") return wrap(info.Env(), torch::upsample_bicubic2d(x, size, align));
    throw std::runtime_error("unknown mode '" + mode + "' (expected nearest, bilinear or bicubic)");
  });
  // gridSample(x, grid, mode, paddingMode, alignCorners)
  def(env, exports, "gridSample", [](CI info) -> Napi::Value {
    auto mode = str(info, 2), pad = str(info, 3);
    int64_t m = mode == "bilinear" ? 0 : mode == "nearest" ? 1 : mode == "bicubic" ? 2 : -1;
    int64_t p = pad == "zeros" ? 0 : pad == "border" ? 1 : pad == "reflection" ? 2 : -1;
    if (m < 0) throw std::runtime_error("unknown mode '" + mode + "'");
    if (p < 0) throw std::runtime_error("unknown padding mode '" + pad + "'");
    return wrap(info.Env(), torch::grid_sampler(T(info, 0), T(info, 1), m, p, flag(info, 4)));
  });
  def(env, exports, "affineGrid", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::affine_grid_generator(T(info, 0), intList(info[1]), flag(info, 2)));
  });
}

}  // namespace bx
