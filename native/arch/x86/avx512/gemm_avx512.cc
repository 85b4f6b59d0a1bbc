// AVX-512 GEMM kernels: 14×32 f32 micro-kernel (28 zmm accumulators, broadcasts from the packed A panel),
// 14×32 bf16 micro-kernel with vdpbf16ps on k pairs, vectorised packers and small-M (GEMV) kernels.
// Plain functions and intrinsics only; the templates below have internal linkage (anonymous namespace), so the
// linker can never hand an AVX-512 instantiation to baseline code.
#if !defined(FATHOM_NO_X86)
// GCC 12's intrinsic headers self-initialise 'undefined' vectors (__Y = __Y), which -Wall reports.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstring>
#include "kernels/gemm.h"

namespace fathom {
namespace {

constexpr int MR = 14, NR = 32;

static inline __mmask16 mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xffff) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1);
}
static inline __mmask32 mask32(int64_t n) {
  return n >= 32 ? static_cast<__mmask32>(0xffffffffu) : n <= 0 ? static_cast<__mmask32>(0) : static_cast<__mmask32>((1u << n) - 1);
}

static inline void store_c(float* c, __m512 acc, __mmask16 m, __m512 va, float beta) {
  __m512 r = _mm512_mul_ps(acc, va);
  if (beta != 0.f) r = _mm512_fmadd_ps(_mm512_set1_ps(beta), _mm512_maskz_loadu_ps(m, c), r);
  _mm512_mask_storeu_ps(c, m, r);
}

template <int M>
__attribute__((always_inline)) inline void kern_f32(int64_t kc, const float* a, const float* b, float* C, int64_t ldc,
                                                    int nr, float alpha, float beta, const char* const* pf, int npf) {
  __m512 c0[M], c1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
#pragma GCC unroll 14
  for (int i = 0; i < M; i++) _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
  auto step = [&]() __attribute__((always_inline)) {
    __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(b + 32 * 8), _MM_HINT_T0);   // both lines of B, 8 steps ahead
    _mm_prefetch(reinterpret_cast<const char*>(b + 32 * 8 + 16), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < M; i++) {
      __m512 ai = _mm512_set1_ps(a[i]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  };
  // One prefetch of the caller's list per 4 k steps (spread out, so they never queue up behind each other).
  int64_t k = 0;
  for (int q = 0; q < npf && k + 4 <= kc; q++, k += 4) {
    _mm_prefetch(pf[q], _MM_HINT_T1);
    step(); step(); step(); step();
  }
  for (; k < kc; k++) step();
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
#pragma GCC unroll 14
  for (int i = 0; i < M; i++) {
    store_c(C + i * ldc, c0[i], m0, va, beta);
    if (m1) store_c(C + i * ldc + 16, c1[i], m1, va, beta);
  }
}

template <int M>
__attribute__((always_inline)) inline void kern_bf16(int64_t kp, const uint16_t* a, const uint16_t* b, float* C,
                                                     int64_t ldc, int nr, float alpha, float beta, const char* const* pf, int npf) {
  __m512 c0[M], c1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; i++) { c0[i] = _mm512_setzero_ps(); c1[i] = _mm512_setzero_ps(); }
#pragma GCC unroll 14
  for (int i = 0; i < M; i++) _mm_prefetch(reinterpret_cast<const char*>(C + i * ldc), _MM_HINT_T0);
  const int32_t* a32 = reinterpret_cast<const int32_t*>(a);
  auto step = [&]() __attribute__((always_inline)) {
    __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 32);
    _mm_prefetch(reinterpret_cast<const char*>(b + 64 * 8), _MM_HINT_T0);   // both lines of B, 8 steps ahead
    _mm_prefetch(reinterpret_cast<const char*>(b + 64 * 8 + 32), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int i = 0; i < M; i++) {
      __m512bh ai = (__m512bh)_mm512_set1_epi32(a32[i]);
      c0[i] = _mm512_dpbf16_ps(c0[i], ai, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], ai, b1);
    }
    a32 += MR;
    b += 2 * NR;
  };
  int64_t k = 0;
  for (int q = 0; q < npf && k + 4 <= kp; q++, k += 4) {
    _mm_prefetch(pf[q], _MM_HINT_T1);
    step(); step(); step(); step();
  }
  for (; k < kp; k++) step();
  const __m512 va = _mm512_set1_ps(alpha);
  const __mmask16 m0 = mask16(nr), m1 = mask16(nr - 16);
