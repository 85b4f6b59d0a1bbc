// Reductions over the middle axis of [outer, n, inner]: sum (f64 accumulation), max, min (NaN propagates),
// argmax (first maximum; NaN counts as the maximum). Long rows are split into fixed-size pieces whose
// partial results combine in a fixed order, so results do not depend on the thread count.
#include <cmath>
#include <vector>
#include "kernels/ops.h"
#include "pool.h"

namespace fathom {
namespace ops_scalar {

double sum_row(int64_t n, const float* x) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) { s0 += x[i]; s1 += x[i + 1]; s2 += x[i + 2]; s3 += x[i + 3]; }
  for (; i < n; i++) s0 += x[i];
  return (s0 + s1) + (s2 + s3);
}

float minmax_row(int is_max, int64_t n, const float* x) {
  float m = x[0];
  for (int64_t i = 0; i < n; i++) {
    float v = x[i];
    if (v != v) return v;
    if (is_max ? v > m : v < m) m = v;
  }
  return m;
}

void reduce_cols(int op, int64_t n, int64_t width, int64_t stride, const float* x, float* y) {
  if (op == R_SUM) {
    std::vector<double> acc(static_cast<size_t>(width), 0.0);
    for (int64_t k = 0; k < n; k++) {
      const float* p = x + k * stride;
      for (int64_t j = 0; j < width; j++) acc[j] += p[j];
    }
    for (int64_t j = 0; j < width; j++) y[j] = static_cast<float>(acc[j]);
    return;
  }
  const bool is_max = op == R_MAX;
  for (int64_t j = 0; j < width; j++) y[j] = is_max ? -INFINITY : INFINITY;
  for (int64_t k = 0; k < n; k++) {
    const float* p = x + k * stride;
    for (int64_t j = 0; j < width; j++) {
      float v = p[j], m = y[j];
      if (m != m) continue;
      if (v != v || (is_max ? v > m : v < m)) y[j] = v;
    }
  }
}

}  // namespace ops_scalar

namespace {
const int64_t kRowPiece = 65536;   // long rows reduce in pieces of this many elements
const int64_t kColBlock = 256;     // columns per task when inner > 1
}  // namespace

void reduce_f32(int op, int64_t outer, int64_t n, int64_t inner, const float* x, float* y) {
  if (outer <= 0 || inner <= 0) return;
  const OpsTable& T = ops_table();
  if (n == 0) {
    float v = op == R_SUM ? 0.0f : op == R_MAX ? -INFINITY : INFINITY;
    for (int64_t i = 0; i < outer * inner; i++) y[i] = v;
    return;
  }
  if (inner == 1) {
    if (n <= kRowPiece) {
      parallel_for(outer, ops_grain(outer, n), [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; r++) {
          const float* p = x + r * n;
          y[r] = op == R_SUM ? static_cast<float>(T.sum_row(n, p)) : T.minmax_row(op == R_MAX, n, p);
        }
      });
      return;
    }
    const int64_t pieces = (n + kRowPiece - 1) / kRowPiece;
    std::vector<double> part(static_cast<size_t>(outer * pieces));
    parallel_for(outer * pieces, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; t++) {
        int64_t r = t / pieces, q = t % pieces;
        int64_t lo = q * kRowPiece, len = n - lo < kRowPiece ? n - lo : kRowPiece;
        const float* p = x + r * n + lo;
        part[t] = op == R_SUM ? T.sum_row(len, p) : static_cast<double>(T.minmax_row(op == R_MAX, len, p));
      }
    });
    for (int64_t r = 0; r < outer; r++) {
      const double* p = part.data() + r * pieces;
      double acc = p[0];
      for (int64_t q = 1; q < pieces; q++) {
        double v = p[q];
        if (op == R_SUM) acc += v;
        else if (acc != acc) break;
        else if (v != v || (op == R_MAX ? v > acc : v < acc)) acc = v;
      }
      y[r] = static_cast<float>(acc);
    }
    return;
  }
  const int64_t blocks = (inner + kColBlock - 1) / kColBlock;
  parallel_for(outer * blocks, ops_grain(outer * blocks, n * kColBlock), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      int64_t o = t / blocks, j = (t % blocks) * kColBlock;
      int64_t w = inner - j < kColBlock ? inner - j : kColBlock;
      T.reduce_cols(op, n, w, inner, x + o * n * inner + j, y + o * inner + j);
    }
  });
}

void argmax_f32(int64_t outer, int64_t n, int64_t inner, const float* x, int32_t* idx) {
  if (outer <= 0 || inner <= 0 || n <= 0) return;
  if (inner == 1) {
    parallel_for(outer, ops_grain(outer, n), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; r++) {
        const float* p = x + r * n;
        float best = p[0];
        int64_t bi = 0;
        if (best == best) {
          for (int64_t k = 1; k < n; k++) {
            float v = p[k];
            if (v != v) { bi = k; break; }
            if (v > best) { best = v; bi = k; }
          }
        }
        idx[r] = static_cast<int32_t>(bi);
      }
    });
    return;
  }
  parallel_for(outer, ops_grain(outer, n * inner), [&](int64_t b, int64_t e) {
    std::vector<float> best(static_cast<size_t>(inner));
    for (int64_t o = b; o < e; o++) {
      const float* p = x + o * n * inner;
      int32_t* out = idx + o * inner;
      for (int64_t j = 0; j < inner; j++) { best[j] = p[j]; out[j] = 0; }
      for (int64_t k = 1; k < n; k++) {
        const float* q = p + k * inner;
        for (int64_t j = 0; j < inner; j++) {
          float v = q[j], m = best[j];
          if (m != m) continue;
          if (v != v || v > m) { best[j] = v; out[j] = static_cast<int32_t>(k); }
        }
      }
    }
  });
}

}  // namespace fathom
