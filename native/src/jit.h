// TorchScript module handles, shared by the files that work on them (jit.cc, jit_graph.cc).
#pragma once
#include <napi.h>
#include <torch/script.h>

namespace bx {

// The module behind a handle from jitLoad / jitClone; throws if it was disposed.
torch::jit::Module& unwrapModule(const Napi::Value& v);

void registerJitGraph(Napi::Env env, Napi::Object exports);

}  // namespace bx
