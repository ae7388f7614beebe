// Tensor creation, export to bytes, metadata, and dtype/device conversion.
#include "handles.h"

#include <cstring>

namespace bx {

static Napi::Value shapeOf(const torch::Tensor& t, Napi::Env env) {
  auto sizes = t.sizes();
  auto arr = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
  return arr;
}

void registerCreation(Napi::Env env, Napi::Object exports) {
  // fromBytes(view: TypedArray|Buffer, dtype, shape, device?) — copies the bytes.
  def(env, exports, "fromBytes", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto view = info[0].As<Napi::TypedArray>();
    auto buf = view.ArrayBuffer();
    auto* data = static_cast<uint8_t*>(buf.Data()) + view.ByteOffset();
    auto dtype = scalarType(str(info, 1));
    auto shape = intList(info[2]);
    auto t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
    if (static_cast<size_t>(t.nbytes()) != view.ByteLength())
      throw std::runtime_error("byte length " + std::to_string(view.ByteLength()) + " does not match shape and dtype (" +
                               std::to_string(t.nbytes()) + " bytes)");
    if (t.nbytes() > 0) std::memcpy(t.data_ptr(), data, t.nbytes());
    auto dev = device(info[3]);
    if (!dev.is_cpu()) t = t.to(dev);
    return wrap(info.Env(), t);
  });
  // toBytes(t) -> ArrayBuffer with the contiguous CPU bytes.
  def(env, exports, "toBytes", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto t = T(info, 0).detach().to(torch::kCPU).contiguous();
    auto out = Napi::ArrayBuffer::New(info.Env(), t.nbytes());
    if (t.nbytes() > 0) std::memcpy(out.Data(), t.data_ptr(), t.nbytes());
    return out;
  });
  def(env, exports, "item", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto& t = T(info, 0);
    if (t.scalar_type() == torch::kBool) return Napi::Boolean::New(info.Env(), t.item<bool>());
    return Napi::Number::New(info.Env(), t.item<double>());
  });
  def(env, exports, "shape", [](const Napi::CallbackInfo& info) -> Napi::Value { return shapeOf(T(info, 0), info.Env()); });
  def(env, exports, "dtype", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), dtypeName(T(info, 0).scalar_type()));
  });
  def(env, exports, "device", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::String::New(info.Env(), T(info, 0).device().str());
  });
  def(env, exports, "zeros", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::zeros(intList(info[0]), options(info[1], info[2])));
  });
  def(env, exports, "empty", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::empty(intList(info[0]), options(info[1], info[2])));
  });
  def(env, exports, "ones", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::ones(intList(info[0]), options(info[1], info[2])));
  });
  def(env, exports, "full", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::full(intList(info[0]), scalar(info[1]), options(info[2], info[3])));
  });
  def(env, exports, "arange", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::arange(scalar(info[0]), scalar(info[1]), scalar(info[2]), options(info[3], info[4])));
  });
  def(env, exports, "linspace", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::linspace(scalar(info[0]), scalar(info[1]), i64(info, 2), options(info[3], info[4])));
  });
  def(env, exports, "eye", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::eye(i64(info, 0), options(info[1], info[2])));
  });
  def(env, exports, "rand", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::rand(intList(info[0]), options(info[1], info[2])));
  });
  def(env, exports, "randn", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::randn(intList(info[0]), options(info[1], info[2])));
  });
  def(env, exports, "randint", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::randint(i64(info, 0), i64(info, 1), intList(info[2]), options(info[3], info[4])));
  });
  def(env, exports, "randperm", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::randperm(i64(info, 0), options(info[1], info[2])));
  });
  def(env, exports, "bernoulli", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::bernoulli(T(info, 0)));
  });
  def(env, exports, "multinomial", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), torch::multinomial(T(info, 0), i64(info, 1), flag(info, 2)));
  });
  // In-place initialisers used by nn.init (run under no-grad by the caller).
  def(env, exports, "uniform_", [](const Napi::CallbackInfo& info) -> Napi::Value {
    T(info, 0).uniform_(f64(info, 1), f64(info, 2));
    return info.Env().Undefined();
  });
  def(env, exports, "normal_", [](const Napi::CallbackInfo& info) -> Napi::Value {
    T(info, 0).normal_(f64(info, 1), f64(info, 2));
    return info.Env().Undefined();
  });
  def(env, exports, "to", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto& t = T(info, 0);
    auto dev = info[1].IsUndefined() || info[1].IsNull() ? t.device() : device(info[1]);
    auto dt = info[2].IsUndefined() || info[2].IsNull() ? t.scalar_type() : scalarType(str(info, 2));
    return wrap(info.Env(), t.to(dev, dt));
  });
  def(env, exports, "clone", [](const Napi::CallbackInfo& info) -> Napi::Value { return wrap(info.Env(), T(info, 0).clone()); });
  def(env, exports, "detach", [](const Napi::CallbackInfo& info) -> Napi::Value { return wrap(info.Env(), T(info, 0).detach()); });
  def(env, exports, "contiguous", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return wrap(info.Env(), T(info, 0).contiguous());
  });
  // A second handle to the same tensor (shares storage and autograd identity).
  def(env, exports, "alias", [](const Napi::CallbackInfo& info) -> Napi::Value { return wrap(info.Env(), T(info, 0)); });
}

}  // namespace bx
