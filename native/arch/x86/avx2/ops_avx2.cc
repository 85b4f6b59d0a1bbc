// AVX2 + FMA + F16C path of the elementwise / reduction / norm kernels: 8-lane shims for the shared body in
// arch/x86/ops_simd_impl.h, plus the 16-bit float casts.
#if !defined(FATHOM_NO_X86)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "common.h"
#include "kernels/ops.h"

namespace fathom {
namespace ops_avx2 {

typedef __m256 VF;
typedef __m256i VI;
typedef __m256 VM;   // all-ones / all-zeros lanes
typedef __m256d VD;
static const int W = 8;

static inline VF v_set1(float a) { return _mm256_set1_ps(a); }
static inline VF v_zero() { return _mm256_setzero_ps(); }
static inline VF v_ld(const float* p) { return _mm256_loadu_ps(p); }
static inline void v_st(float* p, VF v) { _mm256_storeu_ps(p, v); }
static inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline VF v_ldm(const float* p, int64_t n) { return _mm256_maskload_ps(p, tail_mask(n)); }
static inline void v_stm(float* p, VF v, int64_t n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
static inline VF v_keep(VF a, int64_t n) { return _mm256_and_ps(a, _mm256_castsi256_ps(tail_mask(n))); }
static inline VF v_add(VF a, VF b) { return _mm256_add_ps(a, b); }
static inline VF v_sub(VF a, VF b) { return _mm256_sub_ps(a, b); }
static inline VF v_mul(VF a, VF b) { return _mm256_mul_ps(a, b); }
static inline VF v_div(VF a, VF b) { return _mm256_div_ps(a, b); }
static inline VF v_fma(VF a, VF b, VF c) { return _mm256_fmadd_ps(a, b, c); }
static inline VF v_fnma(VF a, VF b, VF c) { return _mm256_fnmadd_ps(a, b, c); }
static inline VF v_fms(VF a, VF b, VF c) { return _mm256_fmsub_ps(a, b, c); }
static inline VF v_max(VF a, VF b) { return _mm256_max_ps(a, b); }
static inline VF v_min(VF a, VF b) { return _mm256_min_ps(a, b); }
static inline VF v_sqrt(VF a) { return _mm256_sqrt_ps(a); }
static inline VF v_abs(VF a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
static inline VF v_neg(VF a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
static inline VF v_signbit(VF a) { return _mm256_and_ps(a, _mm256_set1_ps(-0.0f)); }
static inline VF v_or(VF a, VF b) { return _mm256_or_ps(a, b); }
static inline VF v_round(VF a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline VM v_lt(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
static inline VM v_le(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
static inline VM v_gt(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
static inline VM v_eq(VF a, VF b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
static inline VM v_isnan(VF a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
static inline VM m_or(VM a, VM b) { return _mm256_or_ps(a, b); }
static inline bool m_any(VM a) { return _mm256_movemask_ps(a) != 0; }
static inline VM m_none() { return _mm256_setzero_ps(); }
static inline VF v_sel(VM m, VF a, VF b) { return _mm256_blendv_ps(b, a, m); }
static inline VI v_f2i(VF a) { return _mm256_cvtps_epi32(a); }
static inline VF v_i2f(VI a) { return _mm256_cvtepi32_ps(a); }
static inline VI vi_srai1(VI a) { return _mm256_srai_epi32(a, 1); }
static inline VI vi_sub(VI a, VI b) { return _mm256_sub_epi32(a, b); }
static inline VF v_pow2i(VI n) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23)); }
static inline VI v_exponent(VF a) {
  return _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(a), 23), _mm256_set1_epi32(126));
}
static inline VF v_mantissa_half(VF a) {
  __m256i b = _mm256_and_si256(_mm256_castps_si256(a), _mm256_set1_epi32(0x007fffff));
  return _mm256_castsi256_ps(_mm256_or_si256(b, _mm256_set1_epi32(0x3f000000)));
}
static inline float v_hsum(VF a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float v_hmax(VF a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float v_hmin(VF a) {
  __m128 s = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_min_ps(s, _mm_movehl_ps(s, s));
  s = _mm_min_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline VD vd_zero() { return _mm256_setzero_pd(); }
static inline VD vd_lo(VF a) { return _mm256_cvtps_pd(_mm256_castps256_ps128(a)); }
static inline VD vd_hi(VF a) { return _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)); }
static inline VD vd_add(VD a, VD b) { return _mm256_add_pd(a, b); }
static inline VD vd_fma(VD a, VD b, VD c) { return _mm256_fmadd_pd(a, b, c); }
static inline double vd_hsum(VD a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
static inline VD vd_ld(const double* p) { return _mm256_loadu_pd(p); }
static inline void vd_st(double* p, VD a) { _mm256_storeu_pd(p, a); }
static inline VF v_ld_dup_pairs(const float* p) {
  const __m256i idx = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), idx);
}
static inline VF v_swap_pairs(VF a) { return _mm256_permute_ps(a, 0xB1); }
static inline VF v_fmaddsub(VF a, VF b, VF c) { return _mm256_fmaddsub_ps(a, b, c); }

#include "arch/x86/ops_simd_impl.h"

// ---- casts (bit-exact with common.h)
static inline __m256i bf16_round8(__m256i u) {
  const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);  // signed compare fine: both < 2^31
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff),
                                                   _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))));
  r = _mm256_srli_epi32(r, 16);
  __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(r, q, nan);
}

