// AVX2 + FMA GEMM kernels: 6×16 f32 micro-kernel (12 ymm accumulators), B packers (bf16 converted to f32) and
// small-M (GEMV) kernels. Plain functions and intrinsics only; templates have internal linkage.
#if !defined(FATHOM_NO_X86)
// GCC 12's intrinsic headers self-initialise 'undefined' vectors (__Y = __Y), which -Wall reports.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstring>
#include "kernels/gemm.h"
#include "common.h"

namespace fathom {
namespace {

constexpr int MR = 6, NR = 16;


// Lane mask for the first n (0..8) lanes.
static inline __m256i lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n < 8 ? n : 8)), idx);
}

static inline void store_c(float* c, __m256 acc, int n, __m256 va, float beta) {
  __m256 r = _mm256_mul_ps(acc, va);
  if (n >= 8) {
    if (beta != 0.f) r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(c), r);
    _mm256_storeu_ps(c, r);
  } else if (n > 0) {
    const __m256i m = lanes(n);
    if (beta != 0.f) r = _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(c, m), r);
    _mm256_maskstore_ps(c, m, r);
  }
}

template <int M>
__attribute__((always_inline)) inline void kern(int64_t kc, const float* a, const float* b, float* C, int64_t ldc,
                                                int nr, float alpha, float beta, const char* const* pf, int npf) {
  __m256 c0[M], c1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; i++) { c0[i] = _mm256_setzero_ps(); c1[i] = _mm256_setzero_ps(); }
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    if ((k & 3) == 0 && (k >> 2) < npf) _mm_prefetch(pf[k >> 2], _MM_HINT_T1);  // one per 4 k steps
#pragma GCC unroll 6
    for (int i = 0; i < M; i++) {
      __m256 ai = _mm256_broadcast_ss(a + i);
      c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
    }
    a += MR;
    b += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 6
  for (int i = 0; i < M; i++) {
    store_c(C + i * ldc, c0[i], nr, va, beta);
    store_c(C + i * ldc + 8, c1[i], nr - 8, va, beta);
  }
}

template <int M, class T>
void gemv_n(int64_t K, const T* a, int64_t lda, const T* B, int64_t ldb, int64_t nc, float* acc, int64_t ldacc) {
  auto ld8 = [](const T* p, int64_t n) -> __m256 {
    if (sizeof(T) == 4) {
      const float* f = reinterpret_cast<const float*>(p);
      return n >= 8 ? _mm256_loadu_ps(f) : _mm256_maskload_ps(f, lanes(n));
    }
    alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const uint16_t* h = reinterpret_cast<const uint16_t*>(p);
    __m128i x;
    if (n >= 8) x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h));
    else { for (int64_t i = 0; i < n; i++) tmp[i] = h[i]; x = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp)); }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16));
  };
  auto sc = [](T v) -> float {
    if (sizeof(T) == 4) { float f; std::memcpy(&f, &v, 4); return f; }
    uint16_t h; std::memcpy(&h, &v, 2); return bf16_to_f32(h);
  };
  auto lacc = [](const float* c, int64_t n) { return n >= 8 ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, lanes(n)); };
  auto sacc = [](float* c, int64_t n, __m256 v) { if (n >= 8) _mm256_storeu_ps(c, v); else _mm256_maskstore_ps(c, lanes(n), v); };
  int64_t k = 0;
  for (; k + 2 <= K; k += 2) {
    const T* b0 = B + k * ldb;
    __m256 a0[M], a1[M];
    for (int i = 0; i < M; i++) { a0[i] = _mm256_set1_ps(sc(a[i * lda + k])); a1[i] = _mm256_set1_ps(sc(a[i * lda + k + 1])); }
    for (int64_t j = 0; j < nc; j += 8) {
      const int64_t n = nc - j;
      __m256 x0 = ld8(b0 + j, n), x1 = ld8(b0 + ldb + j, n);
      for (int i = 0; i < M; i++) {
        float* c = acc + i * ldacc + j;
        sacc(c, n, _mm256_fmadd_ps(a1[i], x1, _mm256_fmadd_ps(a0[i], x0, lacc(c, n))));
      }
    }
  }
  for (; k < K; k++) {
    const T* b0 = B + k * ldb;
    for (int64_t j = 0; j < nc; j += 8) {
      const int64_t n = nc - j;
      __m256 x0 = ld8(b0 + j, n);
      for (int i = 0; i < M; i++) {
        float* c = acc + i * ldacc + j;
        sacc(c, n, _mm256_fmadd_ps(_mm256_set1_ps(sc(a[i * lda + k])), x0, lacc(c, n)));
      }
    }
  }
}

