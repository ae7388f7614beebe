// Autograd: gradient flags, backward, .grad, and the no-grad / inference-mode switches.
#include "handles.h"

#include <memory>
#include <vector>

namespace bx {

using CI = const Napi::CallbackInfo&;

// Inference-mode guards are RAII objects; JS scopes enter and exit them in strict nesting
// order (the TS side guarantees it with try/finally), so a stack is enough. The stack is per
// thread: c10's inference mode is thread-local state, and the addon may be loaded in several
// worker_threads at once (the scoring service), each entering and leaving its own scopes — one
// shared stack would be a data race, and a guard destroyed on another thread would restore that
// thread's state instead of its own.
static thread_local std::vector<std::unique_ptr<c10::InferenceMode>> gInference;

void registerAutograd(Napi::Env env, Napi::Object exports) {
  def(env, exports, "setRequiresGrad", [](CI info) -> Napi::Value {
    T(info, 0).set_requires_grad(flag(info, 1));
    return info.Env().Undefined();
  });
  def(env, exports, "requiresGrad", [](CI info) -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info, 0).requires_grad()); });
  def(env, exports, "isLeaf", [](CI info) -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info, 0).is_leaf()); });
  def(env, exports, "retainGrad", [](CI info) -> Napi::Value { T(info, 0).retain_grad(); return info.Env().Undefined(); });
  // backward(t, gradient?, retainGraph)
  def(env, exports, "backward", [](CI info) -> Napi::Value {
    auto g = optTensor(info[1]);
    T(info, 0).backward(g ? *g : torch::Tensor(), flag(info, 2));
    return info.Env().Undefined();
  });
  def(env, exports, "grad", [](CI info) -> Napi::Value {
    const auto& g = T(info, 0).grad();
    if (!g.defined()) return info.Env().Null();
    return wrap(info.Env(), g);
  });
  def(env, exports, "setGrad", [](CI info) -> Napi::Value {
    auto g = optTensor(info[1]);
    T(info, 0).mutable_grad() = g ? *g : torch::Tensor();
    return info.Env().Undefined();
  });
  // gradients(outputs, inputs, gradOutputs?, retainGraph, createGraph) -> grads (null when unused)
  def(env, exports, "gradients", [](CI info) -> Napi::Value {
    auto outs = tensorList(info[0]);
    auto ins = tensorList(info[1]);
    std::vector<torch::Tensor> gouts;
    if (!info[2].IsNull() && !info[2].IsUndefined()) gouts = tensorList(info[2]);
    auto grads = torch::autograd::grad(outs, ins, gouts, flag(info, 3), flag(info, 4), true);
    auto arr = Napi::Array::New(info.Env(), grads.size());
    for (size_t i = 0; i < grads.size(); i++)
      arr.Set(static_cast<uint32_t>(i), grads[i].defined() ? wrap(info.Env(), grads[i]) : info.Env().Null());
    return arr;
  });
  def(env, exports, "setGradEnabled", [](CI info) -> Napi::Value {
    bool prev = c10::GradMode::is_enabled();
    c10::GradMode::set_enabled(flag(info, 0));
    return Napi::Boolean::New(info.Env(), prev);
  });
  def(env, exports, "isGradEnabled", [](CI info) -> Napi::Value { return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled()); });
  def(env, exports, "enterInferenceMode", [](CI info) -> Napi::Value {
    gInference.push_back(std::make_unique<c10::InferenceMode>(true));
    return info.Env().Undefined();
  });
  def(env, exports, "exitInferenceMode", [](CI info) -> Napi::Value {
    if (!gInference.empty()) gInference.pop_back();
    return info.Env().Undefined();
  });
  def(env, exports, "isInferenceTensor", [](CI info) -> Napi::Value { return Napi::Boolean::New(info.Env(), T(info, 0).is_inference()); });
}

}  // namespace bx
