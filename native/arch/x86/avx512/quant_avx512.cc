// AVX-512 quantized products (see kernels/quant.h for the packed layout). One 64-byte vector of weights holds 4 bytes
// of each of 16 rows; a broadcast 4 bytes of quantized x turn it into 16 row partial dots with one vpdpbusd (u8 x s8).
// Signed 8-bit weights are made unsigned with XOR 0x80 (w + 128) and the block's 128 * sum(x) is subtracted; 4-bit
// weights are unsigned already (q4_0 subtracts 8 * sum(x)). Without VNNI (AVX-512BW), vpmaddubsw + vpmaddwd do the
// dot; 8-bit weights then use |w| and sign(w) * x so that vpmaddubsw cannot saturate.
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
// the allocation are harmless). Every line is prefetched: 2 hints per 512 bytes left q8_0 at ~85% of int8's rate.
constexpr int PFD = 8192;
// Software prefetch of every 64-byte line of [p, p + BYTES) (the weight stream a fixed distance ahead).
template <int BYTES>
inline void pf_lines(const uint8_t* p) {
  for (int o = 0; o < BYTES; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T0);
}

inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// acc + sum of 4 (u8 * s8) products per 32-bit lane (|u * s| pair sums must fit int16 without VNNI).
template <bool VNNI>
inline __m512i dot_us(__m512i acc, __m512i u, __m512i s) {
  if (VNNI) return _mm512_dpbusd_epi32(acc, u, s);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
}

// Signed weights w (prepared by prep_s8) times signed x: with VNNI w was XORed with 0x80 (caller subtracts 128*sum x);
// without, |w| times x with w's sign.
template <bool VNNI>
inline __m512i prep_s8(__m512i w) {
  return VNNI ? _mm512_xor_si512(w, _mm512_set1_epi8(static_cast<char>(0x80))) : w;
}
template <bool VNNI>
inline __m512i dot_ss(__m512i acc, __m512i w, __m512i xb) {
  if (VNNI) return _mm512_dpbusd_epi32(acc, w, xb);
  __m512i s = _mm512_mask_sub_epi8(xb, _mm512_movepi8_mask(w), _mm512_setzero_si512(), xb);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(_mm512_abs_epi8(w), s), _mm512_set1_epi16(1)));
}

inline void store_rows(float* o, __m512 v, int nrows) {
  if (nrows >= 16) _mm512_storeu_ps(o, v);
  else _mm512_mask_storeu_ps(o, static_cast<__mmask16>((1u << nrows) - 1), v);
}

inline int group_rows(const QuantPacked* p, int64_t g) {
  int64_t r = p->N - g * QUANT_QG;
  return r >= QUANT_QG ? QUANT_QG : static_cast<int>(r);
}