#pragma GCC unroll 14
  for (int i = 0; i < M; i++) {
    store_c(C + i * ldc, c0[i], m0, va, beta);
    if (m1) store_c(C + i * ldc + 16, c1[i], m1, va, beta);
  }
}

// Horizontal sum (GCC 12's _mm512_reduce_add_ps trips -Wmaybe-uninitialized).
static inline float hsum(__m512 v) {
  __m512 t = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, 0xB1));
  __m128 x = _mm512_castps512_ps128(t);
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

// 16×16 transpose of 32-bit elements held in r[0..15] (rows) -> r[0..15] (columns).
static inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int q = 0; q < 4; q++) {
    t[4 * q + 0] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x88);
    t[4 * q + 1] = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xDD);
    t[4 * q + 2] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x88);
    t[4 * q + 3] = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xDD);
  }
  for (int q = 0; q < 4; q++) {
    r[q] = _mm512_shuffle_f32x4(t[4 * q], t[4 * q + 2], 0x88);
    r[8 + q] = _mm512_shuffle_f32x4(t[4 * q], t[4 * q + 2], 0xDD);
    r[4 + q] = _mm512_shuffle_f32x4(t[4 * q + 1], t[4 * q + 3], 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(t[4 * q + 1], t[4 * q + 3], 0xDD);
  }
}

// Gathers a block of `rows` (≤ 16) rows × up to 16 32-bit items (row r starts at base + r*ld_bytes, holds `n`
// valid items; 16-bit elements when half, then n counts 16-bit elements and items are pairs), transposes it and
// stores item k's row (rows values) to dst + k*dst_stride (32-bit units) with mask `sm`.
static inline void tr_block(const uint8_t* base, int64_t ld_bytes, int rows, int64_t n, bool half, float* dst,
                            int64_t dst_stride, __mmask16 sm, int items) {
  __m512 r[16];
  for (int i = 0; i < 16; i++) {
    if (i < rows) {
      const uint8_t* p = base + i * ld_bytes;
      r[i] = half ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask32(n), p)) : _mm512_maskz_loadu_ps(mask16(n), p);
    } else {
      r[i] = _mm512_setzero_ps();
    }
  }
  transpose16(r);
  for (int k = 0; k < items; k++) _mm512_mask_storeu_ps(dst + k * dst_stride, sm, r[k]);
}

// Interleave two rows of 16-bit values (x = row k, y = row k+1) into pairs: returns the pairs for elements
// 0..15 (lo) and 16..31 (hi).
static inline void interleave16(__m512i x, __m512i y, __m512i* lo, __m512i* hi) {
  const __m512i ilo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8, 39, 7, 38, 6, 37, 5,
                                       36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
  const __m512i ihi = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24, 55, 23, 54, 22,
                                       53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
  *lo = _mm512_permutex2var_epi16(x, ilo, y);
  *hi = _mm512_permutex2var_epi16(x, ihi, y);
}

// ---- small-M kernels

// acc[i][n] += sum_k a[i][k] * B[k][n]: four rows of B per pass over the accumulators.
template <int M, bool BF>
void gemv_n(int64_t K, const void* ap, int64_t lda, const void* Bp, int64_t ldb, int64_t nc, float* acc,
            int64_t ldacc) {
  auto ldb16 = [](__mmask16 m, const void* base, int64_t idx) -> __m512 {
    if (BF)
      return _mm512_castsi512_ps(_mm512_slli_epi32(
          _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + idx)), 16));
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + idx);
  };
  auto ascal = [&](int i, int64_t k) -> float {
    if (BF) {
      uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(ap)[i * lda + k]) << 16;
      float f;
      std::memcpy(&f, &u, 4);
      return f;
    }
    return static_cast<const float*>(ap)[i * lda + k];
  };
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const int64_t r0 = k * ldb;
    __m512 a0[M], a1[M], a2[M], a3[M];
    for (int i = 0; i < M; i++) {
      a0[i] = _mm512_set1_ps(ascal(i, k)); a1[i] = _mm512_set1_ps(ascal(i, k + 1));
      a2[i] = _mm512_set1_ps(ascal(i, k + 2)); a3[i] = _mm512_set1_ps(ascal(i, k + 3));
    }
    for (int64_t j = 0; j < nc; j += 16) {
      const __mmask16 m = mask16(nc - j);
      __m512 x0 = ldb16(m, Bp, r0 + j), x1 = ldb16(m, Bp, r0 + ldb + j);
      __m512 x2 = ldb16(m, Bp, r0 + 2 * ldb + j), x3 = ldb16(m, Bp, r0 + 3 * ldb + j);
      for (int i = 0; i < M; i++) {
        float* c = acc + i * ldacc + j;
        __m512 s = _mm512_maskz_loadu_ps(m, c);
        s = _mm512_fmadd_ps(a0[i], x0, s);
        s = _mm512_fmadd_ps(a1[i], x1, s);
        s = _mm512_fmadd_ps(a2[i], x2, s);
        s = _mm512_fmadd_ps(a3[i], x3, s);
        _mm512_mask_storeu_ps(c, m, s);
      }
    }
  }
  for (; k < K; k++) {
    const int64_t r0 = k * ldb;
    for (int64_t j = 0; j < nc; j += 16) {
      const __mmask16 m = mask16(nc - j);
      __m512 x0 = ldb16(m, Bp, r0 + j);
      for (int i = 0; i < M; i++) {
        float* c = acc + i * ldacc + j;
        _mm512_mask_storeu_ps(c, m, _mm512_fmadd_ps(_mm512_set1_ps(ascal(i, k)), x0, _mm512_maskz_loadu_ps(m, c)));
      }
    }
  }
}

