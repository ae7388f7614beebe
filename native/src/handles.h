// The boundary between JS and libtorch. JS holds opaque handles (napi Externals that own a
// heap torch::Tensor); every exported function converts libtorch exceptions into JS errors.
// TS validates arguments and builds friendly messages; this layer trusts its inputs.
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <c10/util/Optional.h>
#include <string>
#include <vector>

namespace bx {

struct Handle {
  torch::Tensor tensor;
  bool disposed = false;
};

Napi::Value wrap(Napi::Env env, torch::Tensor t);
torch::Tensor& unwrap(const Napi::Value& v);
c10::optional<torch::Tensor> optTensor(const Napi::Value& v);
std::vector<torch::Tensor> tensorList(const Napi::Value& v);
std::vector<int64_t> intList(const Napi::Value& v);
c10::optional<std::vector<int64_t>> optIntList(const Napi::Value& v);
torch::ScalarType scalarType(const std::string& name);
std::string dtypeName(torch::ScalarType t);
torch::Device device(const Napi::Value& v);  // "cpu", "cuda", "cuda:1"; undefined -> cpu
torch::TensorOptions options(const Napi::Value& dtype, const Napi::Value& dev);
// A number or a tensor handle, for binary ops that accept either.
bool isTensor(const Napi::Value& v);
torch::Scalar scalar(const Napi::Value& v);

int64_t liveHandles();
Napi::Value disposeHandle(const Napi::CallbackInfo& info);

inline int64_t i64(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().Int64Value(); }
inline double f64(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Number>().DoubleValue(); }
inline bool flag(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::Boolean>().Value(); }
inline std::string str(const Napi::CallbackInfo& info, size_t i) { return info[i].As<Napi::String>().Utf8Value(); }
inline torch::Tensor& T(const Napi::CallbackInfo& info, size_t i) { return unwrap(info[i]); }

using Body = Napi::Value (*)(const Napi::CallbackInfo&);

// Registers `body` as exports[name]; c10::Error and std::exception become JS errors
// prefixed with the op name, without libtorch's C++ backtrace.
void def(Napi::Env env, Napi::Object exports, const char* name, Body body);

void registerCreation(Napi::Env env, Napi::Object exports);
void registerOps(Napi::Env env, Napi::Object exports);
void registerNnOps(Napi::Env env, Napi::Object exports);
void registerAutograd(Napi::Env env, Napi::Object exports);
void registerRuntime(Napi::Env env, Napi::Object exports);
void registerJit(Napi::Env env, Napi::Object exports);

}  // namespace bx