// ---- q8_0
template <int MT, bool VNNI>
void q8_0_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const int8_t* xq[MT];
  const float* xd[MT];
  const int32_t* xs[MT];
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) {
    xq[i] = x->q + (m0 + i) * x->ldq;
    xd[i] = x->d + (m0 + i) * x->ldd;
    xs[i] = x->s + (m0 + i) * x->lds;
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 512;
    pf_lines<512>(qb + PFD);
    _mm_prefetch(reinterpret_cast<const char*>(sc + 16 * b + 16 * (PFD / 512)), _MM_HINT_T0);
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 16 * b)));
    __m512i w[8];
    for (int j = 0; j < 8; j++) w[j] = prep_s8<VNNI>(_mm512_load_si512(qb + 64 * j));
    for (int i = 0; i < MT; i++) {
      __m512i a0 = VNNI ? _mm512_set1_epi32(-128 * xs[i][b]) : _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
      const int8_t* xb = xq[i] + 32 * b;
      for (int j = 0; j < 8; j += 2) {
        a0 = dot_ss<VNNI>(a0, w[j], bcast4(xb + 4 * j));
        a1 = dot_ss<VNNI>(a1, w[j + 1], bcast4(xb + 4 * j + 4));
      }
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_mul_ps(wd, _mm512_set1_ps(xd[i][b])), acc[i]);
    }
  }
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) store_rows(out + (m0 + i) * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- q4_0. With VNNI the high nibbles are used in place (t & 0xf0 = 16 * q_hi: one AND-NOT instead of a shift and
// an AND per vector) and their dot, 16 times the true one, is shifted back once per block (exact: |16 * 15 * 127 * 16|
// fits int32, and the sum is a multiple of 16), so the integer sum per block and row is the same as before. Without
// VNNI vpmaddubsw would saturate on 240 * 127 pairs, so that path shifts the nibbles down. The weight stream is
// prefetched into L2 only (PFD4 ahead): L1 hints for every line held the matvec at ~65% of one core's read rate,
// the L2 hints at ~85-90% (weights from DRAM, Zen 4, 1 and 2 threads).
constexpr int PFD4 = 16384;
template <int MT, bool VNNI>
void q4_0_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const int8_t* xq[MT];
  const float* xd[MT];
  const int32_t* xs[MT];
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) {
    xq[i] = x->q + (m0 + i) * x->ldq;
    xd[i] = x->d + (m0 + i) * x->ldd;
    xs[i] = x->s + (m0 + i) * x->lds;
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 256;
    for (int o = 0; o < 256; o += 64) _mm_prefetch(reinterpret_cast<const char*>(qb + PFD4 + o), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(sc + 16 * b + 16 * (PFD4 / 256)), _MM_HINT_T1);
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 16 * b)));
    __m512i lo[4], hi[4];
    for (int v = 0; v < 4; v++) {
      __m512i t = _mm512_load_si512(qb + 64 * v);
      lo[v] = _mm512_and_si512(t, m4);
      hi[v] = VNNI ? _mm512_andnot_si512(m4, t) : _mm512_and_si512(_mm512_srli_epi16(t, 4), m4);
    }
    for (int i = 0; i < MT; i++) {
      __m512i a0 = _mm512_set1_epi32(-8 * xs[i][b]), a1 = _mm512_setzero_si512();
      const int8_t* xb = xq[i] + 32 * b;
      for (int v = 0; v < 4; v++) {
        a0 = dot_us<VNNI>(a0, lo[v], bcast4(xb + 4 * v));
        a1 = dot_us<VNNI>(a1, hi[v], bcast4(xb + 16 + 4 * v));
      }
      a0 = _mm512_add_epi32(a0, VNNI ? _mm512_srai_epi32(a1, 4) : a1);
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_mul_ps(wd, _mm512_set1_ps(xd[i][b])), acc[i]);
    }
  }
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) store_rows(out + (m0 + i) * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- q4_K (MT <= 4: three accumulators per row of x)
template <int MT, bool VNNI>
void q4_K_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nsb = p->K / 256;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const int8_t* xq[MT];
  const float* xd[MT];
  const int32_t* xs[MT];
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) {
    xq[i] = x->q + (m0 + i) * x->ldq;
    xd[i] = x->d + (m0 + i) * x->ldd;
    xs[i] = x->s + (m0 + i) * x->lds;
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t sb = 0; sb < nsb; sb++) {
    const uint8_t* mt = meta + sb * QUANT_Q4K_META;
    const uint8_t* qb = qd + sb * 2048;
    __m512i si[MT], sm[MT];
    for (int i = 0; i < MT; i++) si[i] = sm[i] = _mm512_setzero_si512();
    for (int j = 0; j < 8; j++) {
      const uint8_t* qv = qb + (j >> 1) * 512;
      if (j & 1) pf_lines<512>(qv + PFD);
      else _mm_prefetch(reinterpret_cast<const char*>(mt + QUANT_Q4K_META * (PFD / 2048) + 16 * j), _MM_HINT_T0);
      __m512i w[8];
      for (int v = 0; v < 8; v++) {
        __m512i t = _mm512_load_si512(qv + 64 * v);
        w[v] = (j & 1) ? _mm512_and_si512(_mm512_srli_epi16(t, 4), m4) : _mm512_and_si512(t, m4);
      }
      const __m512i scj = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 64 + 16 * j)));
      const __m512i mnj = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 192 + 16 * j)));
      for (int i = 0; i < MT; i++) {
        const int8_t* xb = xq[i] + 256 * sb + 32 * j;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int v = 0; v < 8; v += 2) {
          a0 = dot_us<VNNI>(a0, w[v], bcast4(xb + 4 * v));
          a1 = dot_us<VNNI>(a1, w[v + 1], bcast4(xb + 4 * v + 4));
        }
        si[i] = _mm512_add_epi32(si[i], _mm512_mullo_epi32(_mm512_add_epi32(a0, a1), scj));
        sm[i] = _mm512_add_epi32(sm[i], _mm512_mullo_epi32(mnj, _mm512_set1_epi32(xs[i][sb * 8 + j])));
      }
    }
    const __m512 vd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt)));
    const __m512 vdm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + 32)));
    for (int i = 0; i < MT; i++) {
      __m512 t = _mm512_fmsub_ps(vd, _mm512_cvtepi32_ps(si[i]), _mm512_mul_ps(vdm, _mm512_cvtepi32_ps(sm[i])));
      acc[i] = _mm512_fmadd_ps(t, _mm512_set1_ps(xd[i][sb]), acc[i]);
    }
  }
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++) store_rows(out + (m0 + i) * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- int8 (per-row weight scale, one activation scale per row of x). Integer sums are flushed to float every
// 256 blocks (8192 k) so they cannot overflow.
template <int MT, bool VNNI>
void int8_tile(const QuantPacked* p, const QuantX* x, int64_t m0, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const int8_t* xq[MT];
  const int32_t* xs[MT];
  __m512 acc[MT];
  for (int i = 0; i < MT; i++) {
    xq[i] = x->q + (m0 + i) * x->ldq;
    xs[i] = x->s + (m0 + i) * x->lds;
    acc[i] = _mm512_setzero_ps();
  }
  for (int64_t c0 = 0; c0 < nb; c0 += 256) {
    const int64_t c1 = c0 + 256 < nb ? c0 + 256 : nb;
    __m512i a0[MT], a1[MT];
    for (int i = 0; i < MT; i++) {
      int32_t corr = 0;
      if (VNNI)
        for (int64_t b = c0; b < c1; b++) corr += xs[i][b];
      a0[i] = _mm512_set1_epi32(-128 * corr);
      a1[i] = _mm512_setzero_si512();
    }
    for (int64_t b = c0; b < c1; b++) {
      const uint8_t* qb = qd + b * 512;
      pf_lines<512>(qb + PFD);
      __m512i w[8];
      for (int j = 0; j < 8; j++) w[j] = prep_s8<VNNI>(_mm512_load_si512(qb + 64 * j));
      for (int i = 0; i < MT; i++) {
        const int8_t* xb = xq[i] + 32 * b;
        for (int j = 0; j < 8; j += 2) {
          a0[i] = dot_ss<VNNI>(a0[i], w[j], bcast4(xb + 4 * j));
          a1[i] = dot_ss<VNNI>(a1[i], w[j + 1], bcast4(xb + 4 * j + 4));
        }
      }
    }
    for (int i = 0; i < MT; i++) acc[i] = _mm512_add_ps(acc[i], _mm512_cvtepi32_ps(_mm512_add_epi32(a0[i], a1[i])));
  }
  const __m512 ws = _mm512_load_ps(reinterpret_cast<const float*>(meta));
  const int nr = group_rows(p, g);
  for (int i = 0; i < MT; i++)
    store_rows(out + (m0 + i) * ldo + g * QUANT_QG, _mm512_mul_ps(acc[i], _mm512_mul_ps(ws, _mm512_set1_ps(x->d[(m0 + i) * x->ldd]))), nr);
}

// ---------------------------------------------------------------------------------------------------------------
// Tiled kernels for M >= 2 (activations as QuantXT, T = 8 rows). Each weight vector is loaded once per block and
// applied to the tile's rows; a row's x bytes, scale and accumulator start are at constant offsets from one pointer
// each, broadcast from memory. Per block and row the integer sum and its f32 scaling are those of the M = 1 kernels.
constexpr int T = QUANT_T_AVX512;
// With several rows per weight vector a block takes longer, so the weight stream is also prefetched into L2 further
// ahead (measured on Zen 4 with weights streamed from DRAM: M = 8 about 15% faster than with the L1 hints alone).
constexpr int PFD2 = 65536;
template <int BYTES>
inline void pf_lines_l2(const uint8_t* p) {
  for (int o = 0; o < BYTES; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + o), _MM_HINT_T1);
}