// B transposed (rows of B are output columns): dot products, RW rows of B at a time.
template <int M, int RW>
void gemv_t_f32(int64_t K, const float* a, int64_t lda, const float* B, int64_t ldb, int64_t nc, float* C, int64_t ldc,
                float alpha, float beta) {
  for (int64_t n0 = 0; n0 < nc; n0 += RW) {
    const int rw = nc - n0 < RW ? static_cast<int>(nc - n0) : RW;
    __m512 acc[M][RW];
    for (int i = 0; i < M; i++)
      for (int r = 0; r < RW; r++) acc[i][r] = _mm512_setzero_ps();
    const float* rows[RW];
    for (int r = 0; r < RW; r++) rows[r] = B + (n0 + (r < rw ? r : 0)) * ldb;
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = mask16(K - k);
      __m512 av[M];
      for (int i = 0; i < M; i++) av[i] = _mm512_maskz_loadu_ps(m, a + i * lda + k);
      for (int r = 0; r < RW; r++) {
        __m512 x = _mm512_maskz_loadu_ps(m, rows[r] + k);
        for (int i = 0; i < M; i++) acc[i][r] = _mm512_fmadd_ps(av[i], x, acc[i][r]);
      }
    }
    for (int i = 0; i < M; i++)
      for (int r = 0; r < rw; r++) {
        float s = alpha * hsum(acc[i][r]);
        float* c = C + i * ldc + n0 + r;
        *c = beta == 0.f ? s : s + beta * *c;
      }
  }
}

template <int M, int RW>
void gemv_t_bf16(int64_t K, const uint16_t* a, int64_t lda, const uint16_t* B, int64_t ldb, int64_t nc, float* C,
                 int64_t ldc, float alpha, float beta) {
  for (int64_t n0 = 0; n0 < nc; n0 += RW) {
    const int rw = nc - n0 < RW ? static_cast<int>(nc - n0) : RW;
    __m512 acc[M][RW];
    for (int i = 0; i < M; i++)
      for (int r = 0; r < RW; r++) acc[i][r] = _mm512_setzero_ps();
    const uint16_t* rows[RW];
    for (int r = 0; r < RW; r++) rows[r] = B + (n0 + (r < rw ? r : 0)) * ldb;
    for (int64_t k = 0; k < K; k += 32) {
      const __mmask32 m = mask32(K - k);
      __m512bh av[M];
      for (int i = 0; i < M; i++) av[i] = (__m512bh)_mm512_maskz_loadu_epi16(m, a + i * lda + k);
      for (int r = 0; r < RW; r++) {
        __m512bh x = (__m512bh)_mm512_maskz_loadu_epi16(m, rows[r] + k);
        for (int i = 0; i < M; i++) acc[i][r] = _mm512_dpbf16_ps(acc[i][r], av[i], x);
      }
    }
    for (int i = 0; i < M; i++)
      for (int r = 0; r < rw; r++) {
        float s = alpha * hsum(acc[i][r]);
        float* c = C + i * ldc + n0 + r;
        *c = beta == 0.f ? s : s + beta * *c;
      }
  }
}

}  // namespace