static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

template <int M, int RW, class T>
void gemv_t(int64_t K, const T* a, int64_t lda, const T* B, int64_t ldb, int64_t nc, float* C, int64_t ldc, float alpha, float beta) {
  auto ld8 = [](const T* p) -> __m256 {
    if (sizeof(T) == 4) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
    __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16));
  };
  auto sc = [](T v) -> float {
    if (sizeof(T) == 4) { float f; std::memcpy(&f, &v, 4); return f; }
    uint16_t h; std::memcpy(&h, &v, 2); return bf16_to_f32(h);
  };
  const int64_t K8 = K & ~int64_t(7);
  for (int64_t n0 = 0; n0 < nc; n0 += RW) {
    const int rw = nc - n0 < RW ? static_cast<int>(nc - n0) : RW;
    __m256 acc[M][RW];
    for (int i = 0; i < M; i++)
      for (int r = 0; r < RW; r++) acc[i][r] = _mm256_setzero_ps();
    const T* rows[RW];
    for (int r = 0; r < RW; r++) rows[r] = B + (n0 + (r < rw ? r : 0)) * ldb;
    for (int64_t k = 0; k < K8; k += 8) {
      __m256 av[M];
      for (int i = 0; i < M; i++) av[i] = ld8(a + i * lda + k);
      for (int r = 0; r < RW; r++) {
        __m256 x = ld8(rows[r] + k);
        for (int i = 0; i < M; i++) acc[i][r] = _mm256_fmadd_ps(av[i], x, acc[i][r]);
      }
    }
    for (int i = 0; i < M; i++)
      for (int r = 0; r < rw; r++) {
        float s = hsum(acc[i][r]);
        for (int64_t k = K8; k < K; k++) s += sc(a[i * lda + k]) * sc(rows[r][k]);
        s *= alpha;
        float* c = C + i * ldc + n0 + r;
        *c = beta == 0.f ? s : s + beta * *c;
      }
  }
}

template <class T>
void gemv_n_any(int mr, int64_t K, const void* ap, int64_t lda, const void* Bp, int64_t ldb, int64_t nc, float* acc,
                int64_t ldacc) {
  const T* a = static_cast<const T*>(ap);
  const T* B = static_cast<const T*>(Bp);
  switch (mr) {
    case 1: gemv_n<1, T>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    case 2: gemv_n<2, T>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    case 3: gemv_n<3, T>(K, a, lda, B, ldb, nc, acc, ldacc); break;
    default: gemv_n<4, T>(K, a, lda, B, ldb, nc, acc, ldacc); break;
  }
}

template <class T>
void gemv_t_any(int mr, int64_t K, const void* ap, int64_t lda, const void* Bp, int64_t ldb, int64_t nc, float* C,
                int64_t ldc, float alpha, float beta) {
  const T* a = static_cast<const T*>(ap);
  const T* B = static_cast<const T*>(Bp);
  switch (mr) {
    case 1: gemv_t<1, 8, T>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    case 2: gemv_t<2, 4, T>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    case 3: gemv_t<3, 2, T>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
    default: gemv_t<4, 2, T>(K, a, lda, B, ldb, nc, C, ldc, alpha, beta); break;
  }
}

}  // namespace

