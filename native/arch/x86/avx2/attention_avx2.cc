// AVX2 + FMA micro-kernels for the tiled attention driver (native/kernels/attention.cc). Plain functions and
// intrinsics only; templates live in an anonymous namespace (internal linkage, never shared with baseline code).
#if !defined(FATHOM_NO_X86)
#include <immintrin.h>
#include "kernels/attention.h"

namespace fathom {
namespace {

// exp(x), Cephes polynomial; exactly 0 below -87.3 (incl. -inf); x is clamped above at 88.02.
inline __m256 exp_ps(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  x = _mm256_min_ps(x, _mm256_set1_ps(88.02f));
  x = _mm256_max_ps(x, lo);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(e)), keep);
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline float hsum(__m256 v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  m = _mm_add_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// R rows x 16 columns (two ymm) of C = scale * A . Bt, at column offset col.
template <int R>
inline void scores_tile(const float* A, int64_t lda, int K, const float* Bt, float* C, float scale) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) { acc[r][0] = _mm256_setzero_ps(); acc[r][1] = _mm256_setzero_ps(); }
  for (int d = 0; d < K; d++) {
    const float* b = Bt + static_cast<int64_t>(d) * ATTN_BK;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m256 x = _mm256_broadcast_ss(A + r * lda + d);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  const __m256 s = _mm256_set1_ps(scale);
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    _mm256_storeu_ps(C + r * ATTN_BK, _mm256_mul_ps(acc[r][0], s));
    _mm256_storeu_ps(C + r * ATTN_BK + 8, _mm256_mul_ps(acc[r][1], s));
  }
}

template <int R>
inline void scores_rows(const float* A, int64_t lda, int K, const float* Bt, float* C, float scale) {
  for (int c = 0; c < ATTN_BK; c += 16) scores_tile<R>(A, lda, K, Bt + c, C + c, scale);
}

void scores(const float* A, int64_t lda, int nrows, int K, const float* Bt, float* C, float scale) {
  int r = 0;
  for (; r + 6 <= nrows; r += 6) scores_rows<6>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale);
  switch (nrows - r) {
    case 5: scores_rows<5>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    case 4: scores_rows<4>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    case 3: scores_rows<3>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    case 2: scores_rows<2>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    case 1: scores_rows<1>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    default: break;
  }
}

// 8x8 transpose: dst[c*64 + k] = src[k*ld + c].
inline void tr8x8(const float* src, int64_t ld, float* dst) {
  const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld), r2 = _mm256_loadu_ps(src + 2 * ld),
               r3 = _mm256_loadu_ps(src + 3 * ld), r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld),
               r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
               t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
               t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
               u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
               u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
               u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * ATTN_BK, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * ATTN_BK, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ATTN_BK, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ATTN_BK, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ATTN_BK, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ATTN_BK, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ATTN_BK, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ATTN_BK, _mm256_permute2f128_ps(u3, u7, 0x31));
}

void pack_t(const float* src, int64_t ld, int nk, int64_t D, float* Kt) {
  const int64_t d8 = D & ~int64_t(7);
  int j0 = 0;
  for (; j0 + 8 <= nk; j0 += 8) {
    const float* s = src + j0 * ld;
    for (int64_t d = 0; d < d8; d += 8) tr8x8(s + d, ld, Kt + d * ATTN_BK + j0);
    for (int64_t d = d8; d < D; d++)
      for (int k = 0; k < 8; k++) Kt[d * ATTN_BK + j0 + k] = s[k * ld + d];
  }
  for (int64_t d = 0; d < D; d++) {
    float* dst = Kt + d * ATTN_BK;
    for (int j = j0; j < nk; j++) dst[j] = src[j * ld + d];
    for (int j = nk; j < ATTN_BK; j++) dst[j] = 0.f;
  }
}

