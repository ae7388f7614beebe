// TorchScript modules (torch.jit.script / torch.jit.trace saves) behind handles. The module's
// parameters and buffers come back as ordinary tensor handles that share storage with the
// module, so in-place optimizer updates on them change what the module computes.
#include "handles.h"
#include "jit.h"

#include <caffe2/serialize/versions.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <atomic>
#include <sstream>
#include <string>

namespace bx {

struct JitHandle {
  torch::jit::Module module;
  bool disposed = false;
};

static std::atomic<int64_t> gLiveModules{0};

static void releaseModule(JitHandle* h) {
  if (!h->disposed) {
    h->disposed = true;
    h->module = torch::jit::Module();
    gLiveModules--;
  }
}

static Napi::Value wrapModule(Napi::Env env, torch::jit::Module m) {
  auto* h = new JitHandle{std::move(m), false};
  gLiveModules++;
  return Napi::External<JitHandle>::New(env, h, [](Napi::Env, JitHandle* p) {
    releaseModule(p);
    delete p;
  });
}

torch::jit::Module& unwrapModule(const Napi::Value& v) {
  JitHandle* h = v.As<Napi::External<JitHandle>>().Data();
  if (h->disposed) throw std::runtime_error("TorchScript module was disposed");
  return h->module;
}

void registerJit(Napi::Env env, Napi::Object exports) {
  // The legacy graph executor, which keeps one plan per grad mode: the profiling executor's single
  // plan, once profiled while finetuning, holds autodiff subgraphs that save their inputs for
  // backward, and scoring in inference mode then fails ("Inference tensors cannot be saved for
  // backward"). Read when a method's executor is created, so it is set before any module loads.
  torch::jit::getExecutorMode() = false;
  def(env, exports, "jitLoad", [](const Napi::CallbackInfo& info) -> Napi::Value {
    // From the bytes the TS side has already checked and hashed, not from a path: the file could
    // be replaced between the check and the load. Always onto the CPU first: the TS side moves
    // the module where it is wanted.
    auto view = info[0].As<Napi::TypedArray>();
    const auto* data = static_cast<const char*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    std::istringstream in(std::string(data, view.ByteLength()));
    return wrapModule(info.Env(), torch::jit::load(in, torch::Device(torch::kCPU)));
  });
  def(env, exports, "jitDispose", [](const Napi::CallbackInfo& info) -> Napi::Value {
    releaseModule(info[0].As<Napi::External<JitHandle>>().Data());
    return info.Env().Undefined();
  });
  def(env, exports, "jitLiveModules", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(gLiveModules.load()));
  });
  def(env, exports, "jitTensors", [](const Napi::CallbackInfo& info) -> Napi::Value {
    // Parameters first, then buffers, each in the module's registration order (as state_dict).
    auto env = info.Env();
    auto& m = unwrapModule(info[0]);
    auto out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const auto& p : m.named_parameters(true)) {
      auto e = Napi::Object::New(env);
      e.Set("name", p.name);
      e.Set("kind", "parameter");
      e.Set("handle", wrap(env, p.value));
      out.Set(i++, e);
    }
    for (const auto& b : m.named_buffers(true)) {
      auto e = Napi::Object::New(env);
      e.Set("name", b.name);
      e.Set("kind", "buffer");
      e.Set("handle", wrap(env, b.value));
      out.Set(i++, e);
    }
    return out;
  });
  def(env, exports, "jitForward", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto& m = unwrapModule(info[0]);
    std::vector<torch::jit::IValue> inputs{T(info, 1)};
    auto result = m.forward(inputs);
    if (!result.isTensor()) {
      throw std::runtime_error("forward returned " + result.tagKind() + ", expected one Tensor (logits)");
    }
    return wrap(info.Env(), result.toTensor());
  });
  def(env, exports, "jitTrain", [](const Napi::CallbackInfo& info) -> Napi::Value {
    unwrapModule(info[0]).train(flag(info, 1));
    return info.Env().Undefined();
  });
  def(env, exports, "jitClone", [](const Napi::CallbackInfo& info) -> Napi::Value {
    // deepcopy: new parameter and buffer storage, same code. Without grad mode the copies are
    // leaves (clone() under autograd would hang them off the original's graph).
    torch::NoGradGuard noGrad;
    return wrapModule(info.Env(), unwrapModule(info[0]).deepcopy());
  });
  def(env, exports, "jitSave", [](const Napi::CallbackInfo& info) -> Napi::Value {
    unwrapModule(info[0]).save(str(info, 1));
    return info.Env().Undefined();
  });
  def(env, exports, "jitTo", [](const Napi::CallbackInfo& info) -> Napi::Value {
    unwrapModule(info[0]).to(device(info[1]));
    return info.Env().Undefined();
  });
  def(env, exports, "jitFormatVersions", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto o = Napi::Object::New(info.Env());
    o.Set("min", static_cast<double>(caffe2::serialize::kMinSupportedFileFormatVersion));
    o.Set("max", static_cast<double>(caffe2::serialize::kMaxSupportedFileFormatVersion));
    return o;
  });
  registerJitGraph(env, exports);
}

}  // namespace bx
