// AVX2 quantized products (see kernels/quant.h for the packed layout). Each 64-byte weight vector is read as two
// 8-row halves (bytes 0..31: rows 0..7, 32..63: rows 8..15), both halves in the same pass so memory streams once.
// vpmaddubsw (u8 x s8 -> pairs summed into int16) + vpmaddwd with ones -> 8 lanes of 4-product sums.
// 4-bit weights are unsigned (no saturation: 2*15*127 < 32767); 8-bit weights use |w| and sign(x, w)
// (2*128*127 < 32767, exact for w = -128 too).
// Templates here live in an anonymous namespace (internal linkage), so they cannot leak to other paths.
#if !defined(FATHOM_NO_X86)
// GCC 12 warns about _mm512_undefined_* inside its own intrinsic headers (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstring>
#include "kernels/quant.h"

namespace fathom {
namespace {

// Software prefetch distance for the weight stream at M = 1 (bytes ahead within a group; prefetches past the end of
// the allocation are harmless), every 64-byte line, as on the AVX-512 path.
constexpr int PFD = 8192;
template <int BYTES>
inline void pf_lines(const uint8_t* p) {
  for (int o = 0; o < BYTES; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

inline __m256i dot_us(__m256i acc, __m256i u, __m256i s) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}
inline __m256i dot_ss(__m256i acc, __m256i w, __m256i xb) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(xb, w)),
                                                 _mm256_set1_epi16(1)));
}

