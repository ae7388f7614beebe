#include "handles.h"

#include <atomic>
#include <cmath>

namespace bx {

static std::atomic<int64_t> gLive{0};

int64_t liveHandles() { return gLive.load(); }

static void release(Handle* h) {
  if (!h->disposed) {
    h->disposed = true;
    h->tensor = torch::Tensor();
    gLive--;
  }
}

Napi::Value wrap(Napi::Env env, torch::Tensor t) {
  auto* h = new Handle{std::move(t), false};
  gLive++;
  return Napi::External<Handle>::New(env, h, [](Napi::Env, Handle* p) {
    release(p);
    delete p;
  });
}

torch::Tensor& unwrap(const Napi::Value& v) {
  Handle* h = v.As<Napi::External<Handle>>().Data();
  if (h->disposed) throw std::runtime_error("tensor was disposed");
  return h->tensor;
}

Napi::Value disposeHandle(const Napi::CallbackInfo& info) {
  release(info[0].As<Napi::External<Handle>>().Data());
  return info.Env().Undefined();
}

bool isTensor(const Napi::Value& v) { return v.IsExternal(); }

torch::Scalar scalar(const Napi::Value& v) {
  if (v.IsBoolean()) return torch::Scalar(v.As<Napi::Boolean>().Value());
  // JS has one number type; an integral value becomes an integer scalar (like a Python int),
  // so in-place updates of integer tensors work and float tensors still promote as usual.
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::nearbyint(d) == d && std::fabs(d) <= 9007199254740992.0) return torch::Scalar(static_cast<int64_t>(d));
  return torch::Scalar(d);
}

c10::optional<torch::Tensor> optTensor(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::nullopt;
  return unwrap(v);
}

std::vector<torch::Tensor> tensorList(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<torch::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(unwrap(arr.Get(i)));
  return out;
}

std::vector<int64_t> intList(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().Int64Value();
  return out;
}

c10::optional<std::vector<int64_t>> optIntList(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::nullopt;
  return intList(v);
}

torch::ScalarType scalarType(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "float64") return torch::kFloat64;
  if (name == "float16") return torch::kFloat16;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "int64") return torch::kInt64;
  if (name == "int32") return torch::kInt32;
  if (name == "int16") return torch::kInt16;
  if (name == "int8") return torch::kInt8;
  if (name == "uint8") return torch::kUInt8;
  if (name == "bool") return torch::kBool;
  throw std::runtime_error("unknown dtype '" + name + "'");
}

std::string dtypeName(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: return std::string(c10::toString(t));
  }
}

torch::Device device(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return torch::Device(torch::kCPU);
  return torch::Device(v.As<Napi::String>().Utf8Value());
}

torch::TensorOptions options(const Napi::Value& dtype, const Napi::Value& dev) {
  auto o = torch::TensorOptions().device(device(dev));
  if (!dtype.IsUndefined() && !dtype.IsNull()) o = o.dtype(scalarType(dtype.As<Napi::String>().Utf8Value()));
  return o;
}

void def(Napi::Env env, Napi::Object exports, const char* name, Body body) {
  std::string opName(name);
  auto fn = Napi::Function::New(
      env,
      [body, opName](const Napi::CallbackInfo& info) -> Napi::Value {
        try {
          return body(info);
        } catch (const Napi::Error&) {
          throw;
        } catch (const c10::Error& e) {
          throw Napi::Error::New(info.Env(), opName + ": " + e.what_without_backtrace());
        } catch (const std::exception& e) {
          throw Napi::Error::New(info.Env(), opName + ": " + e.what());
        }
      },
      name);
  exports.Set(name, fn);
}

}  // namespace bx
