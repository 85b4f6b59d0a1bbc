// AVX-512 (F/BW/VL/DQ + FMA + F16C) path of the elementwise / reduction / norm kernels: 16-lane shims for
// the shared body in arch/x86/ops_simd_impl.h, plus the 16-bit float casts.
#if !defined(FATHOM_NO_X86)
// GCC 12 warns about _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "common.h"
#include "kernels/ops.h"

namespace fathom {
namespace ops_avx512 {

typedef __m512 VF;
typedef __m512i VI;
typedef __mmask16 VM;
typedef __m512d VD;
static const int W = 16;

static inline VF v_set1(float a) { return _mm512_set1_ps(a); }
static inline VF v_zero() { return _mm512_setzero_ps(); }
static inline VF v_ld(const float* p) { return _mm512_loadu_ps(p); }
static inline void v_st(float* p, VF v) { _mm512_storeu_ps(p, v); }
static inline VM tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
static inline VF v_ldm(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
static inline void v_stm(float* p, VF v, int64_t n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
static inline VF v_add(VF a, VF b) { return _mm512_add_ps(a, b); }
static inline VF v_sub(VF a, VF b) { return _mm512_sub_ps(a, b); }
static inline VF v_mul(VF a, VF b) { return _mm512_mul_ps(a, b); }
static inline VF v_div(VF a, VF b) { return _mm512_div_ps(a, b); }
static inline VF v_fma(VF a, VF b, VF c) { return _mm512_fmadd_ps(a, b, c); }     // a*b + c
static inline VF v_fnma(VF a, VF b, VF c) { return _mm512_fnmadd_ps(a, b, c); }   // c - a*b
static inline VF v_fms(VF a, VF b, VF c) { return _mm512_fmsub_ps(a, b, c); }     // a*b - c
static inline VF v_max(VF a, VF b) { return _mm512_max_ps(a, b); }
static inline VF v_min(VF a, VF b) { return _mm512_min_ps(a, b); }
static inline VF v_sqrt(VF a) { return _mm512_sqrt_ps(a); }
static inline VF v_abs(VF a) { return _mm512_abs_ps(a); }
static inline VF v_neg(VF a) { return _mm512_xor_ps(a, _mm512_set1_ps(-0.0f)); }
static inline VF v_signbit(VF a) { return _mm512_and_ps(a, _mm512_set1_ps(-0.0f)); }
static inline VF v_or(VF a, VF b) { return _mm512_or_ps(a, b); }
static inline VF v_round(VF a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline VM v_lt(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
static inline VM v_le(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
static inline VM v_gt(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
static inline VM v_eq(VF a, VF b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
static inline VM v_isnan(VF a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
static inline VM m_or(VM a, VM b) { return static_cast<VM>(a | b); }
static inline bool m_any(VM a) { return a != 0; }
static inline VM m_none() { return 0; }
static inline VF v_sel(VM m, VF a, VF b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
// integer helpers (exp/log)
static inline VI v_f2i(VF a) { return _mm512_cvtps_epi32(a); }
static inline VF v_i2f(VI a) { return _mm512_cvtepi32_ps(a); }
static inline VI vi_srai1(VI a) { return _mm512_srai_epi32(a, 1); }
static inline VI vi_sub(VI a, VI b) { return _mm512_sub_epi32(a, b); }
static inline VF v_pow2i(VI n) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23)); }
static inline VI v_exponent(VF a) {  // biased exponent - 126 (a > 0, normal)
  return _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(a), 23), _mm512_set1_epi32(126));
}
static inline VF v_mantissa_half(VF a) {  // mantissa scaled to [0.5, 1)
  VI b = _mm512_and_si512(_mm512_castps_si512(a), _mm512_set1_epi32(0x007fffff));
  return _mm512_castsi512_ps(_mm512_or_si512(b, _mm512_set1_epi32(0x3f000000)));
}
// horizontal
static inline float v_hsum(VF a) { return _mm512_reduce_add_ps(a); }
static inline float v_hmax(VF a) { return _mm512_reduce_max_ps(a); }
static inline float v_hmin(VF a) { return _mm512_reduce_min_ps(a); }
// f64 accumulation: lo/hi halves of a float vector
static inline VD vd_zero() { return _mm512_setzero_pd(); }
static inline VD vd_lo(VF a) { return _mm512_cvtps_pd(_mm512_castps512_ps256(a)); }
static inline VD vd_hi(VF a) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(a, 1)); }
static inline VD vd_add(VD a, VD b) { return _mm512_add_pd(a, b); }
static inline VD vd_fma(VD a, VD b, VD c) { return _mm512_fmadd_pd(a, b, c); }
static inline double vd_hsum(VD a) { return _mm512_reduce_add_pd(a); }
static inline VD vd_ld(const double* p) { return _mm512_loadu_pd(p); }
static inline void vd_st(double* p, VD a) { _mm512_storeu_pd(p, a); }
static inline VF v_keep(VF a, int64_t n) { return _mm512_maskz_mov_ps(tail_mask(n), a); }  // lanes >= n -> 0
// RoPE helpers: W/2 floats duplicated pairwise, swap within pairs, a*b -/+ c on even/odd lanes
static inline VF v_ld_dup_pairs(const float* p) {
  const __m512i idx = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  return _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(_mm256_loadu_ps(p)));
}
static inline VF v_swap_pairs(VF a) { return _mm512_permute_ps(a, 0xB1); }
static inline VF v_fmaddsub(VF a, VF b, VF c) { return _mm512_fmaddsub_ps(a, b, c); }

#include "arch/x86/ops_simd_impl.h"

// ---- casts (bit-exact with common.h)
static void f32_to_bf16(int64_t n, const float* x, uint16_t* y) {
  const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), absm = _mm512_set1_epi32(0x7fffffff);
  const __m512i inf = _mm512_set1_epi32(0x7f800000), qbit = _mm512_set1_epi32(0x40);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_loadu_si512(x + i);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
    r = _mm512_srli_epi32(r, 16);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qbit));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtepi32_epi16(r));
  }
  for (; i < n; i++) y[i] = fathom::f32_to_bf16(x[i]);
}

