// fp32 <-> bf16 / f16 casts (round to nearest even, NaN kept; bit-exact with common.h on every path) and
// strided copies of 1/2/4/8-byte elements into a contiguous destination.
#include <cstring>
#include "common.h"
#include "kernels/ops.h"
#include "pool.h"

namespace fathom {
namespace ops_scalar {

void f32_to_bf16(int64_t n, const float* x, uint16_t* y) { for (int64_t i = 0; i < n; i++) y[i] = fathom::f32_to_bf16(x[i]); }
void bf16_to_f32(int64_t n, const uint16_t* x, float* y) { for (int64_t i = 0; i < n; i++) y[i] = fathom::bf16_to_f32(x[i]); }
void f32_to_f16(int64_t n, const float* x, uint16_t* y) { for (int64_t i = 0; i < n; i++) y[i] = fathom::f32_to_f16(x[i]); }
void f16_to_f32(int64_t n, const uint16_t* x, float* y) { for (int64_t i = 0; i < n; i++) y[i] = fathom::f16_to_f32(x[i]); }

}  // namespace ops_scalar

void cast_f32_to_bf16(int64_t n, const float* x, uint16_t* y) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.f32_to_bf16(e - b, x + b, y + b); });
}
void cast_bf16_to_f32(int64_t n, const uint16_t* x, float* y) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.bf16_to_f32(e - b, x + b, y + b); });
}
void cast_f32_to_f16(int64_t n, const float* x, uint16_t* y) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.f32_to_f16(e - b, x + b, y + b); });
}
void cast_f16_to_f32(int64_t n, const uint16_t* x, float* y) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.f16_to_f32(e - b, x + b, y + b); });
}

void dequant_q8_0_rows(int64_t groups, int64_t T, int64_t cap, int64_t d, const uint8_t* src, float* dst) {
  const int64_t nb = (d + 31) / 32, rb = nb * 34, rows = groups * T;
  parallel_for(rows, ops_grain(rows, d), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t g = r / T, t = r % T;
      const uint8_t* s = src + (g * cap + t) * rb;
      float* o = dst + r * d;
      for (int64_t b = 0; b < nb; b++, s += 34) {
        const float sc = fathom::f16_to_f32(static_cast<uint16_t>(s[0] | (s[1] << 8)));
        const int8_t* q = reinterpret_cast<const int8_t*>(s + 2);
        const int64_t n = d - b * 32 < 32 ? d - b * 32 : 32;
        float* ob = o + b * 32;
        if (n == 32) for (int j = 0; j < 32; j++) ob[j] = sc * static_cast<float>(q[j]);
        else for (int64_t j = 0; j < n; j++) ob[j] = sc * static_cast<float>(q[j]);
      }
    }
  });
}

namespace {
const int kMaxDims = 64;

template <int EB>
void gather(int64_t len, const uint8_t* src, int64_t stride, uint8_t* dst) {
  if (stride == 1) { std::memcpy(dst, src, static_cast<size_t>(len) * EB); return; }
  const int64_t sb = stride * EB;
  for (int64_t i = 0; i < len; i++) std::memcpy(dst + i * EB, src + i * sb, EB);
}
}  // namespace

void copy_strided(int elem_bytes, int ndim, const int64_t* shape, const uint8_t* src, int64_t offset,
                  const int64_t* strides, uint8_t* dst) {
  if (ndim > kMaxDims) return;  // rejected by the binding
  int64_t sh[kMaxDims], st[1][kMaxDims];
  int nd = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    if (nd > 0 && st[0][nd - 1] == strides[d] * shape[d]) { sh[nd - 1] *= shape[d]; st[0][nd - 1] = strides[d]; }
    else { sh[nd] = shape[d]; st[0][nd] = strides[d]; nd++; }
  }
  if (nd == 0) { sh[0] = 1; st[0][0] = 0; nd = 1; }
  const int64_t eb = elem_bytes, is = st[0][nd - 1];
  const uint8_t* base = src + offset * eb;
  strided_for<1>(nd, sh, st, [&](int64_t len, const int64_t* off, int64_t pos) {
    const uint8_t* s = base + off[0] * eb;
    uint8_t* d = dst + pos * eb;
    switch (elem_bytes) {
      case 1: gather<1>(len, s, is, d); break;
      case 2: gather<2>(len, s, is, d); break;
      case 4: gather<4>(len, s, is, d); break;
      default: gather<8>(len, s, is, d); break;
    }
  });
}

}  // namespace fathom
