// Threads, seeds, devices, versions and the live-handle count.
#include "handles.h"

#include <cstdlib>
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace bx {

void registerRuntime(Napi::Env env, Napi::Object exports) {
  def(env, exports, "setNumThreads", [](const Napi::CallbackInfo& info) -> Napi::Value {
    torch::set_num_threads(static_cast<int>(i64(info, 0)));
    return info.Env().Undefined();
  });
  // glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
  // activation-sized tensors come from the heap, which is not given back. A fixed threshold keeps
  // larger buffers in their own mappings, returned on free. Returns false where it cannot apply
  // (not glibc, or the user set MALLOC_MMAP_THRESHOLD_ themselves, which wins).
  def(env, exports, "setMmapThreshold", [](const Napi::CallbackInfo& info) -> Napi::Value {
#if defined(__GLIBC__)
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return Napi::Boolean::New(info.Env(), false);
    return Napi::Boolean::New(info.Env(), mallopt(M_MMAP_THRESHOLD, static_cast<int>(i64(info, 0))) == 1);
#else
    return Napi::Boolean::New(info.Env(), false);
#endif
  });
  // OpenBLAS (Debian's libtorch does its matrix products there) keeps one process-wide pool of
  // pthreads, apart from libtorch's per-thread OpenMP teams: a worker thread limited to one
  // libtorch thread still hands large products to that pool. Looked up at run time, so another
  // BLAS (no such symbol) just reports false; a user's OPENBLAS_NUM_THREADS wins, as for malloc.
  def(env, exports, "setBlasThreads", [](const Napi::CallbackInfo& info) -> Napi::Value {
    if (std::getenv("OPENBLAS_NUM_THREADS") != nullptr) return Napi::Boolean::New(info.Env(), false);
    using SetThreads = void (*)(int);
    auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (set == nullptr) return Napi::Boolean::New(info.Env(), false);
    set(static_cast<int>(i64(info, 0)));
    return Napi::Boolean::New(info.Env(), true);
  });
  def(env, exports, "getNumThreads", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), torch::get_num_threads());
  });
  def(env, exports, "manualSeed", [](const Napi::CallbackInfo& info) -> Napi::Value {
    // The JS number is exact up to 2^53; libtorch seeds CPU and (when present) CUDA generators.
    torch::manual_seed(static_cast<uint64_t>(i64(info, 0)));
    return info.Env().Undefined();
  });
  def(env, exports, "cudaAvailable", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Boolean::New(info.Env(), torch::cuda::is_available());
  });
  def(env, exports, "cudaDeviceCount", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
  });
  def(env, exports, "liveHandles", [](const Napi::CallbackInfo& info) -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(liveHandles()));
  });
  def(env, exports, "version", [](const Napi::CallbackInfo& info) -> Napi::Value {
    auto o = Napi::Object::New(info.Env());
    o.Set("libtorch", TORCH_VERSION);
    o.Set("parallel", at::get_parallel_info());
    return o;
  });
}

}  // namespace bx
