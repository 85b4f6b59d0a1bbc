// N-API glue for quantized products: quantPack, quantMatmul, quantMatmulMany (see src/core/backend/native/binding.ts).
// Every argument is checked here (type names, shapes, block multiples, array lengths) before a kernel runs.
#include <string>
#include <vector>
#include "bind.h"
#include "cpu.h"
#include "kernels/quant.h"

namespace fathom {
namespace {

constexpr int64_t MAX_DIM = 0x7fffffff;

const PackedKind kQuant = {{0x5d1e73a0c4b2f981ULL, 0x2a6c8e04f7b3d15cULL}, "a packed quantized matrix made by quantPack",
                           [](const void* p) { return static_cast<const QuantPacked*>(p)->bytes; },
                           [](void* p) { quant_packed_free(static_cast<QuantPacked*>(p)); }};

std::string s(int64_t v) { return std::to_string(v); }

Napi::Value QuantPack(const Napi::CallbackInfo& info) {
  const char* op = "quant_pack";
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw_arg(info, op, "expects 5 arguments (type, N, K, data, scales), got " + s(static_cast<int64_t>(info.Length())));
  if (!info[0].IsString()) throw_arg(info, op, "type must be 'q8_0', 'q4_0', 'q4_K' or 'int8'");
  const std::string t = info[0].As<Napi::String>().Utf8Value();
  int kind;
  int64_t bs, bb;  // block size (elements), bytes per block
  if (t == "q8_0") { kind = QK_Q8_0; bs = 32; bb = 34; }
  else if (t == "q4_0") { kind = QK_Q4_0; bs = 32; bb = 18; }
  else if (t == "q4_K") { kind = QK_Q4_K; bs = 256; bb = 144; }
  else if (t == "int8") { kind = QK_INT8; bs = 1; bb = 1; }
  else throw_arg(info, op, "type must be 'q8_0', 'q4_0', 'q4_K' or 'int8', got '" + t + "'");
  const int64_t N = int_arg(info, 1, op, 0, MAX_DIM), K = int_arg(info, 2, op, 0, MAX_DIM);
  if (K % bs != 0) throw_arg(info, op, t + " needs K to be a multiple of " + s(bs) + ", got K=" + s(K));
  if (!info[3].IsTypedArray()) throw_arg(info, op, "data must be a Uint8Array");
  {
    napi_typedarray_type tt = info[3].As<Napi::TypedArray>().TypedArrayType();
    if (tt != napi_uint8_array && tt != napi_int8_array && tt != napi_uint8_clamped_array)
      throw_arg(info, op, "data must be a Uint8Array (or Int8Array) of bytes");
  }
  size_t have = 0;
  const uint8_t* data = bytes_arg(info, 3, op, &have);
  const __int128 need = static_cast<__int128>(N) * (K / bs) * bb;
  if (need > static_cast<__int128>(have))
    throw_arg(info, op, "data has " + s(static_cast<int64_t>(have)) + " bytes, needs " + s(static_cast<int64_t>(need)) + " (" + t +
                            ", N=" + s(N) + ", K=" + s(K) + ")");
  const float* scales = nullptr;
  if (kind == QK_INT8) {
    if (is_nullish(info, 4)) throw_arg(info, op, "int8 needs scales: a Float32Array of N=" + s(N) + " per-row scales");
    scales = f32_arg(info, 4, op, 0);
    const int64_t ns = static_cast<int64_t>(info[4].As<Napi::TypedArray>().ElementLength());
    if (ns < N) throw_arg(info, op, "scales has " + s(ns) + " elements, needs " + s(N) + " (N)");
  } else if (!is_nullish(info, 4)) {
    throw_arg(info, op, t + " keeps its scales in the blocks: scales must be null");
  }
  QuantPacked* p = quant_pack(kind, N, K, data, scales);
  if (!p) throw Napi::Error::New(env, "[quant_pack] out of memory packing " + t + " " + s(N) + "x" + s(K));
  return wrap_packed(env, op, kQuant, p, {
      Napi::PropertyDescriptor::Value("type", Napi::String::New(env, t), napi_enumerable),
      Napi::PropertyDescriptor::Value("N", Napi::Number::New(env, static_cast<double>(N)), napi_enumerable),
      Napi::PropertyDescriptor::Value("K", Napi::Number::New(env, static_cast<double>(K)), napi_enumerable),
      Napi::PropertyDescriptor::Value("isa", Napi::String::New(env, isa_name(static_cast<Isa>(p->isa))), napi_enumerable),
      Napi::PropertyDescriptor::Value("bytes", Napi::Number::New(env, static_cast<double>(p->bytes)), napi_enumerable),
  });
}

Napi::Value QuantMatmul(const Napi::CallbackInfo& info) {
  const char* op = "quant_matmul";
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw_arg(info, op, "expects 4 arguments (M, x, packed, out), got " + s(static_cast<int64_t>(info.Length())));
  const int64_t M = int_arg(info, 0, op, 0, MAX_DIM);
  const QuantPacked* p = static_cast<const QuantPacked*>(packed_arg(info, 2, op, kQuant));
  if (!quant_packed_compatible(p))
    throw_arg(info, op, std::string("the packed matrix was made for the '") + isa_name(static_cast<Isa>(p->isa)) +
                            "' code path but the current path is '" + isa_name(current_isa()) + "'; call quantPack again");
  const float* x = f32_arg(info, 1, op, 0);
  float* out = f32_arg(info, 3, op, 0);
  const int64_t K = p->K, N = p->N;
  const int64_t nx = static_cast<int64_t>(info[1].As<Napi::TypedArray>().ElementLength());
  const int64_t no = static_cast<int64_t>(info[3].As<Napi::TypedArray>().ElementLength());
  if (static_cast<__int128>(M) * K > nx)
    throw_arg(info, op, "x has " + s(nx) + " elements, needs " + s(M * K) + " (M=" + s(M) + ", K=" + s(K) + ")");
  if (static_cast<__int128>(M) * N > no)
    throw_arg(info, op, "out has " + s(no) + " elements, needs " + s(M * N) + " (M=" + s(M) + ", N=" + s(N) + ")");
  if (M == 0 || N == 0) return env.Undefined();
  quant_matmul(M, x, p, out);
  return env.Undefined();
}

// quantMatmulMany(M, x | x[], packed[], out[]): weights of one type and K, against one shared input (quantized once) or
// one input per weight.
Napi::Value QuantMatmulMany(const Napi::CallbackInfo& info) {
  const char* op = "quant_matmul_many";
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw_arg(info, op, "expects 4 arguments (M, x or x[], packed[], out[]), got " + s(static_cast<int64_t>(info.Length())));
  const int64_t M = int_arg(info, 0, op, 0, MAX_DIM);
  if (!info[2].IsArray() || !info[3].IsArray()) throw_arg(info, op, "packed and out must be arrays");
  Napi::Array pa = info[2].As<Napi::Array>(), oa = info[3].As<Napi::Array>();
  const uint32_t n = pa.Length();
  if (n < 1 || n > 4096) throw_arg(info, op, "needs 1 to 4096 packed matrices, got " + s(n));
  if (oa.Length() != n) throw_arg(info, op, "out has " + s(oa.Length()) + " arrays for " + s(n) + " packed matrices");
  const bool shared = !info[1].IsArray();
  if (!shared && info[1].As<Napi::Array>().Length() != n)
    throw_arg(info, op, "x has " + s(info[1].As<Napi::Array>().Length()) + " arrays for " + s(n) + " packed matrices");
  std::vector<const QuantPacked*> ps(n);
  std::vector<float*> outs(n);
  std::vector<const float*> xs(n);
  // a Float32Array's data, checked to hold `need` elements
  auto f32_of = [&](Napi::Value v, const std::string& name, __int128 need, const std::string& dims) -> float* {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) throw_arg(info, op, name + " must be a Float32Array");
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    const int64_t len = static_cast<int64_t>(ta.ElementLength());
    if (need > len) throw_arg(info, op, name + " has " + s(len) + " elements, needs " + s(static_cast<int64_t>(need)) + " (" + dims + ")");
    return reinterpret_cast<float*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  };
  for (uint32_t i = 0; i < n; i++) {
    const std::string at = "packed[" + s(i) + "]";
    ps[i] = static_cast<const QuantPacked*>(packed_value(info, pa[i], op, kQuant, at));
    if (i > 0 && (ps[i]->kind != ps[0]->kind || ps[i]->K != ps[0]->K))
      throw_arg(info, op, at + " differs from packed[0] in type or K (K=" + s(ps[i]->K) + " vs " + s(ps[0]->K) + ")");
    outs[i] = f32_of(oa[i], "out[" + s(i) + "]", static_cast<__int128>(M) * ps[i]->N, "M=" + s(M) + ", N=" + s(ps[i]->N));
  }
  const std::string xdims = "M=" + s(M) + ", K=" + s(ps[0]->K);
  if (shared) {
    const float* x = f32_of(info[1], "x", static_cast<__int128>(M) * ps[0]->K, xdims);
    for (uint32_t i = 0; i < n; i++) xs[i] = x;
  } else {
    Napi::Array xa = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < n; i++) xs[i] = f32_of(xa[i], "x[" + s(i) + "]", static_cast<__int128>(M) * ps[0]->K, xdims);
  }
  if (M == 0) return env.Undefined();
  quant_matmul_many(M, static_cast<int>(n), xs.data(), ps.data(), outs.data());
  return env.Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  set_fn(env, exports, "quantPack", QuantPack);
  set_fn(env, exports, "quantMatmul", QuantMatmul);
  set_fn(env, exports, "quantMatmulMany", QuantMatmulMany);
}
FATHOM_REGISTER(Register);

}  // namespace
}  // namespace fathom