inline __m512i bcast_i32(const int32_t* p) { return _mm512_set1_epi32(*p); }

// ---- q8_0
template <int MT, bool VNNI>
void q8_0_xt(const QuantPacked* p, const QuantXT* x, int64_t t, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const int8_t* xq = x->q + t * x->sq;
  const float* xd = x->d + t * x->sd;
  const int32_t* xc = x->c + t * x->sc;
  __m512 acc[MT];
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 512;
    pf_lines<512>(qb + PFD);
    pf_lines_l2<512>(qb + PFD2);
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 16 * b)));
    __m512i w[8];
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j++) w[j] = prep_s8<VNNI>(_mm512_load_si512(qb + 64 * j));
    const int8_t* xb = xq + b * (T * 32);
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) {
      // rows of a full tile are independent chains; a short tile splits each row's chain in two
      __m512i a0 = VNNI ? bcast_i32(xc + b * T + i) : _mm512_setzero_si512();
      if (MT >= 4) {
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) a0 = dot_ss<VNNI>(a0, w[j], bcast4(xb + 32 * i + 4 * j));
      } else {
        __m512i a1 = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j += 2) {
          a0 = dot_ss<VNNI>(a0, w[j], bcast4(xb + 32 * i + 4 * j));
          a1 = dot_ss<VNNI>(a1, w[j + 1], bcast4(xb + 32 * i + 4 * j + 4));
        }
        a0 = _mm512_add_epi32(a0, a1);
      }
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_mul_ps(wd, _mm512_set1_ps(xd[b * T + i])), acc[i]);
    }
  }
  const int nr = group_rows(p, g);
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) store_rows(out + i * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- q4_0
template <int MT, bool VNNI>
void q4_0_xt(const QuantPacked* p, const QuantXT* x, int64_t t, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint16_t* sc = reinterpret_cast<const uint16_t*>(meta);
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const int8_t* xq = x->q + t * x->sq;
  const float* xd = x->d + t * x->sd;
  const int32_t* xc = x->c + t * x->sc;
  __m512 acc[MT];
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b++) {
    const uint8_t* qb = qd + b * 256;
    pf_lines<256>(qb + PFD);
    pf_lines_l2<256>(qb + PFD2);
    const __m512 wd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(sc + 16 * b)));
    __m512i lo[4], hi[4];
    #pragma GCC unroll 8
    for (int v = 0; v < 4; v++) {
      __m512i u = _mm512_load_si512(qb + 64 * v);
      lo[v] = _mm512_and_si512(u, m4);
      hi[v] = _mm512_and_si512(_mm512_srli_epi16(u, 4), m4);
    }
    const int8_t* xb = xq + b * (T * 32);
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) {
      __m512i a0 = bcast_i32(xc + b * T + i);
      if (MT >= 4) {
        #pragma GCC unroll 8
        for (int v = 0; v < 4; v++) {
          a0 = dot_us<VNNI>(a0, lo[v], bcast4(xb + 32 * i + 4 * v));
          a0 = dot_us<VNNI>(a0, hi[v], bcast4(xb + 32 * i + 16 + 4 * v));
        }
      } else {
        __m512i a1 = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int v = 0; v < 4; v++) {
          a0 = dot_us<VNNI>(a0, lo[v], bcast4(xb + 32 * i + 4 * v));
          a1 = dot_us<VNNI>(a1, hi[v], bcast4(xb + 32 * i + 16 + 4 * v));
        }
        a0 = _mm512_add_epi32(a0, a1);
      }
      acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0), _mm512_mul_ps(wd, _mm512_set1_ps(xd[b * T + i])), acc[i]);
    }
  }
  const int nr = group_rows(p, g);
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) store_rows(out + i * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- q4_K. Per sub-block j: the integer dot times the row's 6-bit scale, and the mins term m_j * sum_j, both in
// int32 as ggml; per super-block d * si - dmin * sm scaled by the activation's d.
template <int MT, bool VNNI>
void q4_K_xt(const QuantPacked* p, const QuantXT* x, int64_t t, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nsb = p->K / 256;
  const __m512i m4 = _mm512_set1_epi8(0x0f);
  const int8_t* xq = x->q + t * x->sq;
  const float* xd = x->d + t * x->sd;
  const int32_t* xc = x->c + t * x->sc;
  __m512 acc[MT];
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t sb = 0; sb < nsb; sb++) {
    const uint8_t* mt = meta + sb * QUANT_Q4K_META;
    const uint8_t* qb = qd + sb * 2048;
    __m512i si[MT], sm[MT];
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) si[i] = sm[i] = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
      const uint8_t* qv = qb + (j >> 1) * 512;
      if (j & 1) {
        pf_lines<512>(qv + PFD);
        pf_lines_l2<512>(qv + PFD2);
      }
      else _mm_prefetch(reinterpret_cast<const char*>(mt + QUANT_Q4K_META * (PFD / 2048) + 16 * j), _MM_HINT_T0);
      __m512i w[8];
      #pragma GCC unroll 8
      for (int v = 0; v < 8; v++) {
        __m512i u = _mm512_load_si512(qv + 64 * v);
        w[v] = (j & 1) ? _mm512_and_si512(_mm512_srli_epi16(u, 4), m4) : _mm512_and_si512(u, m4);
      }
      const __m512i scj = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 64 + 16 * j)));
      const int8_t* xb = xq + (sb * 8 + j) * (T * 32);
      if (j & 1) {
        // mins of sub-blocks j-1 and j as int16 pairs times the pairs of activation sums (vpmaddwd, exact in int32)
        const __m512i mnp = _mm512_or_si512(
            _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 192 + 16 * (j - 1)))),
            _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + 192 + 16 * j))), 16));
        const int32_t* cb = xc + (sb * 4 + (j >> 1)) * T;
        #pragma GCC unroll 8
        for (int i = 0; i < MT; i++) sm[i] = _mm512_add_epi32(sm[i], _mm512_madd_epi16(mnp, bcast_i32(cb + i)));
      }
      #pragma GCC unroll 8
      for (int i = 0; i < MT; i++) {
        __m512i a0 = _mm512_setzero_si512();
        if (MT >= 4) {
          #pragma GCC unroll 8
          for (int v = 0; v < 8; v++) a0 = dot_us<VNNI>(a0, w[v], bcast4(xb + 32 * i + 4 * v));
        } else {
          __m512i a1 = _mm512_setzero_si512();
          #pragma GCC unroll 8
          for (int v = 0; v < 8; v += 2) {
            a0 = dot_us<VNNI>(a0, w[v], bcast4(xb + 32 * i + 4 * v));
            a1 = dot_us<VNNI>(a1, w[v + 1], bcast4(xb + 32 * i + 4 * v + 4));
          }
          a0 = _mm512_add_epi32(a0, a1);
        }
        si[i] = _mm512_add_epi32(si[i], _mm512_mullo_epi32(a0, scj));
      }
    }
    const __m512 vd = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt)));
    const __m512 vdm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(mt + 32)));
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) {
      __m512 u = _mm512_fmsub_ps(vd, _mm512_cvtepi32_ps(si[i]), _mm512_mul_ps(vdm, _mm512_cvtepi32_ps(sm[i])));
      acc[i] = _mm512_fmadd_ps(u, _mm512_set1_ps(xd[sb * T + i]), acc[i]);
    }
  }
  const int nr = group_rows(p, g);
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) store_rows(out + i * ldo + g * QUANT_QG, acc[i], nr);
}

