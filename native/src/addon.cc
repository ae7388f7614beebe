// Export table of the badexpert native addon. The groups live in their own files.
#include "handles.h"

#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

// glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
// activation-sized tensors come from the heap and are not given back: scoring 60,000 images in
// batches of 256 swung between 0.7 and 1.7 GB resident. A fixed threshold keeps every buffer of
// 1 MiB or more in its own mapping, returned on free (flat at 0.3 GB). A user's own
// MALLOC_MMAP_THRESHOLD_ wins.
static void returnLargeBuffersToTheOs() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  returnLargeBuffersToTheOs();
  bx::def(env, exports, "dispose", bx::disposeHandle);
  bx::registerRuntime(env, exports);
  bx::registerCreation(env, exports);
  bx::registerOps(env, exports);
  bx::registerNnOps(env, exports);
  bx::registerAutograd(env, exports);
  bx::registerJit(env, exports);
  return exports;
}

NODE_API_MODULE(badexpert, Init)