void gemm_avx512_kernel_f32(int64_t kc, const void* ap, const void* bp, float* C, int64_t ldc, int mr, int nr,
                            float alpha, float beta, const char* const* pf, int npf) {
  const float* a = static_cast<const float*>(ap);
  const float* b = static_cast<const float*>(bp);
  switch (mr) {
    case 14: kern_f32<14>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 13: kern_f32<13>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 12: kern_f32<12>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 11: kern_f32<11>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 10: kern_f32<10>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 9: kern_f32<9>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 8: kern_f32<8>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 7: kern_f32<7>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 6: kern_f32<6>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 5: kern_f32<5>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 4: kern_f32<4>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 3: kern_f32<3>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 2: kern_f32<2>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    default: kern_f32<1>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
  }
}

void gemm_avx512_kernel_bf16(int64_t kp, const void* ap, const void* bp, float* C, int64_t ldc, int mr, int nr,
                             float alpha, float beta, const char* const* pf, int npf) {
  const uint16_t* a = static_cast<const uint16_t*>(ap);
  const uint16_t* b = static_cast<const uint16_t*>(bp);
  switch (mr) {
    case 14: kern_bf16<14>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 13: kern_bf16<13>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 12: kern_bf16<12>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 11: kern_bf16<11>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 10: kern_bf16<10>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 9: kern_bf16<9>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 8: kern_bf16<8>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 7: kern_bf16<7>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 6: kern_bf16<6>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 5: kern_bf16<5>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 4: kern_bf16<4>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 3: kern_bf16<3>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 2: kern_bf16<2>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    default: kern_bf16<1>(kp, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
  }
}

// op(B) (kc × nc) -> [kc][32] f32 panels.
void gemm_avx512_pack_b_f32(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const float* B = static_cast<const float*>(src);
  float* d = static_cast<float*>(dst);
  const int64_t np = (nc + NR - 1) / NR;
  if (!trans) {
    // Row by row (contiguous reads, prefetch-friendly), scattering 32-wide pieces into the panels.
    const int64_t full = nc / NR;
    const int64_t rem = nc - full * NR;
    const __mmask16 m0 = mask16(rem), m1 = mask16(rem - 16);
    for (int64_t k = 0; k < kc; k++) {
      const float* r = B + k * ld;
      float* o = d + k * NR;
      for (int64_t p = 0; p < full; p++, r += NR, o += NR * kc) {
        _mm_prefetch(reinterpret_cast<const char*>(r + 6 * ld), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(r + 6 * ld + 16), _MM_HINT_T0);
        _mm512_store_ps(o, _mm512_loadu_ps(r));
        _mm512_store_ps(o + 16, _mm512_loadu_ps(r + 16));
      }
      if (rem) {
        _mm512_store_ps(o, _mm512_maskz_loadu_ps(m0, r));
        _mm512_store_ps(o + 16, _mm512_maskz_loadu_ps(m1, r + 16));
      }
    }
    return;
  }
  for (int64_t j = 0; j < np * NR; j += NR, d += NR * kc) {
    const int64_t cols = nc - j < NR ? nc - j : NR;
    // B(k, j+c) = B[(j+c)*ld + k]: transpose 16×16 blocks.
    for (int h = 0; h < 2; h++) {
      const int rows = static_cast<int>(cols - 16 * h);
      if (rows <= 0) {
        for (int64_t k = 0; k < kc; k++) _mm512_store_ps(d + k * NR + 16 * h, _mm512_setzero_ps());
        continue;
      }
      const uint8_t* base = reinterpret_cast<const uint8_t*>(B + (j + 16 * h) * ld);
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t n = kc - k;
        tr_block(base + k * 4, ld * 4, rows < 16 ? rows : 16, n, false, d + k * NR + 16 * h, NR, 0xffff,
                 n < 16 ? static_cast<int>(n) : 16);
      }
    }
  }
}

