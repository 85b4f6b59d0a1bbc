// Addon-wide functions: CPU features, the code path in use, and the thread pool size.
#include "bind.h"
#include "cpu.h"
#include "pool.h"

namespace fathom {
namespace {

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", f.avx2); o.Set("fma", f.fma); o.Set("f16c", f.f16c);
  o.Set("avx512f", f.avx512f); o.Set("avx512bw", f.avx512bw); o.Set("avx512vl", f.avx512vl);
  o.Set("avx512dq", f.avx512dq); o.Set("avx512bf16", f.avx512bf16); o.Set("avx512vnni", f.avx512vnni);
  o.Set("best", isa_name(best_isa()));
  return o;
}

Napi::Value GetIsa(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa_name(current_isa())); }

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString()) throw_arg(info, "set_isa", "expects 'avx512', 'avx2' or 'scalar'");
  std::string s = info[0].As<Napi::String>().Utf8Value();
  Isa isa = s == "avx512" ? ISA_AVX512 : s == "avx2" ? ISA_AVX2 : s == "scalar" ? ISA_SCALAR : static_cast<Isa>(-1);
  if (static_cast<int>(isa) < 0) throw_arg(info, "set_isa", "unknown code path '" + s + "'");
  return Napi::Boolean::New(info.Env(), set_isa(isa));
}

Napi::Value GetThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), num_threads()); }

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  set_num_threads(static_cast<int>(int_arg(info, 0, "set_threads", 0, 256)));
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  set_fn(env, exports, "cpuInfo", CpuInfo);
  set_fn(env, exports, "getIsa", GetIsa);
  set_fn(env, exports, "setIsa", SetIsa);
  set_fn(env, exports, "getThreads", GetThreads);
  set_fn(env, exports, "setThreads", SetThreads);
}
FATHOM_REGISTER(Register);

}  // namespace
}  // namespace fathom
