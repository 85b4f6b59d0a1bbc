// N-API glue for the elementwise, reduction, norm, RoPE, SwiGLU, AdamW, cast and strided-copy kernels.
// Every argument is checked (types, integer ranges, lengths against the dimensions and strides given)
// before a kernel runs; errors read "[op_name] ...".
#include <string>
#include "bind.h"
#include "kernels/ops.h"

namespace fathom {
namespace {

const int64_t kMaxCount = static_cast<int64_t>(1) << 48;
const int kMaxRank = 64;

std::string S(int64_t v) { return std::to_string(v); }

int64_t count_arg(const Napi::CallbackInfo& info, size_t i, const char* op) { return int_arg(info, i, op, 0, kMaxCount); }

int64_t mul(const Napi::CallbackInfo& info, const char* op, int64_t a, int64_t b) {
  if (a != 0 && b > kMaxCount / a) throw_arg(info, op, "size " + S(a) + " x " + S(b) + " is too large");
  return a * b;
}

Napi::TypedArray typed_named(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name,
                             napi_typedarray_type type, const char* tname) {
  if (i >= info.Length() || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != type)
    throw_arg(info, op, std::string(name) + " (argument " + S(static_cast<int64_t>(i)) + ") must be " + (tname[0] == 'I' ? "an " : "a ") + tname);
  return info[i].As<Napi::TypedArray>();
}

void check_len(const Napi::CallbackInfo& info, const char* op, const char* name, int64_t len, int64_t need,
               const std::string& ctx) {
  if (len < need) throw_arg(info, op, std::string(name) + " has " + S(len) + " elements, needs " + S(need) + " (" + ctx + ")");
}

float* F32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int64_t need, const std::string& ctx) {
  Napi::TypedArray t = typed_named(info, i, op, name, napi_float32_array, "Float32Array");
  check_len(info, op, name, static_cast<int64_t>(t.ElementLength()), need, ctx);
  return f32_arg(info, i, op, need);
}
float* F32_or_null(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int64_t need,
                   const std::string& ctx) {
  if (is_nullish(info, i)) return nullptr;
  return F32(info, i, op, name, need, ctx);
}
uint16_t* U16(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int64_t need, const std::string& ctx) {
  Napi::TypedArray t = typed_named(info, i, op, name, napi_uint16_array, "Uint16Array");
  check_len(info, op, name, static_cast<int64_t>(t.ElementLength()), need, ctx);
  return u16_arg(info, i, op, need);
}
int32_t* I32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int64_t need, const std::string& ctx) {
  Napi::TypedArray t = typed_named(info, i, op, name, napi_int32_array, "Int32Array");
  check_len(info, op, name, static_cast<int64_t>(t.ElementLength()), need, ctx);
  return i32_arg(info, i, op, need);
}
int64_t I32_len(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  return static_cast<int64_t>(typed_named(info, i, op, name, napi_int32_array, "Int32Array").ElementLength());
}

// Shape argument: rank <= kMaxRank, every dimension >= 0; returns the element count.
int read_shape(const Napi::CallbackInfo& info, size_t i, const char* op, int64_t* shape, int64_t* total) {
  int64_t nd = I32_len(info, i, op, "shape");
  if (nd > kMaxRank) throw_arg(info, op, "shape has rank " + S(nd) + ", at most " + S(kMaxRank) + " supported");
  const int32_t* s = I32(info, i, op, "shape", nd, "rank " + S(nd));
  int64_t t = 1;
  for (int64_t d = 0; d < nd; d++) {
    if (s[d] < 0) throw_arg(info, op, "shape[" + S(d) + "] is negative (" + S(s[d]) + ")");
    shape[d] = s[d];
  }
  for (int64_t d = 0; d < nd; d++) t = mul(info, op, t, shape[d]);
  *total = t;
  return static_cast<int>(nd);
}

