// Softmax / log-softmax (forward and backward) over the last axis, and RMSNorm (forward and backward).
// rms_norm_backward accumulates dw deterministically: rows split into a fixed number of chunks (a function
// of rows and n only), each chunk sums into its own partial row, and the partials are added in order.
#include <cmath>
#include <cstring>
#include <vector>
#include "kernels/ops.h"
#include "pool.h"

namespace fathom {
namespace ops_scalar {

void softmax_row(int64_t n, const float* x, float* y, int log) {
  if (n <= 0) return;
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  double s = 0;
  if (log) {
    for (int64_t i = 0; i < n; i++) s += std::exp(x[i] - mx);
    float l = static_cast<float>(std::log(s));
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mx) - l;
    return;
  }
  for (int64_t i = 0; i < n; i++) { float e = std::exp(x[i] - mx); y[i] = e; s += e; }
  float inv = static_cast<float>(1.0 / s);
  for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

void softmax_bwd_row(int64_t n, const float* y, const float* dy, float* dx, int log) {
  double s = 0;
  if (log) {
    for (int64_t i = 0; i < n; i++) s += dy[i];
    float sf = static_cast<float>(s);
    for (int64_t i = 0; i < n; i++) dx[i] = dy[i] - std::exp(y[i]) * sf;
    return;
  }
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(dy[i]) * y[i];
  float sf = static_cast<float>(s);
  for (int64_t i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - sf);
}

float rmsnorm_row(int64_t n, const float* x, const float* w, float eps, float* y) {
  double ss = 0;                                   // as ggml: f32 squares summed in f64; mean, sqrt, 1/x in f32
  for (int64_t i = 0; i < n; i++) ss += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(ss / static_cast<double>(n));
  float r = 1.0f / std::sqrt(mean + eps);
  if (w) for (int64_t i = 0; i < n; i++) y[i] = x[i] * r * w[i];
  else for (int64_t i = 0; i < n; i++) y[i] = x[i] * r;
  return r;
}

void rmsnorm_bwd_row(int64_t n, const float* x, const float* w, float rstd, const float* dy, float* dx, float* dwacc) {
  double dot = 0;
  for (int64_t i = 0; i < n; i++) dot += static_cast<double>(w ? dy[i] * w[i] : dy[i]) * x[i];
  double rd = rstd;
  float k = static_cast<float>(rd * rd * rd * dot / static_cast<double>(n));
  for (int64_t i = 0; i < n; i++) {
    float d = dy[i], xv = x[i];
    float g = w ? d * w[i] : d;
    dx[i] = rstd * g - k * xv;
    if (dwacc) dwacc[i] += d * (xv * rstd);
  }
}

}  // namespace ops_scalar

void softmax_f32(int64_t rows, int64_t n, const float* x, float* y, bool log) {
  if (rows <= 0 || n <= 0) return;
  const OpsTable& T = ops_table();
  parallel_for(rows, ops_grain(rows, n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) T.softmax_row(n, x + r * n, y + r * n, log ? 1 : 0);
  });
}

void softmax_backward_f32(int64_t rows, int64_t n, const float* y, const float* dy, float* dx, bool log) {
  if (rows <= 0 || n <= 0) return;
  const OpsTable& T = ops_table();
  parallel_for(rows, ops_grain(rows, n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) T.softmax_bwd_row(n, y + r * n, dy + r * n, dx + r * n, log ? 1 : 0);
  });
}

void rms_norm_f32(int64_t rows, int64_t n, const float* x, const float* w, float eps, float* y, float* rstd) {
  if (rows <= 0 || n <= 0) return;
  const OpsTable& T = ops_table();
  parallel_for(rows, ops_grain(rows, n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) rstd[r] = T.rmsnorm_row(n, x + r * n, w, eps, y + r * n);
  });
}

void rms_norm_backward_f32(int64_t rows, int64_t n, const float* x, const float* w, const float* rstd,
                           const float* dy, float* dx, float* dw) {
  if (rows <= 0 || n <= 0) return;
  const OpsTable& T = ops_table();
  if (!dw) {
    parallel_for(rows, ops_grain(rows, n), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) T.rmsnorm_bwd_row(n, x + r * n, w, rstd[r], dy + r * n, dx + r * n, nullptr);
    });
    return;
  }
  // Fixed chunking: at least kOpsGrain elements per chunk, at most 64 chunks.
  int64_t per = (kOpsGrain + n - 1) / n;
  if (per < (rows + 63) / 64) per = (rows + 63) / 64;
  if (per < 1) per = 1;
  const int64_t chunks = (rows + per - 1) / per;
  std::vector<float> part(static_cast<size_t>(chunks * n), 0.0f);
  parallel_for(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; c++) {
      float* acc = part.data() + c * n;
      int64_t r1 = (c + 1) * per < rows ? (c + 1) * per : rows;
      for (int64_t r = c * per; r < r1; r++)
        T.rmsnorm_bwd_row(n, x + r * n, w, rstd[r], dy + r * n, dx + r * n, acc);
    }
  });
  // dw += ((p0 + p1) + p2) + ..., column blocks in parallel, chunk order fixed.
  const int64_t blk = 1024;
  parallel_for((n + blk - 1) / blk, ops_grain((n + blk - 1) / blk, blk * chunks), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      int64_t j = t * blk, len = n - j < blk ? n - j : blk;
      float* p0 = part.data() + j;
      for (int64_t c = 1; c < chunks; c++) T.binary_row(B_ADD, len, p0, 1, p0 + c * n, 1, p0);
      T.binary_row(B_ADD, len, dw + j, 1, p0, 1, dw + j);
    }
  });
}

}  // namespace fathom