static void bf16_to_f32(int64_t n, const uint16_t* x, float* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    _mm512_storeu_si512(y + i, _mm512_slli_epi32(u, 16));
  }
  for (; i < n; i++) y[i] = fathom::bf16_to_f32(x[i]);
}

static void f32_to_f16(int64_t n, const float* x, uint16_t* y) {
  const __m512i absm = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m256i qnan = _mm256_set1_epi16(0x7e00);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_loadu_ps(x + i);
    __m512i u = _mm512_castps_si512(v);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absm), inf);
    __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    // NaN -> sign | 0x7e00
    __m256i sign = _mm512_cvtepi32_epi16(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000)));
    h = _mm256_mask_mov_epi16(h, nan, _mm256_or_si256(sign, qnan));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), h);
  }
  for (; i < n; i++) y[i] = fathom::f32_to_f16(x[i]);
}

static void f16_to_f32(int64_t n, const uint16_t* x, float* y) {
  const __m256i expm = _mm256_set1_epi16(0x7c00), manm = _mm256_set1_epi16(0x03ff);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    __m512 f = _mm512_cvtph_ps(h);
    // NaN payloads: sign | 0x7f800000 | man << 13 without quieting (as common.h)
    __mmask16 nan = _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, expm), expm) &
                    _mm256_cmpneq_epi16_mask(_mm256_and_si256(h, manm), _mm256_setzero_si256());
    if (nan) {
      __m512i u = _mm512_cvtepu16_epi32(h);
      __m512i r = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(u, _mm512_set1_epi32(0x8000)), 16),
                                  _mm512_or_si512(_mm512_set1_epi32(0x7f800000),
                                                  _mm512_slli_epi32(_mm512_and_si512(u, _mm512_set1_epi32(0x3ff)), 13)));
      f = _mm512_mask_mov_ps(f, nan, _mm512_castsi512_ps(r));
    }
    _mm512_storeu_ps(y + i, f);
  }
  for (; i < n; i++) y[i] = fathom::f16_to_f32(x[i]);
}

}  // namespace ops_avx512

extern const OpsTable avx512_ops = {
    ops_avx512::unary, ops_avx512::unary_grad, ops_avx512::binary_row, ops_avx512::sum_row, ops_avx512::minmax_row,
    ops_avx512::reduce_cols, ops_avx512::softmax_row, ops_avx512::softmax_bwd_row, ops_avx512::rmsnorm_row,
    ops_avx512::rmsnorm_bwd_row, ops_avx512::rope_row, ops_avx512::swiglu, ops_avx512::swiglu_bwd, ops_avx512::adamw,
    ops_avx512::f32_to_bf16, ops_avx512::bf16_to_f32, ops_avx512::f32_to_f16, ops_avx512::f16_to_f32};

}  // namespace fathom
#endif
