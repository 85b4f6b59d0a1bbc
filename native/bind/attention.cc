// N-API glue for the tiled attention kernels (native/kernels/attention.h).
//   attentionF32(B, Hq, Hkv, Tq, Tk, D, Dv, q, k, v, out, lse|null, scale, causal, qOffset, mask|null, maskStrides|null
//                [, kStrides|null, vStrides|null])
//   attentionBackwardF32(B, Hq, Hkv, Tq, Tk, D, Dv, q, k, v, out, lse, dout, dq, dk, dv, scale, causal, qOffset,
//                        mask|null, maskStrides|null)
// Sizes: B, Hq, Hkv, D, Dv >= 1; Tq, Tk >= 0 (Tq = 0: nothing to do; Tk = 0: every query sees no key, so
// out = 0, lse = -inf, and in backward dq = 0). Hq % Hkv == 0. qOffset >= 0 (only used when causal).
// Typed arrays may be longer than needed (only the leading elements are used). The mask is a Float32Array
// (additive) or a Uint8Array (boolean, nonzero = attend); maskStrides an Int32Array of exactly 4 entries >= 0,
// and the largest reachable mask index must lie inside the mask. Outputs must not overlap the inputs.
// kStrides / vStrides (forward only): Float64Arrays [batch, head, row] of integer strides >= 0 in elements (the last
// axis is contiguous): k[b, h, j, d] = k[b*s[0] + h*s[1] + j*s[2] + d]; the largest reachable index must lie inside
// the array. Null or absent: contiguous. They let a cache view (a [B, Hkv, capacity, D] buffer narrowed along T) be
// read in place.
#include <new>
#include <string>
#include "bind.h"
#include "kernels/attention.h"

