// The computation of a TorchScript module's forward() as plain data, for the ONNX exporter
// (src/export/torchscript-graph.ts translates it; nothing here knows ONNX). The module is frozen
// first (torch::jit::freeze_module on a copy, in evaluation mode): calls are inlined, attributes
// become constants and branches on them are folded, so what remains is one list of operator
// nodes over tensors, numbers and lists. Tensor constants come back as tensor handles, named by
// the parameter or buffer they are (matched by storage), so the graph's weights keep their
// state-dict names.
#include "handles.h"
#include "jit.h"

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/freeze_module.h>

#include <cmath>
#include <map>
#include <string>
#include <utility>

namespace bx {

namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;

// The tensors a module holds, keyed by where their data lives and their shape.
using TensorNames = std::map<std::pair<const void*, std::vector<int64_t>>, std::string>;

TensorNames namedTensors(const torch::jit::Module& m) {
  TensorNames out;
  for (const auto& p : m.named_parameters(true)) out.emplace(std::make_pair(p.value.data_ptr(), p.value.sizes().vec()), p.name);
  for (const auto& b : m.named_buffers(true)) out.emplace(std::make_pair(b.value.data_ptr(), b.value.sizes().vec()), b.name);
  return out;
}

Napi::Value intValue(Napi::Env env, int64_t v) {
  // Sentinels such as INT64_MAX (slice to the end) do not fit a JS number exactly.
  if (std::fabs(static_cast<double>(v)) <= kMaxSafeInteger) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::BigInt::New(env, v);
}

class GraphWriter {
 public:
  GraphWriter(Napi::Env env, TensorNames names) : env_(env), names_(std::move(names)) {}

  Napi::Object graph(const torch::jit::Graph& g) {
    auto o = Napi::Object::New(env_);
    o.Set("inputs", values(g.inputs()));
    o.Set("nodes", nodes(g.block()));
    o.Set("outputs", ids(g.outputs()));
    return o;
  }

 private:
  Napi::Env env_;
  TensorNames names_;

  Napi::Object value(const torch::jit::Value* v) {
    auto o = Napi::Object::New(env_);
    o.Set("id", static_cast<double>(v->unique()));
    o.Set("name", v->hasDebugName() ? v->debugName() : "");
    const auto& type = v->type();
    if (auto t = type->cast<c10::TensorType>()) {
      o.Set("type", "Tensor");
      if (auto rank = t->sizes().size()) o.Set("rank", static_cast<double>(*rank));
      if (auto st = t->scalarType()) o.Set("dtype", std::string(c10::toString(*st)));
    } else {
      o.Set("type", type->annotation_str());
    }
    return o;
  }

  template <typename List>
  Napi::Array values(const List& vs) {
    auto a = Napi::Array::New(env_);
    uint32_t i = 0;
    for (const auto* v : vs) a.Set(i++, value(v));
    return a;
  }

  template <typename List>
  Napi::Array ids(const List& vs) {
    auto a = Napi::Array::New(env_);
    uint32_t i = 0;
    for (const auto* v : vs) a.Set(i++, static_cast<double>(v->unique()));
    return a;
  }

  Napi::Value constant(const c10::IValue& iv) {
    if (iv.isNone()) return env_.Null();
    if (iv.isBool()) return Napi::Boolean::New(env_, iv.toBool());
    if (iv.isInt()) return intValue(env_, iv.toInt());
    if (iv.isDouble()) return Napi::Number::New(env_, iv.toDouble());
    if (iv.isString()) return Napi::String::New(env_, iv.toStringRef());
    if (iv.isDevice()) return Napi::String::New(env_, iv.toDevice().str());
    if (iv.isTensor()) {
      const auto& t = iv.toTensor();
      auto o = Napi::Object::New(env_);
      auto found = names_.find(std::make_pair(t.data_ptr(), t.sizes().vec()));
      o.Set("name", found == names_.end() ? env_.Null() : Napi::String::New(env_, found->second));
      o.Set("tensor", wrap(env_, t));
      return o;
    }
    if (iv.isList() || iv.isTuple()) {
      auto items = iv.isList() ? iv.toListRef().vec() : iv.toTupleRef().elements().vec();
      auto a = Napi::Array::New(env_);
      for (uint32_t i = 0; i < items.size(); i++) a.Set(i, constant(items[i]));
      if (iv.isList()) return a;
      auto o = Napi::Object::New(env_);
      o.Set("tuple", a);
      return o;
    }
    auto o = Napi::Object::New(env_);
    o.Set("unsupported", iv.tagKind());
    return o;
  }

  // Where a node comes from: the submodule path of the calls it was inlined from, and the line
  // of source it was compiled from (the user's Python file when the archive carries debug info).
  void origin(const torch::jit::Node* n, Napi::Object& o) {
    std::string scope;
    if (auto cs = n->callstack()) {
      for (const auto& entry : (*cs)->vec()) {
        const auto& info = std::get<2>(entry);
        if (!info) continue;
        const auto name = info->instance_name();
        if (name.empty() || name == "self") continue;
        scope += (scope.empty() ? "" : ".") + name;
      }
    }
    o.Set("scope", scope);
    const auto range = n->sourceRange();
    if (auto flc = range.file_line_col()) {
      o.Set("source", std::get<0>(*flc) + ":" + std::to_string(std::get<1>(*flc)));
    }
    if (range.source() && range.size() > 0) {
      std::string text = range.text().str();
      text = text.substr(0, text.find('\n'));
      if (text.size() > 120) text = text.substr(0, 117) + "...";
      o.Set("code", text);
    }
  }

  Napi::Object node(const torch::jit::Node* n) {
    auto o = Napi::Object::New(env_);
    o.Set("kind", std::string(n->kind().toQualString()));
    o.Set("inputs", ids(n->inputs()));
    o.Set("outputs", values(n->outputs()));
    if (n->kind() == torch::jit::prim::Constant) {
      auto iv = torch::jit::toIValue(n->output());
      o.Set("value", iv ? constant(*iv) : env_.Null());
    }
    if (!n->blocks().empty()) {
      auto blocks = Napi::Array::New(env_);
      uint32_t i = 0;
      for (const auto* b : n->blocks()) {
        auto bo = Napi::Object::New(env_);
        bo.Set("inputs", values(b->inputs()));
        bo.Set("nodes", nodes(b));
        bo.Set("outputs", ids(b->outputs()));
        blocks.Set(i++, bo);
      }
      o.Set("blocks", blocks);
    }
    origin(n, o);
    return o;
  }

  Napi::Array nodes(const torch::jit::Block* b) {
    auto a = Napi::Array::New(env_);
    uint32_t i = 0;
    for (const auto* n : b->nodes()) a.Set(i++, node(n));
    return a;
  }
};

}  // namespace

void registerJitGraph(Napi::Env env, Napi::Object exports) {
  def(env, exports, "jitGraph", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto& m = unwrapModule(info[0]);
    if (m.is_training()) throw std::runtime_error("the module is in training mode; its graph is read in evaluation mode only");
    // freeze_module works on a clone whose tensors are the module's own (no copy of the weights),
    // so a constant's storage tells which parameter or buffer it is.
    torch::NoGradGuard noGrad;
    auto frozen = torch::jit::freeze_module(m);
    auto graph = frozen.get_method("forward").graph();
    return GraphWriter(info.Env(), namedTensors(m)).graph(*graph);
  });
}

}  // namespace bx