inline __m256i ld(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

inline void store_rows(float* o, const __m256* v, int nrows) {
  if (nrows >= 16) {
    _mm256_storeu_ps(o, v[0]);
    _mm256_storeu_ps(o + 8, v[1]);
    return;
  }
  alignas(32) float t[16];
  _mm256_store_ps(t, v[0]);
  _mm256_store_ps(t + 8, v[1]);
  for (int r = 0; r < nrows; r++) o[r] = t[r];
}

inline int group_rows(const QuantPacked* p, int64_t g) {
  int64_t r = p->N - g * QUANT_QG;
  return r >= QUANT_QG ? QUANT_QG : static_cast<int>(r);
}

// ---- q8_0
template <int MT>
void q8_0_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  __m256 acc[MT][2];
  for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 512;
    pf_lines<512>(qb + PFD);
    _mm_prefetch(reinterpret_cast<const char*>(sc + 16 * b + 16 * (PFD / 512)), _MM_HINT_T0);
    for (int h = 0; h < 2; h++) {
      const __m256 wd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 16 * b + 8 * h)));
      for (int i = 0; i < MT; i++) {
        const int8_t* xb = x->q + (m0 + i) * x->ldq + 32 * b;
        __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
        for (int j = 0; j < 8; j += 2) {
          a0 = dot_ss(a0, ld(qb + 64 * j + 32 * h), bcast4(xb + 4 * j));
          a1 = dot_ss(a1, ld(qb + 64 * j + 64 + 32 * h), bcast4(xb + 4 * j + 4));
        }
        const float xdv = x->d[(m0 + i) * x->ldd + b];
        acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a0, a1)), _mm256_mul_ps(wd, _mm256_set1_ps(xdv)), acc[i][h]);
      }
    }
  }
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) store_rows(out + (m0 + i) * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- q4_0. The weight stream is prefetched into L2 only, PFD4 ahead (as the AVX-512 q4_0 kernel).
constexpr int PFD4 = 16384;
template <int MT>
void q4_0_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc[MT][2];
  for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 256;
    for (int o = 0; o < 256; o += 64) _mm_prefetch(reinterpret_cast<const char*>(qb + PFD4 + o), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(sc + 16 * b + 16 * (PFD4 / 256)), _MM_HINT_T1);
    for (int h = 0; h < 2; h++) {
      const __m256 wd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 16 * b + 8 * h)));
      __m256i lo[4], hi[4];
      for (int v = 0; v < 4; v++) {
        __m256i t = ld(qb + 64 * v + 32 * h);
        lo[v] = _mm256_and_si256(t, m4);
        hi[v] = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);
      }
      for (int i = 0; i < MT; i++) {
        const int8_t* xb = x->q + (m0 + i) * x->ldq + 32 * b;
        __m256i a0 = _mm256_set1_epi32(-8 * x->s[(m0 + i) * x->lds + b]), a1 = _mm256_setzero_si256();
        for (int v = 0; v < 4; v++) {
          a0 = dot_us(a0, lo[v], bcast4(xb + 4 * v));
          a1 = dot_us(a1, hi[v], bcast4(xb + 16 + 4 * v));
        }
        const float xdv = x->d[(m0 + i) * x->ldd + b];
        acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(a0, a1)), _mm256_mul_ps(wd, _mm256_set1_ps(xdv)), acc[i][h]);
      }
    }
  }
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) store_rows(out + (m0 + i) * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- q4_K
template <int MT>
void q4_K_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nsb = p->K / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256 acc[MT][2];
  for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; sb++) {
    const uint8_t* mt = meta + sb * QUANT_Q4K_META;
    const uint8_t* qb = qd + sb * 2048;
    for (int h = 0; h < 2; h++) {
      __m256i si[MT], sm[MT];
      for (int i = 0; i < MT; i++) si[i] = sm[i] = _mm256_setzero_si256();
      for (int j = 0; j < 8; j++) {
        const uint8_t* qv = qb + (j >> 1) * 512 + 32 * h;
        if (h == 0) {
          if (j & 1) pf_lines<512>(qb + (j >> 1) * 512 + PFD);
          else _mm_prefetch(reinterpret_cast<const char*>(mt + QUANT_Q4K_META * (PFD / 2048) + 16 * j), _MM_HINT_T0);
        }
        const __m256i scj = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mt + 64 + 16 * j + 8 * h)));
        const __m256i mnj = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mt + 192 + 16 * j + 8 * h)));
        for (int i = 0; i < MT; i++) {
          const int8_t* xb = x->q + (m0 + i) * x->ldq + 256 * sb + 32 * j;
          __m256i a0 = _mm256_setzero_si256(), a1 = _mm256_setzero_si256();
          for (int v = 0; v < 8; v += 2) {
            __m256i t0 = ld(qv + 64 * v), t1 = ld(qv + 64 * v + 64);
            if (j & 1) {
              t0 = _mm256_srli_epi16(t0, 4);
              t1 = _mm256_srli_epi16(t1, 4);
            }
            a0 = dot_us(a0, _mm256_and_si256(t0, m4), bcast4(xb + 4 * v));
            a1 = dot_us(a1, _mm256_and_si256(t1, m4), bcast4(xb + 4 * v + 4));
          }
          si[i] = _mm256_add_epi32(si[i], _mm256_mullo_epi32(_mm256_add_epi32(a0, a1), scj));
          sm[i] = _mm256_add_epi32(sm[i], _mm256_mullo_epi32(mnj, _mm256_set1_epi32(x->s[(m0 + i) * x->lds + sb * 8 + j])));
        }
      }
      const __m256 vd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 16 * h)));
      const __m256 vdm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 32 + 16 * h)));
      for (int i = 0; i < MT; i++) {
        __m256 t = _mm256_fmsub_ps(vd, _mm256_cvtepi32_ps(si[i]), _mm256_mul_ps(vdm, _mm256_cvtepi32_ps(sm[i])));
        acc[i][h] = _mm256_fmadd_ps(t, _mm256_set1_ps(x->d[(m0 + i) * x->ldd + sb]), acc[i][h]);
      }
    }
  }
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) store_rows(out + (m0 + i) * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- int8: integer sums flushed to float every 256 blocks.
template <int MT>
void int8_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  __m256 acc[MT][2];
  for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t c0 = 0; c0 < nb; c0 += 256) {
    const int64_t c1 = c0 + 256 < nb ? c0 + 256 : nb;
    __m256i ai[MT][2];
    for (int i = 0; i < MT; i++) ai[i][0] = ai[i][1] = _mm256_setzero_si256();
    for (int64_t b = c0; b < c1; b++) {
      const uint8_t* qb = qd + b * 512;
      pf_lines<512>(qb + PFD);
      for (int i = 0; i < MT; i++) {
        const int8_t* xb = x->q + (m0 + i) * x->ldq + 32 * b;
        for (int j = 0; j < 8; j++) {
          const __m256i xv = bcast4(xb + 4 * j);
          ai[i][0] = dot_ss(ai[i][0], ld(qb + 64 * j), xv);
          ai[i][1] = dot_ss(ai[i][1], ld(qb + 64 * j + 32), xv);
        }
      }
    }
    for (int i = 0; i < MT; i++)
      for (int h = 0; h < 2; h++) acc[i][h] = _mm256_add_ps(acc[i][h], _mm256_cvtepi32_ps(ai[i][h]));
  }
  const float* ws = reinterpret_cast<const float*>(meta);
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) {
    const __m256 xdv = _mm256_set1_ps(x->d[(m0 + i) * x->ldd]);
    __m256 r[2] = {_mm256_mul_ps(acc[i][0], _mm256_mul_ps(_mm256_loadu_ps(ws), xdv)),
                   _mm256_mul_ps(acc[i][1], _mm256_mul_ps(_mm256_loadu_ps(ws + 8), xdv))};
    store_rows(out + (m0 + i) * ldo + g * QUANT_QG, r, nr);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Tiled kernels for M >= 2, q8_0 and int8 (activations as QuantXT, T = 4 rows): per block and 8-row half, each
// weight vector is loaded (and made |w|) once and applied to the tile's rows, whose x bytes, scales and
// accumulator starts are at constant offsets from one pointer each. Integer sums per block are exact, then scaled
// in f32 as by the M = 1 kernels.
constexpr int T = QUANT_T_AVX2;
// The weight stream also prefetched into L2 further ahead (as on the AVX-512 path).
constexpr int PFD2 = 65536;
template <int BYTES>
inline void pf_lines_l2(const uint8_t* p) {
  for (int o = 0; o < BYTES; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T1);
}

inline __m256i bcast_i32(const int32_t* p) { return _mm256_set1_epi32(*p); }

// ---- q8_0
template <int MT>
void q8_0_xt(const QuantPacked* p, const QuantXT* x, int64_t t, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const int8_t* xq = x->q + t * x->sq;
  const float* xd = x->d + t * x->sd;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MT][2];
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 512;
    pf_lines<512>(qb + PFD);
    pf_lines_l2<512>(qb + PFD2);
    const int8_t* xb = xq + b * (T * 32);
    #pragma GCC unroll 8
    for (int h = 0; h < 2; h++) {
      __m256i a[MT];
      #pragma GCC unroll 8
      for (int i = 0; i < MT; i++) a[i] = _mm256_setzero_si256();
      #pragma GCC unroll 8
      for (int j = 0; j < 8; j++) {
        const __m256i w = ld(qb + 64 * j + 32 * h), aw = _mm256_abs_epi8(w);
        #pragma GCC unroll 8
        for (int i = 0; i < MT; i++)
          a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast4(xb + 32 * i + 4 * j), w)), ones));
      }
      const __m256 wd = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + 16 * b + 8 * h)));
      #pragma GCC unroll 8
      for (int i = 0; i < MT; i++)
        acc[i][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[i]), _mm256_mul_ps(wd, _mm256_set1_ps(xd[b * T + i])), acc[i][h]);
    }
  }
  const int nr = group_rows(p, g);
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) store_rows(out + i * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- int8: integer sums per row and half for chunks of up to 256 blocks.
template <int MT>
void int8_xt(const QuantPacked* p, const QuantXT* x, int64_t t, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const int8_t* xq = x->q + t * x->sq;
  const float* xd = x->d + t * x->sd;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[MT][2];
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t c0 = 0; c0 < nb; c0 += 256) {
    const int64_t c1 = c0 + 256 < nb ? c0 + 256 : nb;
    __m256i ai[MT][2];
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) ai[i][0] = ai[i][1] = _mm256_setzero_si256();
    for (int64_t b = c0; b < c1; b++) {
      const uint8_t* qb = qd + b * 512;
      pf_lines<512>(qb + PFD);
      pf_lines_l2<512>(qb + PFD2);
      const int8_t* xb = xq + b * (T * 32);
      #pragma GCC unroll 8
      for (int j = 0; j < 8; j++)
        #pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
          const __m256i w = ld(qb + 64 * j + 32 * h), aw = _mm256_abs_epi8(w);
          #pragma GCC unroll 8
          for (int i = 0; i < MT; i++)
            ai[i][h] = _mm256_add_epi32(ai[i][h], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast4(xb + 32 * i + 4 * j), w)), ones));
        }
    }
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++)
      #pragma GCC unroll 8
      for (int h = 0; h < 2; h++) acc[i][h] = _mm256_add_ps(acc[i][h], _mm256_cvtepi32_ps(ai[i][h]));
  }
  const float* ws = reinterpret_cast<const float*>(meta);
  const int nr = group_rows(p, g);
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) {
    const __m256 xdv = _mm256_set1_ps(xd[i]);
    __m256 r[2] = {_mm256_mul_ps(acc[i][0], _mm256_mul_ps(_mm256_loadu_ps(ws), xdv)),
                   _mm256_mul_ps(acc[i][1], _mm256_mul_ps(_mm256_loadu_ps(ws + 8), xdv))};
    store_rows(out + i * ldo + g * QUANT_QG, r, nr);
  }
}