namespace fathom {
namespace {

constexpr int64_t kMaxDim = 2147483647;       // any single size
constexpr int64_t kMaxHeadDim = 1 << 20;      // D, Dv (per-task scratch is O(64 * D))
constexpr int64_t kMaxElems = int64_t(1) << 52;

std::string dims(std::initializer_list<std::pair<const char*, int64_t>> l) {
  std::string s = "(";
  bool first = true;
  for (auto& p : l) {
    if (!first) s += ", ";
    first = false;
    s += p.first;
    s += "=";
    s += std::to_string(p.second);
  }
  return s + ")";
}

// Product with an overflow guard (every factor is in [0, 2^31)).
int64_t count(const Napi::CallbackInfo& info, const char* op, std::initializer_list<int64_t> f) {
  int64_t n = 1;
  for (int64_t x : f) {
    if (x != 0 && n > kMaxElems / x) throw_arg(info, op, "tensor sizes are too large");
    n *= x;
  }
  return n;
}

Napi::TypedArray typed_array(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name) {
  if (i >= info.Length() || !info[i].IsTypedArray())
    throw_arg(info, op, std::string(name) + " (argument " + std::to_string(i) + ") must be a typed array");
  return info[i].As<Napi::TypedArray>();
}

void* data_of(Napi::TypedArray ta) {
  return static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
}

float* f32(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int64_t need,
           const std::string& why) {
  Napi::TypedArray ta = typed_array(info, i, op, name);
  if (ta.TypedArrayType() != napi_float32_array)
    throw_arg(info, op, std::string(name) + " (argument " + std::to_string(i) + ") must be a Float32Array");
  if (static_cast<int64_t>(ta.ElementLength()) < need)
    throw_arg(info, op, std::string(name) + " has " + std::to_string(ta.ElementLength()) + " elements, needs " +
                            std::to_string(need) + " " + why);
  return static_cast<float*>(data_of(ta));
}

// Reads the 7 sizes at arguments 0..6.
void read_sizes(const Napi::CallbackInfo& info, const char* op, AttnArgs& a) {
  a.B = int_arg(info, 0, op, 1, kMaxDim);
  a.Hq = int_arg(info, 1, op, 1, kMaxDim);
  a.Hkv = int_arg(info, 2, op, 1, kMaxDim);
  a.Tq = int_arg(info, 3, op, 0, kMaxDim);
  a.Tk = int_arg(info, 4, op, 0, kMaxDim);
  a.D = int_arg(info, 5, op, 1, kMaxHeadDim);
  a.Dv = int_arg(info, 6, op, 1, kMaxHeadDim);
  if (a.Hq % a.Hkv != 0)
    throw_arg(info, op, "Hq (" + std::to_string(a.Hq) + ") must be a multiple of Hkv (" + std::to_string(a.Hkv) + ")");
}

// scale, causal, qOffset, mask, maskStrides starting at argument i.
void read_tail(const Napi::CallbackInfo& info, size_t i, const char* op, AttnArgs& a) {
  const double scale = num_arg(info, i, op);
  a.scale = static_cast<float>(scale);
  a.causal = bool_arg(info, i + 1, op);
  a.q_offset = int_arg(info, i + 2, op, 0, int64_t(1) << 52);
  a.mask_add = nullptr;
  a.mask_bool = nullptr;
  a.ms[0] = a.ms[1] = a.ms[2] = a.ms[3] = 0;
  if (is_nullish(info, i + 3)) return;
  Napi::TypedArray m = typed_array(info, i + 3, op, "mask");
  const napi_typedarray_type mt = m.TypedArrayType();
  if (mt != napi_float32_array && mt != napi_uint8_array)
    throw_arg(info, op, "mask must be a Float32Array (additive) or a Uint8Array (boolean)");
  if (is_nullish(info, i + 4) || !info[i + 4].IsTypedArray() ||
      info[i + 4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(info, op, "maskStrides must be an Int32Array of 4 entries when a mask is given");
  Napi::TypedArray st = info[i + 4].As<Napi::TypedArray>();
  if (st.ElementLength() != 4)
    throw_arg(info, op, "maskStrides has " + std::to_string(st.ElementLength()) + " entries, needs 4");
  const int32_t* s = static_cast<const int32_t*>(data_of(st));
  const int64_t n[4] = {a.B, a.Hq, a.Tq, a.Tk};
  int64_t maxi = 0;
  for (int d = 0; d < 4; d++) {
    if (s[d] < 0) throw_arg(info, op, "maskStrides[" + std::to_string(d) + "] = " + std::to_string(s[d]) + " is negative");
    a.ms[d] = s[d];
    maxi += (n[d] - 1) * static_cast<int64_t>(s[d]);
  }
  const int64_t len = static_cast<int64_t>(m.ElementLength());
  if (a.Tq > 0 && a.Tk > 0 && maxi >= len)
    throw_arg(info, op, "mask has " + std::to_string(len) + " elements, but maskStrides [" + std::to_string(s[0]) + ", " +
                            std::to_string(s[1]) + ", " + std::to_string(s[2]) + ", " + std::to_string(s[3]) +
                            "] reach index " + std::to_string(maxi) + " " +
                            dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}, {"Tk", a.Tk}}));
  if (mt == napi_float32_array) a.mask_add = static_cast<const float*>(data_of(m));
  else a.mask_bool = static_cast<const uint8_t*>(data_of(m));
}

// Optional k/v strides at argument i (Float64Array of 3); checks that the largest reachable index of an
// [B, H, T, width] view lies inside `len` elements. Leaves `s` alone when absent.
void read_kv_strides(const Napi::CallbackInfo& info, size_t i, const char* op, const char* name, int64_t B, int64_t H,
                     int64_t T, int64_t width, int64_t len, int64_t* s) {
  if (i >= info.Length() || is_nullish(info, i)) return;
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[i].As<Napi::TypedArray>().ElementLength() != 3)
    throw_arg(info, op, std::string(name) + " (argument " + std::to_string(i) + ") must be a Float64Array of 3 entries [batch, head, row]");
  const double* d = static_cast<const double*>(data_of(info[i].As<Napi::TypedArray>()));
  int64_t maxi = width - 1;
  const int64_t n[3] = {B, H, T};
  for (int x = 0; x < 3; x++) {
    if (!(d[x] >= 0) || d[x] > 9007199254740991.0 || d[x] != static_cast<double>(static_cast<int64_t>(d[x])))
      throw_arg(info, op, std::string(name) + "[" + std::to_string(x) + "] = " + std::to_string(d[x]) + " is not an integer >= 0");
    s[x] = static_cast<int64_t>(d[x]);
    if (n[x] > 1 && s[x] > (kMaxElems - maxi) / (n[x] - 1)) throw_arg(info, op, std::string(name) + " reach too far");
    maxi += (n[x] - 1) * s[x];
  }
  if (T > 0 && maxi >= len)
    throw_arg(info, op, std::string(name) + " [" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ", " + std::to_string(s[2]) +
                            "] reach index " + std::to_string(maxi) + " of an array of " + std::to_string(len) + " elements " +
                            dims({{"B", B}, {"H", H}, {"T", T}, {"width", width}}));
}