// Strides argument (nd entries); checks that base + every reachable offset lies in [0, len).
void read_strides(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int nd, const int64_t* shape,
                  int64_t total, int64_t base, int64_t len, const char* what, int64_t* strides) {
  const int32_t* s = I32(info, i, op, name, nd, "rank " + S(nd));
  int64_t lo = base, hi = base;
  for (int d = 0; d < nd; d++) {
    strides[d] = s[d];
    if (shape[d] > 1) {
      int64_t span = (shape[d] - 1) * strides[d];
      if (span < 0) lo += span; else hi += span;
    }
  }
  if (total == 0) return;
  if (lo < 0) throw_arg(info, op, std::string(what) + " reaches element " + S(lo) + " (below 0) through " + name);
  if (hi >= len)
    throw_arg(info, op, std::string(what) + " has " + S(len) + " elements, but " + name + " reach element " + S(hi));
}

std::string rn(int64_t rows, int64_t n) { return "rows=" + S(rows) + ", n=" + S(n); }

// ---------------------------------------------------------------- elementwise
Napi::Value UnaryF32(const Napi::CallbackInfo& info) {
  const char* op = "unary_f32";
  int code = static_cast<int>(int_arg(info, 0, op, 0, U_COUNT - 1));
  int64_t n = count_arg(info, 1, op);
  std::string ctx = "n=" + S(n);
  const float* x = F32(info, 2, op, "x", n, ctx);
  float* y = F32(info, 3, op, "y", n, ctx);
  unary_f32(code, n, x, y);
  return info.Env().Undefined();
}

Napi::Value UnaryGradF32(const Napi::CallbackInfo& info) {
  const char* op = "unary_grad_f32";
  int code = static_cast<int>(int_arg(info, 0, op, 0, U_COUNT - 1));
  int64_t n = count_arg(info, 1, op);
  std::string ctx = "n=" + S(n);
  const float* x = F32(info, 2, op, "x", n, ctx);
  const float* dy = F32(info, 3, op, "dy", n, ctx);
  float* dx = F32(info, 4, op, "dx", n, ctx);
  unary_grad_f32(code, n, x, dy, dx);
  return info.Env().Undefined();
}

Napi::Value BinaryF32(const Napi::CallbackInfo& info) {
  const char* op = "binary_f32";
  int code = static_cast<int>(int_arg(info, 0, op, 0, B_COUNT - 1));
  int64_t shape[kMaxRank], as[kMaxRank], bs[kMaxRank], total;
  int nd = read_shape(info, 1, op, shape, &total);
  typed_named(info, 2, op, "a", napi_float32_array, "Float32Array");
  typed_named(info, 4, op, "b", napi_float32_array, "Float32Array");
  int64_t alen = static_cast<int64_t>(info[2].As<Napi::TypedArray>().ElementLength());
  int64_t blen = static_cast<int64_t>(info[4].As<Napi::TypedArray>().ElementLength());
  read_strides(info, 3, op, "aStrides", nd, shape, total, 0, alen, "a", as);
  read_strides(info, 5, op, "bStrides", nd, shape, total, 0, blen, "b", bs);
  const float* a = f32_arg(info, 2, op, 0);
  const float* b = f32_arg(info, 4, op, 0);
  float* out = F32(info, 6, op, "out", total, "shape has " + S(total) + " elements");
  binary_f32(code, nd, shape, a, as, b, bs, out);
  return info.Env().Undefined();
}

Napi::Value SwigluF32(const Napi::CallbackInfo& info) {
  const char* op = "swiglu_f32";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  const float* g = F32(info, 1, op, "gate", n, ctx);
  const float* u = F32(info, 2, op, "up", n, ctx);
  float* o = F32(info, 3, op, "out", n, ctx);
  swiglu_f32(n, g, u, o);
  return info.Env().Undefined();
}

