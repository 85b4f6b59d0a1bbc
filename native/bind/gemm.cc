// N-API glue for GEMM: gemmF32, gemmBF16, packB, gemmPacked (see src/core/backend/native/binding.ts).
// Every argument is checked here (types, dims, leading dims, strides against array lengths) before a kernel runs.
#include <string>
#include "bind.h"
#include "cpu.h"
#include "kernels/gemm.h"

namespace fathom {
namespace {

constexpr int64_t MAX_DIM = 0x7fffffff;
constexpr int64_t MAX_LD = (int64_t(1) << 53) - 1;

const PackedKind kPacked = {{0x8f3c2a1d5e6b4c70ULL, 0x1b2e9d47a6c3f580ULL}, "a packed matrix made by packB",
                            [](const void* p) { return static_cast<const GemmPackedB*>(p)->bytes; },
                            [](void* p) { gemm_packed_free(static_cast<GemmPackedB*>(p)); }};

std::string s(int64_t v) { return std::to_string(v); }

int64_t typed_len(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int64_t>(info[i].As<Napi::TypedArray>().ElementLength());
}

// Elements needed by `count` matrices of rows × cols (row r, col c at r*ld + c), `stride` apart; 0 if empty.
// Computed in 128 bits so no overflow can hide a short array.
__int128 need_elems(int64_t count, int64_t rows, int64_t cols, int64_t ld, int64_t stride) {
  if (count <= 0 || rows <= 0 || cols <= 0) return 0;
  return static_cast<__int128>(count - 1) * stride + static_cast<__int128>(rows - 1) * ld + cols;
}

void check_len(const Napi::CallbackInfo& info, const char* op, const char* name, size_t idx, __int128 need,
               const std::string& dims) {
  int64_t have = typed_len(info, idx);
  if (need > static_cast<__int128>(have))
    throw_arg(info, op, std::string(name) + " has " + s(have) + " elements, needs " +
                            (need > static_cast<__int128>(MAX_LD) ? std::string("more") : s(static_cast<int64_t>(need))) +
                            " (" + dims + ")");
}

// Validates one operand stored as `rows` × `cols` in memory (after the transpose flag is applied).
void check_ld(const Napi::CallbackInfo& info, const char* op, const char* ldname, int64_t ld, int64_t mincols,
              const std::string& why) {
  if (ld < mincols) throw_arg(info, op, std::string(ldname) + "=" + s(ld) + " is too small, needs >= " + s(mincols) + " (" + why + ")");
}

template <bool BF16>
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* op = BF16 ? "gemm_bf16" : "gemm_f32";
  if (info.Length() < 17) throw_arg(info, op, "expects 17 arguments, got " + s(static_cast<int64_t>(info.Length())));
  const int64_t batch = int_arg(info, 0, op, 0, MAX_DIM), M = int_arg(info, 1, op, 0, MAX_DIM);
  const int64_t N = int_arg(info, 2, op, 0, MAX_DIM), K = int_arg(info, 3, op, 0, MAX_DIM);
  const int64_t sA = int_arg(info, 5, op, 0, MAX_LD), lda = int_arg(info, 6, op, 0, MAX_LD);
  const bool tA = bool_arg(info, 7, op);
  const int64_t sB = int_arg(info, 9, op, 0, MAX_LD), ldb = int_arg(info, 10, op, 0, MAX_LD);
  const bool tB = bool_arg(info, 11, op);
  const int64_t sC = int_arg(info, 13, op, 0, MAX_LD), ldc = int_arg(info, 14, op, 0, MAX_LD);
  const double alpha = num_arg(info, 15, op), beta = num_arg(info, 16, op);
  // optional 18th argument: row-invariant (each row's result independent of M)
  const bool rowwise = info.Length() > 17 && !info[17].IsUndefined() && bool_arg(info, 17, op);
  // Types first (need 0), then lengths with a precise message.
  const void *A, *B;
  if (BF16) { A = u16_arg(info, 4, op, 0); B = u16_arg(info, 8, op, 0); }
  else { A = f32_arg(info, 4, op, 0); B = f32_arg(info, 8, op, 0); }
  float* C = f32_arg(info, 12, op, 0);