// ---- int8: one integer accumulator per row for a chunk of up to 256 blocks, started at the chunk's correction.
template <int MT, bool VNNI>
void int8_xt(const QuantPacked* p, const QuantXT* x, int64_t t, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int64_t nb = p->nb;
  const int8_t* xq = x->q + t * x->sq;
  const float* xd = x->d + t * x->sd;
  const int32_t* xc = x->c + t * x->sc;
  __m512 acc[MT];
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++) acc[i] = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < nb; c0 += 256) {
    const int64_t c1 = c0 + 256 < nb ? c0 + 256 : nb;
    __m512i a[MT];
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) a[i] = VNNI ? bcast_i32(xc + (c0 / 256) * T + i) : _mm512_setzero_si512();
    for (int64_t b = c0; b < c1; b++) {
      const uint8_t* qb = qd + b * 512;
      pf_lines<512>(qb + PFD);
      pf_lines_l2<512>(qb + PFD2);
      __m512i w[8];
      #pragma GCC unroll 8
      for (int j = 0; j < 8; j++) w[j] = prep_s8<VNNI>(_mm512_load_si512(qb + 64 * j));
      const int8_t* xb = xq + b * (T * 32);
      #pragma GCC unroll 8
      for (int i = 0; i < MT; i++)
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) a[i] = dot_ss<VNNI>(a[i], w[j], bcast4(xb + 32 * i + 4 * j));
    }
    #pragma GCC unroll 8
    for (int i = 0; i < MT; i++) acc[i] = _mm512_add_ps(acc[i], _mm512_cvtepi32_ps(a[i]));
  }
  const __m512 ws = _mm512_load_ps(reinterpret_cast<const float*>(meta));
  const int nr = group_rows(p, g);
  #pragma GCC unroll 8
  for (int i = 0; i < MT; i++)
    store_rows(out + i * ldo + g * QUANT_QG, _mm512_mul_ps(acc[i], _mm512_mul_ps(ws, _mm512_set1_ps(xd[i]))), nr);
}