Napi::Value SwigluBackwardF32(const Napi::CallbackInfo& info) {
  const char* op = "swiglu_backward_f32";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  const float* g = F32(info, 1, op, "gate", n, ctx);
  const float* u = F32(info, 2, op, "up", n, ctx);
  const float* d = F32(info, 3, op, "dout", n, ctx);
  float* dg = F32(info, 4, op, "dgate", n, ctx);
  float* du = F32(info, 5, op, "dup", n, ctx);
  swiglu_backward_f32(n, g, u, d, dg, du);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- reductions
Napi::Value ReduceF32(const Napi::CallbackInfo& info) {
  const char* op = "reduce_f32";
  int code = static_cast<int>(int_arg(info, 0, op, 0, R_COUNT - 1));
  int64_t outer = count_arg(info, 1, op), n = count_arg(info, 2, op), inner = count_arg(info, 3, op);
  std::string ctx = "outer=" + S(outer) + ", n=" + S(n) + ", inner=" + S(inner);
  const float* x = F32(info, 4, op, "x", mul(info, op, mul(info, op, outer, n), inner), ctx);
  float* y = F32(info, 5, op, "y", mul(info, op, outer, inner), ctx);
  reduce_f32(code, outer, n, inner, x, y);
  return info.Env().Undefined();
}

Napi::Value ArgmaxF32(const Napi::CallbackInfo& info) {
  const char* op = "argmax_f32";
  int64_t outer = count_arg(info, 0, op), n = int_arg(info, 1, op, 0, 2147483647), inner = count_arg(info, 2, op);
  std::string ctx = "outer=" + S(outer) + ", n=" + S(n) + ", inner=" + S(inner);
  const float* x = F32(info, 3, op, "x", mul(info, op, mul(info, op, outer, n), inner), ctx);
  int32_t* idx = I32(info, 4, op, "idx", mul(info, op, outer, inner), ctx);
  if (n == 0 && outer * inner > 0) throw_arg(info, op, "n must be at least 1 (" + ctx + ")");
  argmax_f32(outer, n, inner, x, idx);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- softmax, RMSNorm
Napi::Value SoftmaxF32(const Napi::CallbackInfo& info) {
  const char* op = "softmax_f32";
  int64_t rows = count_arg(info, 0, op), n = count_arg(info, 1, op);
  std::string ctx = rn(rows, n);
  int64_t total = mul(info, op, rows, n);
  const float* x = F32(info, 2, op, "x", total, ctx);
  float* y = F32(info, 3, op, "y", total, ctx);
  bool log = bool_arg(info, 4, op);
  softmax_f32(rows, n, x, y, log);
  return info.Env().Undefined();
}

Napi::Value SoftmaxBackwardF32(const Napi::CallbackInfo& info) {
  const char* op = "softmax_backward_f32";
  int64_t rows = count_arg(info, 0, op), n = count_arg(info, 1, op);
  std::string ctx = rn(rows, n);
  int64_t total = mul(info, op, rows, n);
  const float* y = F32(info, 2, op, "y", total, ctx);
  const float* dy = F32(info, 3, op, "dy", total, ctx);
  float* dx = F32(info, 4, op, "dx", total, ctx);
  bool log = bool_arg(info, 5, op);
  softmax_backward_f32(rows, n, y, dy, dx, log);
  return info.Env().Undefined();
}

Napi::Value RmsNormF32(const Napi::CallbackInfo& info) {
  const char* op = "rms_norm_f32";
  int64_t rows = count_arg(info, 0, op), n = count_arg(info, 1, op);
  std::string ctx = rn(rows, n);
  int64_t total = mul(info, op, rows, n);
  const float* x = F32(info, 2, op, "x", total, ctx);
  const float* w = F32_or_null(info, 3, op, "w", n, ctx);
  double eps = num_arg(info, 4, op);
  float* y = F32(info, 5, op, "y", total, ctx);
  float* rstd = F32(info, 6, op, "rstd", rows, ctx);
  rms_norm_f32(rows, n, x, w, static_cast<float>(eps), y, rstd);
  return info.Env().Undefined();
}

Napi::Value RmsNormBackwardF32(const Napi::CallbackInfo& info) {
  const char* op = "rms_norm_backward_f32";
  int64_t rows = count_arg(info, 0, op), n = count_arg(info, 1, op);
  std::string ctx = rn(rows, n);
  int64_t total = mul(info, op, rows, n);
  const float* x = F32(info, 2, op, "x", total, ctx);
  const float* w = F32_or_null(info, 3, op, "w", n, ctx);
  const float* rstd = F32(info, 4, op, "rstd", rows, ctx);
  const float* dy = F32(info, 5, op, "dy", total, ctx);
  float* dx = F32(info, 6, op, "dx", total, ctx);
  float* dw = F32_or_null(info, 7, op, "dw", n, ctx);
  rms_norm_backward_f32(rows, n, x, w, rstd, dy, dx, dw);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- RoPE
Napi::Value RopeF32(const Napi::CallbackInfo& info) {
  const char* op = "rope_f32";
  int64_t rows = count_arg(info, 0, op), D = count_arg(info, 1, op), rot = count_arg(info, 2, op);
  if (rot % 2 != 0) throw_arg(info, op, "rotDim must be even, got " + S(rot));
  if (rot > D) throw_arg(info, op, "rotDim " + S(rot) + " exceeds D " + S(D));
  int64_t P = count_arg(info, 7, op);
  std::string ctx = "rows=" + S(rows) + ", D=" + S(D) + ", rotDim=" + S(rot) + ", P=" + S(P);
  int64_t total = mul(info, op, rows, D);
  const float* x = F32(info, 3, op, "x", total, ctx);
  float* y = F32(info, 4, op, "y", total, ctx);
  int64_t table = mul(info, op, P, rot / 2);
  const float* c = F32(info, 5, op, "cos", table, ctx);
  const float* s = F32(info, 6, op, "sin", table, ctx);
  const int32_t* pos = I32(info, 8, op, "pos", rows, ctx);
  bool interleaved = bool_arg(info, 9, op), inverse = bool_arg(info, 10, op);
  for (int64_t r = 0; r < rows; r++)
    if (pos[r] < 0 || pos[r] >= P) throw_arg(info, op, "pos[" + S(r) + "] = " + S(pos[r]) + " is outside [0, P=" + S(P) + ")");
  rope_f32(rows, D, rot, x, y, c, s, pos, interleaved, inverse);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- AdamW
Napi::Value AdamwF32(const Napi::CallbackInfo& info) {
  const char* op = "adamw_f32";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  float* p = F32(info, 1, op, "p", n, ctx);
  const float* g = F32(info, 2, op, "g", n, ctx);
  float* m = F32(info, 3, op, "m", n, ctx);
  float* v = F32(info, 4, op, "v", n, ctx);
  double lr = num_arg(info, 5, op), b1 = num_arg(info, 6, op), b2 = num_arg(info, 7, op);
  double eps = num_arg(info, 8, op), wd = num_arg(info, 9, op);
  int64_t step = int_arg(info, 10, op, 1, kMaxCount);
  if (!(b1 >= 0 && b1 < 1)) throw_arg(info, op, "beta1 must be in [0, 1), got " + std::to_string(b1));
  if (!(b2 >= 0 && b2 < 1)) throw_arg(info, op, "beta2 must be in [0, 1), got " + std::to_string(b2));
  adamw_f32(n, p, g, m, v, lr, b1, b2, eps, wd, step);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------- casts, strided copy
Napi::Value CastF32ToBF16(const Napi::CallbackInfo& info) {
  const char* op = "cast_f32_to_bf16";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  const float* x = F32(info, 1, op, "x", n, ctx);
  uint16_t* y = U16(info, 2, op, "y", n, ctx);
  cast_f32_to_bf16(n, x, y);
  return info.Env().Undefined();
}
Napi::Value CastBF16ToF32(const Napi::CallbackInfo& info) {
  const char* op = "cast_bf16_to_f32";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  const uint16_t* x = U16(info, 1, op, "x", n, ctx);
  float* y = F32(info, 2, op, "y", n, ctx);
  cast_bf16_to_f32(n, x, y);
  return info.Env().Undefined();
}
Napi::Value CastF32ToF16(const Napi::CallbackInfo& info) {
  const char* op = "cast_f32_to_f16";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  const float* x = F32(info, 1, op, "x", n, ctx);
  uint16_t* y = U16(info, 2, op, "y", n, ctx);
  cast_f32_to_f16(n, x, y);
  return info.Env().Undefined();
}
Napi::Value CastF16ToF32(const Napi::CallbackInfo& info) {
  const char* op = "cast_f16_to_f32";
  int64_t n = count_arg(info, 0, op);
  std::string ctx = "n=" + S(n);
  const uint16_t* x = U16(info, 1, op, "x", n, ctx);
  float* y = F32(info, 2, op, "y", n, ctx);
  cast_f16_to_f32(n, x, y);
  return info.Env().Undefined();
}

Napi::Value DequantQ8Rows(const Napi::CallbackInfo& info) {
  const char* op = "dequant_q8_0_rows";
  int64_t groups = count_arg(info, 0, op), T = count_arg(info, 1, op), cap = count_arg(info, 2, op), d = count_arg(info, 3, op);
  if (cap < T) throw_arg(info, op, "cap " + S(cap) + " is less than T " + S(T));
  std::string ctx = "groups=" + S(groups) + ", T=" + S(T) + ", cap=" + S(cap) + ", d=" + S(d);
  Napi::TypedArray sa = typed_named(info, 4, op, "src", napi_uint8_array, "Uint8Array");
  const int64_t need = mul(info, op, mul(info, op, groups, cap), ((d + 31) / 32) * 34);
  check_len(info, op, "src", static_cast<int64_t>(sa.ElementLength()), need, ctx);
  const uint8_t* src = u8_arg(info, 4, op, need);
  float* dst = F32(info, 5, op, "dst", mul(info, op, mul(info, op, groups, T), d), ctx);
  dequant_q8_0_rows(groups, T, cap, d, src, dst);
  return info.Env().Undefined();
}

// Bytes of a typed array or DataView.
uint8_t* view_bytes(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, size_t* len) {
  if (i < info.Length() && info[i].IsDataView()) {
    Napi::DataView dv = info[i].As<Napi::DataView>();
    *len = dv.ByteLength();
    return static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
  }
  if (i >= info.Length() || !info[i].IsTypedArray())
    throw_arg(info, op, std::string(name) + " (argument " + S(static_cast<int64_t>(i)) + ") must be a typed array or DataView");
  return bytes_arg(info, i, op, len);
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  const char* op = "copy_strided";
  int eb = static_cast<int>(int_arg(info, 0, op, 1, 8));
  if (eb != 1 && eb != 2 && eb != 4 && eb != 8) throw_arg(info, op, "elemBytes must be 1, 2, 4 or 8, got " + S(eb));
  int64_t shape[kMaxRank], strides[kMaxRank], total;
  int nd = read_shape(info, 1, op, shape, &total);
  size_t src_bytes = 0, dst_bytes = 0;
  const uint8_t* src = view_bytes(info, 2, op, "src", &src_bytes);
  int64_t offset = int_arg(info, 3, op, -kMaxCount, kMaxCount);
  read_strides(info, 4, op, "srcStrides", nd, shape, total, offset, static_cast<int64_t>(src_bytes) / eb,
               "src (in elements)", strides);
  uint8_t* dst = view_bytes(info, 5, op, "dst", &dst_bytes);
  int64_t need = mul(info, op, total, eb);
  if (static_cast<int64_t>(dst_bytes) < need)
    throw_arg(info, op, "dst has " + S(static_cast<int64_t>(dst_bytes)) + " bytes, needs " + S(need) + " (" + S(total) +
                            " elements of " + S(eb) + " bytes)");
  copy_strided(eb, nd, shape, src, offset, strides, dst);
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  set_fn(env, exports, "unaryF32", UnaryF32);
  set_fn(env, exports, "unaryGradF32", UnaryGradF32);
  set_fn(env, exports, "binaryF32", BinaryF32);
  set_fn(env, exports, "reduceF32", ReduceF32);
  set_fn(env, exports, "argmaxF32", ArgmaxF32);
  set_fn(env, exports, "softmaxF32", SoftmaxF32);
  set_fn(env, exports, "softmaxBackwardF32", SoftmaxBackwardF32);
  set_fn(env, exports, "rmsNormF32", RmsNormF32);
  set_fn(env, exports, "rmsNormBackwardF32", RmsNormBackwardF32);
  set_fn(env, exports, "ropeF32", RopeF32);
  set_fn(env, exports, "swigluF32", SwigluF32);
  set_fn(env, exports, "swigluBackwardF32", SwigluBackwardF32);
  set_fn(env, exports, "adamwF32", AdamwF32);
  set_fn(env, exports, "castF32ToBF16", CastF32ToBF16);
  set_fn(env, exports, "castBF16ToF32", CastBF16ToF32);
  set_fn(env, exports, "castF32ToF16", CastF32ToF16);
  set_fn(env, exports, "castF16ToF32", CastF16ToF32);
  set_fn(env, exports, "copyStrided", CopyStrided);
  set_fn(env, exports, "dequantQ8Rows", DequantQ8Rows);
}
FATHOM_REGISTER(Register);

}  // namespace
}  // namespace fathom