// bf16 op(B) -> [ceil(kc/2)][32][2] bf16 panels (k pairs interleaved), zero padded.
void gemm_avx512_pack_b_bf16(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const uint16_t* B = static_cast<const uint16_t*>(src);
  uint16_t* d = static_cast<uint16_t*>(dst);
  const int64_t kp = (kc + 1) / 2;
  const int64_t np = (nc + NR - 1) / NR;
  if (!trans) {
    // Pairs of rows, read contiguously, interleaved and scattered into the panels.
    const int64_t full = nc / NR;
    const __mmask32 mr = mask32(nc - full * NR);
    for (int64_t p = 0; p < kp; p++) {
      const uint16_t* r = B + 2 * p * ld;
      const bool two = 2 * p + 1 < kc;
      uint16_t* o = d + p * 2 * NR;
      for (int64_t q = 0; q < np; q++, r += NR, o += 2 * NR * kp) {
        const __mmask32 m = q < full ? static_cast<__mmask32>(0xffffffffu) : mr;
        __m512i x = _mm512_maskz_loadu_epi16(m, r);
        __m512i y = two ? _mm512_maskz_loadu_epi16(m, r + ld) : _mm512_setzero_si512();
        __m512i lo, hi;
        interleave16(x, y, &lo, &hi);
        _mm512_store_si512(o, lo);
        _mm512_store_si512(o + NR, hi);
      }
    }
    return;
  }
  for (int64_t j = 0; j < np * NR; j += NR, d += 2 * NR * kp) {
    const int64_t cols = nc - j < NR ? nc - j : NR;
    // Pairs (k, k+1) of row j+c are one 32-bit item: a 32-bit transpose.
    float* df = reinterpret_cast<float*>(d);
    for (int h = 0; h < 2; h++) {
      const int rows = static_cast<int>(cols - 16 * h);
      if (rows <= 0) {
        for (int64_t p = 0; p < kp; p++) _mm512_store_ps(df + p * NR + 16 * h, _mm512_setzero_ps());
        continue;
      }
      const uint8_t* base = reinterpret_cast<const uint8_t*>(B + (j + 16 * h) * ld);
      for (int64_t k = 0; k < kc; k += 32) {
        const int64_t n = kc - k;            // 16-bit elements left in the row
        const int64_t items = (n + 1) / 2;   // pairs
        tr_block(base + k * 2, ld * 2, rows < 16 ? rows : 16, n, true, df + (k / 2) * NR + 16 * h, NR, 0xffff,
                 items < 16 ? static_cast<int>(items) : 16);
      }
    }
  }
}

// bf16 op(B) -> [kc][32] f32 panels (AVX-512 without BF16 instructions).
void gemm_avx512_pack_b_bf16f32(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const uint16_t* B = static_cast<const uint16_t*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t j = 0; j < nc; j += NR, d += NR * kc) {
    const int64_t cols = nc - j < NR ? nc - j : NR;
    if (!trans) {
      const __mmask16 m0 = mask16(cols), m1 = mask16(cols - 16);
      const uint16_t* r = B + j;
      for (int64_t k = 0; k < kc; k++, r += ld) {
        _mm512_store_si512(d + k * NR, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m0, r)), 16));
        _mm512_store_si512(d + k * NR + 16, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m1, r + 16)), 16));
      }
    } else {
      for (int64_t k = 0; k < kc; k++)
        for (int c = 0; c < NR; c++) {
          uint32_t u = c < cols ? static_cast<uint32_t>(B[(j + c) * ld + k]) << 16 : 0;
          std::memcpy(d + k * NR + c, &u, 4);
        }
    }
  }
}

// op(A) (mc × kc) -> [kc][14] f32 panels.
void gemm_avx512_pack_a_f32(const void* src, int64_t ld, bool trans, int64_t mc, int64_t kc, void* dst) {
  const float* A = static_cast<const float*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t p = 0; p < mc; p += MR, d += MR * kc) {
    const int rows = static_cast<int>(mc - p < MR ? mc - p : MR);
    if (trans) {  // A(i, k) = A[k*ld + i]: rows of 14 contiguous values
      const __mmask16 m = mask16(rows);
      for (int64_t k = 0; k < kc; k++) _mm512_mask_storeu_ps(d + k * MR, 0x3fff, _mm512_maskz_loadu_ps(m, A + k * ld + p));
    } else {
      const uint8_t* base = reinterpret_cast<const uint8_t*>(A + p * ld);
      for (int64_t k = 0; k < kc; k += 16) {
        const int64_t n = kc - k;
        tr_block(base + k * 4, ld * 4, rows, n, false, d + k * MR, MR, 0x3fff, n < 16 ? static_cast<int>(n) : 16);
      }
    }
  }
}