static void f32_to_bf16(int64_t n, const float* x, uint16_t* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i a = bf16_round8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
    __m256i b = bf16_round8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 8)));
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), p);
  }
  for (; i < n; i++) y[i] = fathom::f32_to_bf16(x[i]);
}

static void bf16_to_f32(int64_t n, const uint16_t* x, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm256_slli_epi32(u, 16));
  }
  for (; i < n; i++) y[i] = fathom::bf16_to_f32(x[i]);
}

static void f32_to_f16(int64_t n, const float* x, uint16_t* y) {
  const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256i u = _mm256_castps_si256(v);
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
    if (!_mm256_testz_si256(nan, nan)) {
      __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x8000)),
                                  _mm256_set1_epi32(0x7e00));
      __m128i q16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      __m128i m16 = _mm_packs_epi32(_mm256_castsi256_si128(nan), _mm256_extracti128_si256(nan, 1));
      h = _mm_blendv_epi8(h, q16, m16);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
  }
  for (; i < n; i++) y[i] = fathom::f32_to_f16(x[i]);
}

static void f16_to_f32(int64_t n, const uint16_t* x, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
    __m256 f = _mm256_cvtph_ps(h);
    __m256i u = _mm256_cvtepu16_epi32(h);
    __m256i e = _mm256_and_si256(u, _mm256_set1_epi32(0x7c00)), man = _mm256_and_si256(u, _mm256_set1_epi32(0x3ff));
    __m256i nan = _mm256_andnot_si256(_mm256_cmpeq_epi32(man, _mm256_setzero_si256()),
                                      _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0x7c00)));
    if (!_mm256_testz_si256(nan, nan)) {
      __m256i r = _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x8000)), 16),
                                  _mm256_or_si256(_mm256_set1_epi32(0x7f800000), _mm256_slli_epi32(man, 13)));
      f = _mm256_blendv_ps(f, _mm256_castsi256_ps(r), _mm256_castsi256_ps(nan));
    }
    _mm256_storeu_ps(y + i, f);
  }
  for (; i < n; i++) y[i] = fathom::f16_to_f32(x[i]);
}

}  // namespace ops_avx2

extern const OpsTable avx2_ops = {
    ops_avx2::unary, ops_avx2::unary_grad, ops_avx2::binary_row, ops_avx2::sum_row, ops_avx2::minmax_row,
    ops_avx2::reduce_cols, ops_avx2::softmax_row, ops_avx2::softmax_bwd_row, ops_avx2::rmsnorm_row,
    ops_avx2::rmsnorm_bwd_row, ops_avx2::rope_row, ops_avx2::swiglu, ops_avx2::swiglu_bwd, ops_avx2::adamw,
    ops_avx2::f32_to_bf16, ops_avx2::bf16_to_f32, ops_avx2::f32_to_f16, ops_avx2::f16_to_f32};

}  // namespace fathom
#endif