typedef void (*xt_fn)(const QuantPacked*, const QuantXT*, int64_t, int64_t, float*, int64_t);

#define FATHOM_QUANT_XT(NAME, TILE, VNNI)                                                                    \
  void NAME(const QuantPacked* p, const QuantXT* x, int64_t t, int mt, int64_t g, float* out, int64_t ldo) { \
    static const xt_fn f[T + 1] = {nullptr,       TILE<1, VNNI>, TILE<2, VNNI>, TILE<3, VNNI>, TILE<4, VNNI>,  \
                                   TILE<5, VNNI>, TILE<6, VNNI>, TILE<7, VNNI>, TILE<8, VNNI>};               \
    f[mt](p, x, t, g, out, ldo);                                                                             \
  }

typedef void (*tile_fn)(const QuantPacked*, const QuantX*, int64_t, int64_t, float*, int64_t);

// The matvec kernels run each row on its own (the quant_matmul path for M = 1 and M = 1 remainders).
#define FATHOM_QUANT_DISPATCH(NAME, TILE, VNNI)                                                              \
  void NAME(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo) { \
    for (int i = 0; i < mt; i++) TILE<1, VNNI>(p, x, m0 + i, g, out, ldo);                                  \
  }

}  // namespace

FATHOM_QUANT_DISPATCH(quant_avx512_q8_0, q8_0_tile, true)
FATHOM_QUANT_DISPATCH(quant_avx512_q4_0, q4_0_tile, true)
FATHOM_QUANT_DISPATCH(quant_avx512_q4_K, q4_K_tile, true)
FATHOM_QUANT_DISPATCH(quant_avx512_int8, int8_tile, true)
FATHOM_QUANT_DISPATCH(quant_avx512bw_q8_0, q8_0_tile, false)
FATHOM_QUANT_DISPATCH(quant_avx512bw_q4_0, q4_0_tile, false)
FATHOM_QUANT_DISPATCH(quant_avx512bw_q4_K, q4_K_tile, false)
FATHOM_QUANT_DISPATCH(quant_avx512bw_int8, int8_tile, false)
FATHOM_QUANT_XT(quant_avx512_q8_0_t, q8_0_xt, true)
FATHOM_QUANT_XT(quant_avx512_q4_0_t, q4_0_xt, true)
FATHOM_QUANT_XT(quant_avx512_q4_K_t, q4_K_xt, true)
FATHOM_QUANT_XT(quant_avx512_int8_t, int8_xt, true)
FATHOM_QUANT_XT(quant_avx512bw_q8_0_t, q8_0_xt, false)
FATHOM_QUANT_XT(quant_avx512bw_q4_0_t, q4_0_xt, false)
FATHOM_QUANT_XT(quant_avx512bw_q4_K_t, q4_K_xt, false)
FATHOM_QUANT_XT(quant_avx512bw_int8_t, int8_xt, false)

}  // namespace fathom
#endif  // !FATHOM_NO_X86