typedef void (*xt_fn)(const QuantPacked*, const QuantXT*, int64_t, int64_t, float*, int64_t);

#define FATHOM_QUANT_XT2(NAME, TILE)                                                                        \
  void NAME(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo) { \
    static const xt_fn f[T + 1] = {nullptr, TILE<1>, TILE<2>, TILE<3>, TILE<4>};                             \
    f[mt](p, x, t, g, out, ldo);                                                                             \
  }

typedef void (*tile_fn)(const QuantPacked*, const QuantX*, int64_t, int64_t, float*, int64_t);

// Rows as tiles of at most 4 (the q4_0 / q4_K products for every M, the others for M = 1).
#define FATHOM_QUANT_DISPATCH2(NAME, TILE)                                                                   \
  void NAME(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo) { \
    static const tile_fn f[5] = {nullptr, TILE<1>, TILE<2>, TILE<3>, TILE<4>};                               \
    while (mt > 0) {                                                                                         \
      int t = mt < 4 ? mt : 4;                                                                               \
      f[t](p, x, m0, g, out, ldo);                                                                           \
      m0 += t;                                                                                               \
      mt -= t;                                                                                               \
    }                                                                                                        \
  }

}  // namespace

FATHOM_QUANT_DISPATCH2(quant_avx2_q8_0, q8_0_tile)
FATHOM_QUANT_DISPATCH2(quant_avx2_q4_0, q4_0_tile)
FATHOM_QUANT_DISPATCH2(quant_avx2_q4_K, q4_K_tile)
FATHOM_QUANT_DISPATCH2(quant_avx2_int8, int8_tile)
FATHOM_QUANT_XT2(quant_avx2_q8_0_t, q8_0_xt)
FATHOM_QUANT_XT2(quant_avx2_int8_t, int8_xt)

}  // namespace fathom
#endif  // !FATHOM_NO_X86