int64_t elements(const Napi::CallbackInfo& info, size_t i) { return static_cast<int64_t>(info[i].As<Napi::TypedArray>().ElementLength()); }

Napi::Value AttentionF32(const Napi::CallbackInfo& info) {
  const char* op = "attention_f32";
  AttnArgs a{};
  read_sizes(info, op, a);
  const int64_t nq = count(info, op, {a.B, a.Hq, a.Tq, a.D});
  const int64_t nk = count(info, op, {a.B, a.Hkv, a.Tk, a.D});
  const int64_t nv = count(info, op, {a.B, a.Hkv, a.Tk, a.Dv});
  const int64_t no = count(info, op, {a.B, a.Hq, a.Tq, a.Dv});
  const int64_t nl = count(info, op, {a.B, a.Hq, a.Tq});
  attn_contiguous_kv(a);
  const bool kstr = info.Length() > 17 && !is_nullish(info, 17), vstr = info.Length() > 18 && !is_nullish(info, 18);
  a.q = f32(info, 7, op, "q", nq, dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}, {"D", a.D}}));
  a.k = f32(info, 8, op, "k", kstr ? 0 : nk, dims({{"B", a.B}, {"Hkv", a.Hkv}, {"Tk", a.Tk}, {"D", a.D}}));
  a.v = f32(info, 9, op, "v", vstr ? 0 : nv, dims({{"B", a.B}, {"Hkv", a.Hkv}, {"Tk", a.Tk}, {"Dv", a.Dv}}));
  a.out = f32(info, 10, op, "out", no, dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}, {"Dv", a.Dv}}));
  a.lse = is_nullish(info, 11) ? nullptr : f32(info, 11, op, "lse", nl, dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}}));
  read_tail(info, 12, op, a);
  read_kv_strides(info, 17, op, "kStrides", a.B, a.Hkv, a.Tk, a.D, elements(info, 8), a.ks);
  read_kv_strides(info, 18, op, "vStrides", a.B, a.Hkv, a.Tk, a.Dv, elements(info, 9), a.vs);
  try {
    attention_f32(a);
  } catch (const std::bad_alloc&) {
    throw_arg(info, op, "out of memory");
  }
  return info.Env().Undefined();
}

Napi::Value AttentionBackwardF32(const Napi::CallbackInfo& info) {
  const char* op = "attention_backward_f32";
  AttnArgs a{};
  read_sizes(info, op, a);
  const int64_t nq = count(info, op, {a.B, a.Hq, a.Tq, a.D});
  const int64_t nk = count(info, op, {a.B, a.Hkv, a.Tk, a.D});
  const int64_t nv = count(info, op, {a.B, a.Hkv, a.Tk, a.Dv});
  const int64_t no = count(info, op, {a.B, a.Hq, a.Tq, a.Dv});
  const int64_t nl = count(info, op, {a.B, a.Hq, a.Tq});
  const std::string qd = dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}, {"D", a.D}});
  const std::string kd = dims({{"B", a.B}, {"Hkv", a.Hkv}, {"Tk", a.Tk}, {"D", a.D}});
  const std::string vd = dims({{"B", a.B}, {"Hkv", a.Hkv}, {"Tk", a.Tk}, {"Dv", a.Dv}});
  const std::string od = dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}, {"Dv", a.Dv}});
  a.q = f32(info, 7, op, "q", nq, qd);
  a.k = f32(info, 8, op, "k", nk, kd);
  a.v = f32(info, 9, op, "v", nv, vd);
  a.out_in = f32(info, 10, op, "out", no, od);
  a.lse_in = f32(info, 11, op, "lse", nl, dims({{"B", a.B}, {"Hq", a.Hq}, {"Tq", a.Tq}}));
  a.dout = f32(info, 12, op, "dout", no, od);
  a.dq = f32(info, 13, op, "dq", nq, qd);
  a.dk = f32(info, 14, op, "dk", nk, kd);
  a.dv = f32(info, 15, op, "dv", nv, vd);
  read_tail(info, 16, op, a);
  attn_contiguous_kv(a);
  try {
    attention_backward_f32(a);
  } catch (const std::bad_alloc&) {
    throw_arg(info, op, "out of memory");
  }
  return info.Env().Undefined();
}

void Register(Napi::Env env, Napi::Object exports) {
  set_fn(env, exports, "attentionF32", AttentionF32);
  set_fn(env, exports, "attentionBackwardF32", AttentionBackwardF32);
}
FATHOM_REGISTER(Register);

}  // namespace
}  // namespace fathom
