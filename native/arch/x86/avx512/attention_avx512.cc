// AVX-512 micro-kernels for the tiled attention driver (native/kernels/attention.cc). Plain functions and
// intrinsics only; templates live in an anonymous namespace (internal linkage, never shared with baseline code).
#if !defined(FATHOM_NO_X86)
// GCC 12 at -O3 warns falsely about _mm512_undefined_ps() inside unmasked AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include "kernels/attention.h"

namespace fathom {
namespace {

// exp(x) with ~1 ulp-ish relative error (Cephes polynomial); exactly 0 below -87.3 (incl. -inf).
inline __m512 exp_ps(__m512 x) {
  const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.33654f), _CMP_LT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~under), _mm512_scalef_ps(p, n));
}

// R rows x 64 columns of C = scale * A . Bt
template <int R>
inline void scores_tile(const float* A, int64_t lda, int K, const float* Bt, float* C, float scale) {
  __m512 acc[R][4];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
  for (int d = 0; d < K; d++) {
    const float* b = Bt + static_cast<int64_t>(d) * ATTN_BK;
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
                 b3 = _mm512_loadu_ps(b + 48);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m512 x = _mm512_set1_ps(A[r * lda + d]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
      acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
    }
  }
  const __m512 s = _mm512_set1_ps(scale);
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) _mm512_storeu_ps(C + r * ATTN_BK + c * 16, _mm512_mul_ps(acc[r][c], s));
}

void scores(const float* A, int64_t lda, int nrows, int K, const float* Bt, float* C, float scale) {
  int r = 0;
  for (; r + 4 <= nrows; r += 4) scores_tile<4>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale);
  switch (nrows - r) {
    case 3: scores_tile<3>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    case 2: scores_tile<2>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
    case 1: scores_tile<1>(A + r * lda, lda, K, Bt, C + r * ATTN_BK, scale); break;
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
// R rows x NV*16 columns: C = alpha*C + sum_t A[r*asr + t*ast] X[t*xp + ..]
template <int R, int NV>
inline void acc_tile(const float* A, int64_t asr, int64_t ast, int n, const float* X, int64_t xp, float* C,
                     const float* alpha) {
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
    const __m512 al = _mm512_set1_ps(alpha ? alpha[r] : 1.f);
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) acc[r][c] = _mm512_mul_ps(al, _mm512_loadu_ps(C + r * xp + c * 16));
  }
  for (int t = 0; t < n; t++) {
    const float* xr = X + t * xp;
    __m512 xv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) xv[c] = _mm512_loadu_ps(xr + c * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m512 w = _mm512_set1_ps(A[r * asr + t * ast]);
#pragma GCC unroll 4
      for (int c = 0; c < NV; c++) acc[r][c] = _mm512_fmadd_ps(w, xv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int c = 0; c < NV; c++) _mm512_storeu_ps(C + r * xp + c * 16, acc[r][c]);
}

template <int R>
inline void acc_rows(const float* A, int64_t asr, int64_t ast, int n, const float* X, int64_t xp, float* C,
                     const float* alpha) {
  int64_t c0 = 0;
  for (; c0 + 64 <= xp; c0 += 64) acc_tile<R, 4>(A, asr, ast, n, X + c0, xp, C + c0, alpha);
  switch ((xp - c0) / 16) {
    case 3: acc_tile<R, 3>(A, asr, ast, n, X + c0, xp, C + c0, alpha); break;
    case 2: acc_tile<R, 2>(A, asr, ast, n, X + c0, xp, C + c0, alpha); break;
    case 1: acc_tile<R, 1>(A, asr, ast, n, X + c0, xp, C + c0, alpha); break;
    default: break;
  }
}

void gemm_acc(const float* A, int64_t asr, int64_t ast, int nrows, int n, const float* X, int64_t xp, float* C,
              const float* alpha) {
  int r = 0;
  for (; r + 4 <= nrows; r += 4)
    acc_rows<4>(A + r * asr, asr, ast, n, X, xp, C + r * xp, alpha ? alpha + r : nullptr);
  const float* al = alpha ? alpha + r : nullptr;
  switch (nrows - r) {
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
    __m512 v0 = _mm512_loadu_ps(s), v1 = _mm512_loadu_ps(s + 16), v2 = _mm512_loadu_ps(s + 32),
           v3 = _mm512_loadu_ps(s + 48);
    const float mx = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(v0, v1), _mm512_max_ps(v2, v3)));
    const float mo = m[r];
    const float mn = mo > mx ? mo : mx;
    if (mn == ninf) {
      const __m512 z = _mm512_setzero_ps();
      _mm512_storeu_ps(s, z); _mm512_storeu_ps(s + 16, z); _mm512_storeu_ps(s + 32, z); _mm512_storeu_ps(s + 48, z);
      alpha[r] = 1.f;
      continue;
    }
    const __m512 mv = _mm512_set1_ps(mn);
    v0 = exp_ps(_mm512_sub_ps(v0, mv));
    v1 = exp_ps(_mm512_sub_ps(v1, mv));
    v2 = exp_ps(_mm512_sub_ps(v2, mv));
    v3 = exp_ps(_mm512_sub_ps(v3, mv));
    _mm512_storeu_ps(s, v0); _mm512_storeu_ps(s + 16, v1); _mm512_storeu_ps(s + 32, v2); _mm512_storeu_ps(s + 48, v3);
    const float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(v0, v1), _mm512_add_ps(v2, v3)));
    const float al = _mm512_cvtss_f32(exp_ps(_mm512_set1_ps(mo - mn)));
    l[r] = l[r] * al + sum;
    m[r] = mn;
    alpha[r] = al;
  }
}

void exp_rows(float* S, int nrows, const float* lse) {
  const float ninf = -__builtin_inff();
  for (int r = 0; r < nrows; r++) {
    float* s = S + r * ATTN_BK;
    if (lse[r] == ninf) {
      const __m512 z = _mm512_setzero_ps();
      _mm512_storeu_ps(s, z); _mm512_storeu_ps(s + 16, z); _mm512_storeu_ps(s + 32, z); _mm512_storeu_ps(s + 48, z);
      continue;
    }
    const __m512 L = _mm512_set1_ps(lse[r]);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) _mm512_storeu_ps(s + c * 16, exp_ps(_mm512_sub_ps(_mm512_loadu_ps(s + c * 16), L)));
  }
}

void ds_rows(const float* P, float* dP, int nrows, const float* Di) {
  for (int r = 0; r < nrows; r++) {
    const __m512 d = _mm512_set1_ps(Di[r]);
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
      const int64_t o = r * ATTN_BK + c * 16;
      _mm512_storeu_ps(dP + o, _mm512_mul_ps(_mm512_loadu_ps(P + o), _mm512_sub_ps(_mm512_loadu_ps(dP + o), d)));
    }
  }
}

}  // namespace

extern const AttnKernels attn_kernels_avx512 = {scores, pack_t, gemm_acc, softmax, exp_rows, ds_rows};

}  // namespace fathom
#endif