  check_ld(info, op, "lda", lda, tA ? M : K, tA ? "transA, M=" + s(M) : "K=" + s(K));
  check_ld(info, op, "ldb", ldb, tB ? K : N, tB ? "transB, K=" + s(K) : "N=" + s(N));
  check_ld(info, op, "ldc", ldc, N, "N=" + s(N));
  const bool work = batch > 0 && M > 0 && N > 0;
  const std::string bs = batch > 1 ? ", batch=" + s(batch) : "";
  if (work && K > 0) {
    check_len(info, op, "A", 4, need_elems(batch, tA ? K : M, tA ? M : K, lda, sA),
              "M=" + s(M) + ", K=" + s(K) + ", lda=" + s(lda) + (tA ? ", transA" : "") + bs + (batch > 1 ? ", strideA=" + s(sA) : ""));
    check_len(info, op, "B", 8, need_elems(batch, tB ? N : K, tB ? K : N, ldb, sB),
              "K=" + s(K) + ", N=" + s(N) + ", ldb=" + s(ldb) + (tB ? ", transB" : "") + bs + (batch > 1 ? ", strideB=" + s(sB) : ""));
  }
  if (work) {
    if (batch > 1 && static_cast<__int128>(sC) < need_elems(1, M, N, ldc, 0))
      throw_arg(info, op, "strideC=" + s(sC) + " makes the " + s(batch) + " outputs overlap (needs >= " +
                              s(static_cast<int64_t>(need_elems(1, M, N, ldc, 0))) + ")");
    check_len(info, op, "C", 12, need_elems(batch, M, N, ldc, sC),
              "M=" + s(M) + ", N=" + s(N) + ", ldc=" + s(ldc) + bs + (batch > 1 ? ", strideC=" + s(sC) : ""));
  }
  if (!work) return info.Env().Undefined();
  if (BF16)
    gemm_bf16(batch, M, N, K, static_cast<const uint16_t*>(A), sA, lda, tA, static_cast<const uint16_t*>(B), sB, ldb, tB,
              C, sC, ldc, static_cast<float>(alpha), static_cast<float>(beta), rowwise);
  else
    gemm_f32(batch, M, N, K, static_cast<const float*>(A), sA, lda, tA, static_cast<const float*>(B), sB, ldb, tB, C,
             sC, ldc, static_cast<float>(alpha), static_cast<float>(beta), rowwise);
  return info.Env().Undefined();
}

Napi::Value PackB(const Napi::CallbackInfo& info) {
  const char* op = "pack_b";
  Napi::Env env = info.Env();
  if (info.Length() < 6) throw_arg(info, op, "expects 6 arguments, got " + s(static_cast<int64_t>(info.Length())));
  if (!info[0].IsString()) throw_arg(info, op, "dtype must be 'f32' or 'bf16'");
  const std::string dt = info[0].As<Napi::String>().Utf8Value();
  if (dt != "f32" && dt != "bf16") throw_arg(info, op, "dtype must be 'f32' or 'bf16', got '" + dt + "'");
  const int bf16 = dt == "bf16";
  const int64_t K = int_arg(info, 1, op, 0, MAX_DIM), N = int_arg(info, 2, op, 0, MAX_DIM);
  const int64_t ldb = int_arg(info, 4, op, 0, MAX_LD);
  const bool tB = bool_arg(info, 5, op);
  const void* B = bf16 ? static_cast<const void*>(u16_arg(info, 3, op, 0)) : static_cast<const void*>(f32_arg(info, 3, op, 0));
  check_ld(info, op, "ldb", ldb, tB ? K : N, tB ? "transB, K=" + s(K) : "N=" + s(N));
  if (K > 0 && N > 0)
    check_len(info, op, "B", 3, need_elems(1, tB ? N : K, tB ? K : N, ldb, 0),
              "K=" + s(K) + ", N=" + s(N) + ", ldb=" + s(ldb) + (tB ? ", transB" : ""));
  GemmPackedB* p = gemm_pack_b(bf16, K, N, B, ldb, tB);
  if (!p) throw Napi::Error::New(env, "[pack_b] out of memory packing " + s(K) + "x" + s(N));
  return wrap_packed(env, op, kPacked, p, {
      Napi::PropertyDescriptor::Value("dtype", Napi::String::New(env, dt), napi_enumerable),
      Napi::PropertyDescriptor::Value("K", Napi::Number::New(env, static_cast<double>(K)), napi_enumerable),
      Napi::PropertyDescriptor::Value("N", Napi::Number::New(env, static_cast<double>(N)), napi_enumerable),
      Napi::PropertyDescriptor::Value("isa", Napi::String::New(env, isa_name(static_cast<Isa>(p->isa))), napi_enumerable),
  });
}

Napi::Value GemmPacked(const Napi::CallbackInfo& info) {
  const char* op = "gemm_packed";
  Napi::Env env = info.Env();
  if (info.Length() < 9) throw_arg(info, op, "expects 9 arguments, got " + s(static_cast<int64_t>(info.Length())));
  const int64_t M = int_arg(info, 0, op, 0, MAX_DIM);
  const int64_t lda = int_arg(info, 2, op, 0, MAX_LD);
  const bool tA = bool_arg(info, 3, op);
  const GemmPackedB* p = static_cast<const GemmPackedB*>(packed_arg(info, 4, op, kPacked));
  const int64_t K = p->K, N = p->N;
  const void* A;
  if (p->dtype) {
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint16_array)
      throw_arg(info, op, "the packed matrix is bf16: A must be a Uint16Array of bf16 values");
    A = u16_arg(info, 1, op, 0);
  } else {
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_arg(info, op, "the packed matrix is f32: A must be a Float32Array");
    A = f32_arg(info, 1, op, 0);
  }
  float* C = f32_arg(info, 5, op, 0);
  const int64_t ldc = int_arg(info, 6, op, 0, MAX_LD);
  const double alpha = num_arg(info, 7, op), beta = num_arg(info, 8, op);
  if (!gemm_packed_compatible(p))
    throw_arg(info, op, std::string("the packed matrix was made for the '") + isa_name(static_cast<Isa>(p->isa)) +
                            "' code path but the current path is '" + isa_name(current_isa()) + "'; call packB again");
  check_ld(info, op, "lda", lda, tA ? M : K, tA ? "transA, M=" + s(M) : "K=" + s(K));
  check_ld(info, op, "ldc", ldc, N, "N=" + s(N));
  if (M > 0 && N > 0 && K > 0)
    check_len(info, op, "A", 1, need_elems(1, tA ? K : M, tA ? M : K, lda, 0),
              "M=" + s(M) + ", K=" + s(K) + ", lda=" + s(lda) + (tA ? ", transA" : ""));
  if (M > 0 && N > 0) check_len(info, op, "C", 5, need_elems(1, M, N, ldc, 0), "M=" + s(M) + ", N=" + s(N) + ", ldc=" + s(ldc));
  if (M == 0 || N == 0) return env.Undefined();
  gemm_packed(M, A, lda, tA, p, C, ldc, static_cast<float>(alpha), static_cast<float>(beta));
  return env.Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  set_fn(env, exports, "gemmF32", Gemm<false>);
  set_fn(env, exports, "gemmBF16", Gemm<true>);
  set_fn(env, exports, "packB", PackB);
  set_fn(env, exports, "gemmPacked", GemmPacked);
}
FATHOM_REGISTER(Register);

}  // namespace
}  // namespace fathom