// R rows x 16 columns: C = alpha*C + sum_t A[r*asr + t*ast] X[t*xp + ..]
template <int R>
inline void acc_tile(const float* A, int64_t asr, int64_t ast, int n, const float* X, int64_t xp, float* C,
                     const float* alpha) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    const __m256 al = _mm256_set1_ps(alpha ? alpha[r] : 1.f);
    acc[r][0] = _mm256_mul_ps(al, _mm256_loadu_ps(C + r * xp));
    acc[r][1] = _mm256_mul_ps(al, _mm256_loadu_ps(C + r * xp + 8));
  }
  for (int t = 0; t < n; t++) {
    const float* xr = X + t * xp;
    const __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m256 w = _mm256_broadcast_ss(A + r * asr + t * ast);
      acc[r][0] = _mm256_fmadd_ps(w, x0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(w, x1, acc[r][1]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    _mm256_storeu_ps(C + r * xp, acc[r][0]);
    _mm256_storeu_ps(C + r * xp + 8, acc[r][1]);
  }
}

template <int R>
inline void acc_rows(const float* A, int64_t asr, int64_t ast, int n, const float* X, int64_t xp, float* C,
                     const float* alpha) {
  for (int64_t c0 = 0; c0 < xp; c0 += 16) acc_tile<R>(A, asr, ast, n, X + c0, xp, C + c0, alpha);
}

void gemm_acc(const float* A, int64_t asr, int64_t ast, int nrows, int n, const float* X, int64_t xp, float* C,
              const float* alpha) {
  int r = 0;
  for (; r + 6 <= nrows; r += 6)
    acc_rows<6>(A + r * asr, asr, ast, n, X, xp, C + r * xp, alpha ? alpha + r : nullptr);
  const float* al = alpha ? alpha + r : nullptr;
  switch (nrows - r) {
    case 5: acc_rows<5>(A + r * asr, asr, ast, n, X, xp, C + r * xp, al); break;
    case 4: acc_rows<4>(A + r * asr, asr, ast, n, X, xp, C + r * xp, al); break;
    case 3: acc_rows<3>(A + r * asr, asr, ast, n, X, xp, C + r * xp, al); break;
    case 2: acc_rows<2>(A + r * asr, asr, ast, n, X, xp, C + r * xp, al); break;
    case 1: acc_rows<1>(A + r * asr, asr, ast, n, X, xp, C + r * xp, al); break;
    default: break;
  }
}

void softmax(float* S, int nrows, float* m, float* l, float* alpha) {
  const float ninf = -__builtin_inff();
  for (int r = 0; r < nrows; r++) {
    float* s = S + r * ATTN_BK;
    __m256 v[8];
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) v[c] = _mm256_loadu_ps(s + c * 8);
    const __m256 m01 = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    const __m256 m23 = _mm256_max_ps(_mm256_max_ps(v[4], v[5]), _mm256_max_ps(v[6], v[7]));
    const float mx = hmax(_mm256_max_ps(m01, m23));
    const float mo = m[r];
    const float mn = mo > mx ? mo : mx;
    if (mn == ninf) {
#pragma GCC unroll 8
      for (int c = 0; c < 8; c++) _mm256_storeu_ps(s + c * 8, _mm256_setzero_ps());
      alpha[r] = 1.f;
      continue;
    }
    const __m256 mv = _mm256_set1_ps(mn);
    __m256 sum = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
      const __m256 p = exp_ps(_mm256_sub_ps(v[c], mv));
      _mm256_storeu_ps(s + c * 8, p);
      sum = _mm256_add_ps(sum, p);
    }
    const float al = _mm256_cvtss_f32(exp_ps(_mm256_set1_ps(mo - mn)));
    l[r] = l[r] * al + hsum(sum);
    m[r] = mn;
    alpha[r] = al;
  }
}

void exp_rows(float* S, int nrows, const float* lse) {
  const float ninf = -__builtin_inff();
  for (int r = 0; r < nrows; r++) {
    float* s = S + r * ATTN_BK;
    if (lse[r] == ninf) {
#pragma GCC unroll 8
      for (int c = 0; c < 8; c++) _mm256_storeu_ps(s + c * 8, _mm256_setzero_ps());
      continue;
    }
    const __m256 L = _mm256_set1_ps(lse[r]);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) _mm256_storeu_ps(s + c * 8, exp_ps(_mm256_sub_ps(_mm256_loadu_ps(s + c * 8), L)));
  }
}

void ds_rows(const float* P, float* dP, int nrows, const float* Di) {
  for (int r = 0; r < nrows; r++) {
    const __m256 d = _mm256_set1_ps(Di[r]);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
      const int64_t o = r * ATTN_BK + c * 8;
      _mm256_storeu_ps(dP + o, _mm256_mul_ps(_mm256_loadu_ps(P + o), _mm256_sub_ps(_mm256_loadu_ps(dP + o), d)));
    }
  }
}

}  // namespace

extern const AttnKernels attn_kernels_avx2 = {scores, pack_t, gemm_acc, softmax, exp_rows, ds_rows};

}  // namespace fathom
#endif