// bf16 op(A) -> [ceil(kc/2)][14][2] bf16 panels.
void gemm_avx512_pack_a_bf16(const void* src, int64_t ld, bool trans, int64_t mc, int64_t kc, void* dst) {
  const uint16_t* A = static_cast<const uint16_t*>(src);
  uint16_t* d = static_cast<uint16_t*>(dst);
  const int64_t kp = (kc + 1) / 2;
  for (int64_t p = 0; p < mc; p += MR, d += 2 * MR * kp) {
    const int rows = static_cast<int>(mc - p < MR ? mc - p : MR);
    if (trans) {  // A(i, k) = A[k*ld + i]: interleave rows k and k+1 (14 values each)
      const __mmask32 m = mask32(rows);
      for (int64_t q = 0; q < kp; q++) {
        __m512i x = _mm512_maskz_loadu_epi16(m, A + 2 * q * ld + p);
        __m512i y = 2 * q + 1 < kc ? _mm512_maskz_loadu_epi16(m, A + (2 * q + 1) * ld + p) : _mm512_setzero_si512();
        __m512i lo, hi;
        interleave16(x, y, &lo, &hi);
        _mm512_mask_storeu_epi16(d + q * 2 * MR, 0x0fffffff, lo);
      }
    } else {
      float* df = reinterpret_cast<float*>(d);
      const uint8_t* base = reinterpret_cast<const uint8_t*>(A + p * ld);
      for (int64_t k = 0; k < kc; k += 32) {
        const int64_t n = kc - k;
        const int64_t items = (n + 1) / 2;
        tr_block(base + k * 2, ld * 2, rows, n, true, df + (k / 2) * MR, MR, 0x3fff, items < 16 ? static_cast<int>(items) : 16);
      }
    }
  }
}

// bf16 op(A) -> [kc][14] f32 panels.
void gemm_avx512_pack_a_bf16f32(const void* src, int64_t ld, bool trans, int64_t mc, int64_t kc, void* dst) {
  const uint16_t* A = static_cast<const uint16_t*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t p = 0; p < mc; p += MR, d += MR * kc) {
    const int rows = static_cast<int>(mc - p < MR ? mc - p : MR);
    for (int64_t k = 0; k < kc; k++)
      for (int i = 0; i < MR; i++) {
        uint32_t u = i < rows ? static_cast<uint32_t>(trans ? A[k * ld + p + i] : A[(p + i) * ld + k]) << 16 : 0;
        std::memcpy(d + k * MR + i, &u, 4);
      }
  }
}

void gemm_avx512_gemv_n_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                            float* acc, int64_t ldacc) {
  switch (mr) {
    case 1: gemv_n<1, false>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    case 2: gemv_n<2, false>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    case 3: gemv_n<3, false>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    default: gemv_n<4, false>(K, a, lda, B, ldb, nc, acc, ldacc); break;
  }
}

void gemm_avx512_gemv_n_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                             float* acc, int64_t ldacc) {
  switch (mr) {
    case 1: gemv_n<1, true>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    case 2: gemv_n<2, true>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    case 3: gemv_n<3, true>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    default: gemv_n<4, true>(K, a, lda, B, ldb, nc, acc, ldacc); break;
  }
}

void gemm_avx512_gemv_t_f32(int mr, int64_t K, const void* ap, int64_t lda, const void* Bp, int64_t ldb, int64_t nc,
                            float* C, int64_t ldc, float alpha, float beta) {
  const float* a = static_cast<const float*>(ap);
  const float* B = static_cast<const float*>(Bp);
  switch (mr) {
    case 1: gemv_t_f32<1, 4>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    case 2: gemv_t_f32<2, 6>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    case 3: gemv_t_f32<3, 4>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    default: gemv_t_f32<4, 4>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
  }
}

// Uses vdpbf16ps: only on CPUs with AVX512-BF16.
void gemm_avx512_gemv_t_bf16(int mr, int64_t K, const void* ap, int64_t lda, const void* Bp, int64_t ldb, int64_t nc,
                             float* C, int64_t ldc, float alpha, float beta) {
  const uint16_t* a = static_cast<const uint16_t*>(ap);
  const uint16_t* B = static_cast<const uint16_t*>(Bp);
  switch (mr) {
    case 1: gemv_t_bf16<1, 8>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    case 2: gemv_t_bf16<2, 6>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    case 3: gemv_t_bf16<3, 4>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    default: gemv_t_bf16<4, 4>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
  }
}

}  // namespace fathom
#endif
