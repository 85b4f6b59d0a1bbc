// The addon's entry point: every native/bind/*.cc file registers its own functions.
#include "bind/bind.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  fathom::run_registrars(env, exports);
  return exports;
}

NODE_API_MODULE(fathom, Init)
