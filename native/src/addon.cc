// Export table of the badexpert native addon. The groups live in their own files.
#include "handles.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
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
