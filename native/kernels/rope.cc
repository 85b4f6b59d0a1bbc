// Rotary position embedding over rows of length D (rotDim rotated, the rest copied), forward or inverse.
#include <cstring>
#include "kernels/ops.h"
#include "pool.h"

namespace fathom {
namespace ops_scalar {

void rope_row(int64_t half, const float* x, float* y, const float* c, const float* s, int interleaved, int inverse) {
  for (int64_t i = 0; i < half; i++) {
    int64_t i1 = interleaved ? 2 * i : i, i2 = interleaved ? 2 * i + 1 : i + half;
    float a = x[i1], b = x[i2], cv = c[i], sv = inverse ? -s[i] : s[i];
    y[i1] = a * cv - b * sv;
    y[i2] = b * cv + a * sv;
  }
}

}  // namespace ops_scalar

void rope_f32(int64_t rows, int64_t D, int64_t rot_dim, const float* x, float* y, const float* cos_t,
              const float* sin_t, const int32_t* pos, bool interleaved, bool inverse) {
  if (rows <= 0 || D <= 0) return;
  const OpsTable& T = ops_table();
  const int64_t half = rot_dim / 2;
  parallel_for(rows, ops_grain(rows, D), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * D;
      float* yr = y + r * D;
      int64_t p = pos[r];
      if (half > 0) T.rope_row(half, xr, yr, cos_t + p * half, sin_t + p * half, interleaved ? 1 : 0, inverse ? 1 : 0);
      if (xr != yr && D > rot_dim) std::memmove(yr + rot_dim, xr + rot_dim, sizeof(float) * (D - rot_dim));
    }
  });
}

}  // namespace fathom