void gemm_avx2_kernel_f32(int64_t kc, const void* ap, const void* bp, float* C, int64_t ldc, int mr, int nr,
                          float alpha, float beta, const char* const* pf, int npf) {
  const float* a = static_cast<const float*>(ap);
  const float* b = static_cast<const float*>(bp);
  switch (mr) {
    case 6: kern<6>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 5: kern<5>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 4: kern<4>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 3: kern<3>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    case 2: kern<2>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
    default: kern<1>(kc, a, b, C, ldc, nr, alpha, beta, pf, npf); break;
  }
}

// op(B) (kc × nc) -> [kc][16] f32 panels.
void gemm_avx2_pack_b_f32(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const float* B = static_cast<const float*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t j = 0; j < nc; j += NR, d += NR * kc) {
    const int64_t cols = nc - j < NR ? nc - j : NR;
    if (!trans) {
      const float* r = B + j;
      if (cols == NR) {
        for (int64_t k = 0; k < kc; k++, r += ld) {
          _mm256_store_ps(d + k * NR, _mm256_loadu_ps(r));
          _mm256_store_ps(d + k * NR + 8, _mm256_loadu_ps(r + 8));
        }
      } else {
        const __m256i m0 = lanes(cols), m1 = lanes(cols - 8);
        for (int64_t k = 0; k < kc; k++, r += ld) {
          _mm256_store_ps(d + k * NR, _mm256_maskload_ps(r, m0));
          _mm256_store_ps(d + k * NR + 8, _mm256_maskload_ps(r + 8, m1));
        }
      }
    } else {
      if (cols < NR) std::memset(d, 0, sizeof(float) * NR * kc);
      for (int64_t c = 0; c < cols; c++) {
        const float* r = B + (j + c) * ld;
        for (int64_t k = 0; k < kc; k++) d[k * NR + c] = r[k];
      }
    }
  }
}

void gemm_avx2_pack_b_bf16f32(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const uint16_t* B = static_cast<const uint16_t*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t j = 0; j < nc; j += NR, d += NR * kc) {
    const int64_t cols = nc - j < NR ? nc - j : NR;
    if (!trans && cols == NR) {
      const uint16_t* r = B + j;
      for (int64_t k = 0; k < kc; k++, r += ld) {
        __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
        __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 8));
        _mm256_store_si256(reinterpret_cast<__m256i*>(d + k * NR), _mm256_slli_epi32(_mm256_cvtepu16_epi32(x0), 16));
        _mm256_store_si256(reinterpret_cast<__m256i*>(d + k * NR + 8), _mm256_slli_epi32(_mm256_cvtepu16_epi32(x1), 16));
      }
    } else {
      if (cols < NR) std::memset(d, 0, sizeof(float) * NR * kc);
      for (int64_t c = 0; c < cols; c++)
        for (int64_t k = 0; k < kc; k++) d[k * NR + c] = bf16_to_f32(trans ? B[(j + c) * ld + k] : B[k * ld + j + c]);
    }
  }
}

void gemm_avx2_gemv_n_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* acc, int64_t ldacc) {
  gemv_n_any<float>(mr, K, a, lda, B, ldb, nc, acc, ldacc);
}
void gemm_avx2_gemv_n_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                           float* acc, int64_t ldacc) {
  gemv_n_any<uint16_t>(mr, K, a, lda, B, ldb, nc, acc, ldacc);
}
void gemm_avx2_gemv_t_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* C, int64_t ldc, float alpha, float beta) {
  gemv_t_any<float>(mr, K, a, lda, B, ldb, nc, C, ldc, alpha, beta);
}
void gemm_avx2_gemv_t_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                           float* C, int64_t ldc, float alpha, float beta) {
  gemv_t_any<uint16_t>(mr, K, a, lda, B, ldb, nc, C, ldc, alpha, beta);
}

}  // namespace fathom
#endif
