// Quantized products: packing, activation quantization, threading, dispatch, and the portable scalar path.
// See quant.h for the packed layout.
#include "kernels/quant.h"
#include "common.h"
#include "cpu.h"
#include "pool.h"
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <new>

namespace fathom {
namespace {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// ggml get_scale_min_k4.
inline void scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Fills group g of p from the source rows.
void pack_group(QuantPacked* p, int64_t g, const uint8_t* data, const float* scales) {
  uint8_t* meta = p->data + g * p->group_bytes;
  uint8_t* qd = meta + p->meta_bytes;
  const int64_t K = p->K, nb = p->nb;
  for (int r = 0; r < QUANT_QG; r++) {
    const int64_t n = g * QUANT_QG + r;
    if (n >= p->N) break;
    switch (p->kind) {
      case QK_Q8_0: {
        const uint8_t* row = data + n * nb * 34;
        uint16_t* d = reinterpret_cast<uint16_t*>(meta);
        for (int64_t b = 0; b < nb; b++) {
          d[b * 16 + r] = rd16(row + b * 34);
          for (int j = 0; j < 8; j++) std::memcpy(qd + b * 512 + j * 64 + r * 4, row + b * 34 + 2 + 4 * j, 4);
        }
        break;
      }
      case QK_Q4_0: {
        const uint8_t* row = data + n * nb * 18;
        uint16_t* d = reinterpret_cast<uint16_t*>(meta);
        for (int64_t b = 0; b < nb; b++) {
          d[b * 16 + r] = rd16(row + b * 18);
          for (int v = 0; v < 4; v++) std::memcpy(qd + b * 256 + v * 64 + r * 4, row + b * 18 + 2 + 4 * v, 4);
        }
        break;
      }
      case QK_Q4_K: {
        const int64_t nsb = K / 256;
        const uint8_t* row = data + n * nsb * 144;
        for (int64_t sb = 0; sb < nsb; sb++) {
          const uint8_t* blk = row + sb * 144;
          uint8_t* mt = meta + sb * QUANT_Q4K_META;
          reinterpret_cast<uint16_t*>(mt)[r] = rd16(blk);
          reinterpret_cast<uint16_t*>(mt + 32)[r] = rd16(blk + 2);
          for (int j = 0; j < 8; j++) scale_min_k4(j, blk + 4, mt + 64 + 16 * j + r, mt + 192 + 16 * j + r);
          for (int g4 = 0; g4 < 4; g4++)
            for (int v = 0; v < 8; v++)
              std::memcpy(qd + sb * 2048 + (g4 * 8 + v) * 64 + r * 4, blk + 16 + 32 * g4 + 4 * v, 4);
        }
        break;
      }
      case QK_INT8: {
        const uint8_t* row = data + n * K;
        reinterpret_cast<float*>(meta)[r] = scales[n];
        for (int64_t b = 0; b < nb; b++)
          for (int j = 0; j < 8; j++) {
            const int64_t k = b * 32 + 4 * j;
            uint8_t* dst = qd + b * 512 + j * 64 + r * 4;
            if (k + 4 <= K) std::memcpy(dst, row + k, 4);
            else
              for (int t = 0; t < 4; t++) dst[t] = k + t < K ? row[k + t] : 0;
          }
        break;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Activation quantization (portable; the compiler vectorises the simple loops).

inline int32_t q_round(float v) {
  // Round half to even by the 1.5 * 2^23 trick (|v| <= 127 after the clamp; vectorises with SSE2, unlike lrintf).
  v = v > 127.f ? 127.f : (v < -127.f ? -127.f : v);
  float r = (v + 12582912.f) - 12582912.f;
  return static_cast<int32_t>(r);
}

// Quantizes n values with inverse scale id into q; returns their sum.
inline int32_t q_run(const float* x, int64_t n, float id, int8_t* q) {
  int32_t sum = 0;
  for (int64_t i = 0; i < n; i++) {
    int32_t v = q_round(x[i] * id);
    q[i] = static_cast<int8_t>(v);
    sum += v;
  }
  return sum;
}

inline float amax_of(const float* x, int64_t n) {
  float a = 0.f;
  for (int64_t i = 0; i < n; i++) a = std::max(a, std::fabs(x[i]));
  return a;
}

void quantize_rows(int kind, int64_t m0, int64_t m1, const float* x, int64_t K, int64_t Kp, int8_t* q, float* d,
                   int64_t ldd, int32_t* s, int64_t lds) {
  for (int64_t m = m0; m < m1; m++) {
    const float* xr = x + m * K;
    int8_t* qr = q + m * Kp;
    float* dr = d + m * ldd;
    int32_t* sr = s + m * lds;
    if (kind == QK_Q8_0 || kind == QK_Q4_0) {
      for (int64_t b = 0; b < K / 32; b++) {
        // As ggml's x86 CPU products, repacked or not, row by row or 4 rows at a time (quantize_row_q8_0 and the x86
        // ggml_quantize_mat_q8_0_4x8 both use id = 127/amax, not the generic 1/d): ties then round as llama.cpp's.
        const float amax = amax_of(xr + 32 * b, 32), dd = amax / 127.f;
        const float id = amax != 0.f ? 127.f / amax : 0.f;
        sr[b] = q_run(xr + 32 * b, 32, id, qr + 32 * b);
        dr[b] = f16_to_f32(f32_to_f16(dd));          // ggml's block_q8_0 stores the activation scale as f16
      }
    } else if (kind == QK_Q4_K) {
      for (int64_t sb = 0; sb < K / 256; sb++) {
        float dd = amax_of(xr + 256 * sb, 256) / 127.f, id = dd != 0.f ? 1.f / dd : 0.f;
        for (int j = 0; j < 8; j++) sr[sb * 8 + j] = q_run(xr + 256 * sb + 32 * j, 32, id, qr + 256 * sb + 32 * j);
        dr[sb] = dd;
      }
    } else {
      float dd = amax_of(xr, K) / 127.f, id = dd != 0.f ? 1.f / dd : 0.f;
      dr[0] = dd;
      for (int64_t b = 0; b < Kp / 32; b++) {
        int64_t n = std::min<int64_t>(32, K - 32 * b);
        sr[b] = q_run(xr + 32 * b, n, id, qr + 32 * b);
        for (int64_t i = n; i < 32; i++) qr[32 * b + i] = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scalar path: reads the packed layout directly.

void scalar_group(const QuantPacked* p, const QuantX* x, int64_t m0, int mt, int64_t g, float* out, int64_t ldo) {
  const uint8_t* meta = p->data + g * p->group_bytes;
  const uint8_t* qd = meta + p->meta_bytes;
  const int nrows = static_cast<int>(std::min<int64_t>(QUANT_QG, p->N - g * QUANT_QG));
  const int64_t nb = p->nb;
  for (int i = 0; i < mt; i++) {
    const int64_t m = m0 + i;
    const int8_t* xq = x->q + m * x->ldq;
    const float* xd = x->d + m * x->ldd;
    const int32_t* xs = x->s + m * x->lds;
    float* o = out + m * ldo + g * QUANT_QG;
    for (int r = 0; r < nrows; r++) {
      float acc = 0.f;
      switch (p->kind) {
        case QK_Q8_0: {
          const uint16_t* d = reinterpret_cast<const uint16_t*>(meta);
          for (int64_t b = 0; b < nb; b++) {
            int32_t isum = 0;
            for (int j = 0; j < 8; j++) {
              const int8_t* w = reinterpret_cast<const int8_t*>(qd + b * 512 + j * 64 + r * 4);
              for (int t = 0; t < 4; t++) isum += w[t] * xq[32 * b + 4 * j + t];
            }
            acc += f16_to_f32(d[b * 16 + r]) * xd[b] * static_cast<float>(isum);
          }
          break;
        }
        case QK_Q4_0: {
          const uint16_t* d = reinterpret_cast<const uint16_t*>(meta);
          for (int64_t b = 0; b < nb; b++) {
            int32_t isum = -8 * xs[b];
            for (int v = 0; v < 4; v++) {
              const uint8_t* w = qd + b * 256 + v * 64 + r * 4;
              for (int t = 0; t < 4; t++)
                isum += (w[t] & 15) * xq[32 * b + 4 * v + t] + (w[t] >> 4) * xq[32 * b + 16 + 4 * v + t];
            }
            acc += f16_to_f32(d[b * 16 + r]) * xd[b] * static_cast<float>(isum);
          }
          break;
        }
        case QK_Q4_K: {
          for (int64_t sb = 0; sb < p->K / 256; sb++) {
            const uint8_t* mt8 = meta + sb * QUANT_Q4K_META;
            const float dd = f16_to_f32(reinterpret_cast<const uint16_t*>(mt8)[r]);
            const float dmin = f16_to_f32(reinterpret_cast<const uint16_t*>(mt8 + 32)[r]);
            int32_t si = 0, smin = 0;
            for (int j = 0; j < 8; j++) {
              const int g4 = j >> 1, hi = j & 1;
              int32_t dot = 0;
              for (int v = 0; v < 8; v++) {
                const uint8_t* w = qd + sb * 2048 + (g4 * 8 + v) * 64 + r * 4;
                for (int t = 0; t < 4; t++) dot += (hi ? w[t] >> 4 : w[t] & 15) * xq[256 * sb + 32 * j + 4 * v + t];
              }
              si += mt8[64 + 16 * j + r] * dot;
              smin += mt8[192 + 16 * j + r] * xs[sb * 8 + j];
            }
            acc += xd[sb] * (dd * static_cast<float>(si) - dmin * static_cast<float>(smin));
          }
          break;
        }
        case QK_INT8: {
          int64_t isum = 0;
          for (int64_t b = 0; b < nb; b++)
            for (int j = 0; j < 8; j++) {
              const int8_t* w = reinterpret_cast<const int8_t*>(qd + b * 512 + j * 64 + r * 4);
              for (int t = 0; t < 4; t++) isum += w[t] * xq[32 * b + 4 * j + t];
            }
          acc = reinterpret_cast<const float*>(meta)[r] * xd[0] * static_cast<float>(isum);
          break;
        }
      }
      o[r] = acc;
    }
  }
}

quant_group_fn pick_kernel(int kind) {
#if !defined(FATHOM_NO_X86)
  static const bool no_vnni = [] {
    const char* s = std::getenv("FATHOM_QUANT_NOVNNI");  // development knob: test the AVX-512BW kernels
    return !cpu_features().avx512vnni || (s && *s && *s != '0');
  }();
  switch (current_isa()) {
    case ISA_AVX512:
      if (no_vnni) {
        switch (kind) {
          case QK_Q8_0: return quant_avx512bw_q8_0;
          case QK_Q4_0: return quant_avx512bw_q4_0;
          case QK_Q4_K: return quant_avx512bw_q4_K;
          default: return quant_avx512bw_int8;
        }
      }
      switch (kind) {
        case QK_Q8_0: return quant_avx512_q8_0;
        case QK_Q4_0: return quant_avx512_q4_0;
        case QK_Q4_K: return quant_avx512_q4_K;
        default: return quant_avx512_int8;
      }
    case ISA_AVX2:
      switch (kind) {
        case QK_Q8_0: return quant_avx2_q8_0;
        case QK_Q4_0: return quant_avx2_q4_0;
        case QK_Q4_K: return quant_avx2_q4_K;
        default: return quant_avx2_int8;
      }
    default: break;
  }
#endif
  (void)kind;
  return scalar_group;
}

// The tiled (M >= 2) kernel of the current path, its tile height T and the factor for the accumulator starts
// (QuantXT::c); fn = nullptr on the scalar path.
struct TilePath {
  quant_tile_fn fn = nullptr;
  int T = 1;
  int cmul = 0;
};

TilePath pick_tile(int kind) {
  TilePath t;
#if !defined(FATHOM_NO_X86)
  static const bool no_vnni = [] {
    const char* s = std::getenv("FATHOM_QUANT_NOVNNI");
    return !cpu_features().avx512vnni || (s && *s && *s != '0');
  }();
  switch (current_isa()) {
    case ISA_AVX512:
      t.T = QUANT_T_AVX512;
      switch (kind) {
        case QK_Q8_0: t.fn = no_vnni ? quant_avx512bw_q8_0_t : quant_avx512_q8_0_t; t.cmul = no_vnni ? 0 : -128; break;
        case QK_Q4_0: t.fn = no_vnni ? quant_avx512bw_q4_0_t : quant_avx512_q4_0_t; t.cmul = -8; break;
        case QK_Q4_K: t.fn = no_vnni ? quant_avx512bw_q4_K_t : quant_avx512_q4_K_t; t.cmul = 1; break;
        default: t.fn = no_vnni ? quant_avx512bw_int8_t : quant_avx512_int8_t; t.cmul = no_vnni ? 0 : -128; break;
      }
      break;
    case ISA_AVX2:
      t.T = QUANT_T_AVX2;
      switch (kind) {
        case QK_Q8_0: t.fn = quant_avx2_q8_0_t; t.cmul = 0; break;
        // q4_0 / q4_K keep the row-tile kernels (QuantX): the tiled int16-sum variants measured slower on Zen 4
        case QK_Q4_0: case QK_Q4_K: break;
        default: t.fn = quant_avx2_int8_t; t.cmul = 0; break;
      }
      break;
    default: break;
  }
#endif
  (void)kind;
  return t;
}

// Tiles [t0, t1) of the quantized activations x (rows [0, M)) into the QuantXT layout (see quant.h).
void tile_acts(int kind, int T, int cmul, int64_t M, const QuantX& x, int64_t nb, int64_t t0, int64_t t1, const QuantXT& xt) {
  int8_t* tq = const_cast<int8_t*>(xt.q);
  float* td = const_cast<float*>(xt.d);
  int32_t* tc = const_cast<int32_t*>(xt.c);
  const int64_t ndb = x.ldd;
  for (int64_t t = t0; t < t1; t++) {
    int8_t* q = tq + t * xt.sq;
    float* d = td + t * xt.sd;
    int32_t* c = tc + t * xt.sc;
    for (int i = 0; i < T; i++) {
      const int64_t m = t * T + i;
      const bool live = m < M;
      const int8_t* xq = x.q + m * x.ldq;
      const int32_t* xs = x.s + m * x.lds;
      for (int64_t b = 0; b < nb; b++) {
        if (live) std::memcpy(q + (b * T + i) * 32, xq + 32 * b, 32);
        else std::memset(q + (b * T + i) * 32, 0, 32);
      }
      for (int64_t b = 0; b < ndb; b++) d[b * T + i] = live ? x.d[m * x.ldd + b] : 0.f;
      if (kind == QK_INT8) {
        for (int64_t c0 = 0; c0 < nb; c0 += 256) {
          int32_t sum = 0;
          if (live)
            for (int64_t b = c0; b < std::min<int64_t>(nb, c0 + 256); b++) sum += xs[b];
          c[(c0 / 256) * T + i] = cmul * sum;
        }
      } else if (kind == QK_Q4_K) {
        // |sum| <= 32 * 127 fits int16
        for (int64_t k = 0; k < nb / 2; k++)
          c[k * T + i] = live ? static_cast<int32_t>((static_cast<uint32_t>(xs[2 * k]) & 0xffffu) |
                                                     (static_cast<uint32_t>(xs[2 * k + 1]) << 16))
                              : 0;
      } else {
        for (int64_t b = 0; b < nb; b++) c[b * T + i] = live ? cmul * xs[b] : 0;
      }
    }
  }
}

// Per-thread scratch, 64-byte aligned, grown on demand and kept.
struct Scratch {
  void* p = nullptr;
  size_t cap = 0;
  ~Scratch() { std::free(p); }
  void* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      size_t c = round_up(static_cast<int64_t>(std::max<size_t>(n, 4096)), 64);
      p = std::aligned_alloc(64, c);
      if (!p) throw std::bad_alloc();
      cap = c;
    }
    return p;
  }
};
thread_local Scratch t_xbuf;
thread_local Scratch t_tbuf;  // the tiled activations (M >= 2)

}  // namespace

QuantPacked* quant_pack(int kind, int64_t N, int64_t K, const uint8_t* data, const float* scales) {
  QuantPacked* p = new (std::nothrow) QuantPacked();
  if (!p) return nullptr;
  p->kind = kind;
  p->isa = current_isa();
  p->N = N;
  p->K = K;
  p->Kp = kind == QK_INT8 ? round_up(K, 32) : K;
  p->nb = p->Kp / 32;
  p->ngroups = ceil_div(N, QUANT_QG);
  int64_t meta = 0, quants = 0;
  switch (kind) {
    case QK_Q8_0: meta = p->nb * 32; quants = p->nb * 512; break;
    case QK_Q4_0: meta = p->nb * 32; quants = p->nb * 256; break;
    case QK_Q4_K: meta = (K / 256) * QUANT_Q4K_META; quants = (K / 256) * 2048; break;
    default: meta = 64; quants = p->nb * 512; break;
  }
  p->meta_bytes = round_up(std::max<int64_t>(meta, 1), 64);
  p->group_bytes = p->meta_bytes + round_up(quants, 64);
  p->bytes = static_cast<size_t>(std::max<int64_t>(p->ngroups * p->group_bytes, 64));
  p->data = static_cast<uint8_t*>(std::aligned_alloc(64, p->bytes));
  if (!p->data) {
    delete p;
    return nullptr;
  }
  // Zero each group (padding rows, padded k) and fill it, in parallel for large matrices.
  auto fill = [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; g++) {
      std::memset(p->data + g * p->group_bytes, 0, p->group_bytes);
      pack_group(p, g, data, scales);
    }
  };
  if (p->ngroups * p->group_bytes >= (int64_t(1) << 20) && num_threads() > 1) parallel_for(p->ngroups, 0, [&](int64_t b, int64_t e) { fill(b, e); });
  else fill(0, p->ngroups);
  return p;
}

void quant_packed_free(QuantPacked* p) {
  if (!p) return;
  std::free(p->data);
  delete p;
}

bool quant_packed_compatible(const QuantPacked* p) { return p != nullptr; }  // one layout for every path

void quant_matmul(int64_t M, const float* x, const QuantPacked* p, float* out) { quant_matmul_many(M, 1, &x, &p, &out); }

void quant_matmul_many(int64_t M, int n, const float* const* xs, const QuantPacked* const* ps, float* const* outs) {
  if (M <= 0 || n <= 0) return;
  const QuantPacked* p0 = ps[0];
  const int kind = p0->kind;
  const int64_t K = p0->K, Kp = p0->Kp, nb = p0->nb;
  if (K == 0) {
    for (int i = 0; i < n; i++) std::memset(outs[i], 0, sizeof(float) * M * ps[i]->N);
    return;
  }
  // Distinct inputs (by address), each quantized once; work items are each weight's groups in turn.
  std::vector<int> xi(n);
  std::vector<const float*> xu;
  for (int i = 0; i < n; i++) {
    int j = 0;
    while (j < static_cast<int>(xu.size()) && xu[j] != xs[i]) j++;
    if (j == static_cast<int>(xu.size())) xu.push_back(xs[i]);
    xi[i] = j;
  }
  const int64_t nx = static_cast<int64_t>(xu.size());
  std::vector<int64_t> gstart(n + 1, 0);
  size_t wbytes = 0;
  double work = 0;
  for (int i = 0; i < n; i++) {
    gstart[i + 1] = gstart[i] + ps[i]->ngroups;
    wbytes += ps[i]->bytes;
    work += static_cast<double>(M) * ps[i]->N * K;
  }
  const int64_t ng = gstart[n];
  auto which = [&](int64_t g) {
    int i = 0;
    while (g >= gstart[i + 1]) i++;
    return i;
  };
  const int64_t ldd = kind == QK_Q4_K ? K / 256 : kind == QK_INT8 ? 1 : nb;
  const size_t qbytes = round_up(M * Kp, 64), dbytes = round_up(M * ldd * 4, 64), sbytes = round_up(M * nb * 4, 64);
  const size_t per_x = qbytes + dbytes + sbytes;
  uint8_t* buf = static_cast<uint8_t*>(t_xbuf.get(per_x * nx));
  std::vector<QuantX> qx(nx);
  for (int64_t u = 0; u < nx; u++) {
    uint8_t* b = buf + u * per_x;
    qx[u] = {reinterpret_cast<int8_t*>(b), reinterpret_cast<float*>(b + qbytes), reinterpret_cast<int32_t*>(b + qbytes + dbytes), Kp, ldd, nb};
  }
  auto quantize = [&](int64_t u, int64_t m0, int64_t m1) {
    quantize_rows(kind, m0, m1, xu[u], K, Kp, const_cast<int8_t*>(qx[u].q), const_cast<float*>(qx[u].d), ldd,
                  const_cast<int32_t*>(qx[u].s), nb);
  };
  // A matvec is worth splitting sooner: its weights come from DRAM, at about one core's read rate per thread
  // (q4_0 256 x 2048, 295 KB, weights from DRAM: ~20.5 -> ~16 us with 2 threads).
  const bool par = num_threads() > 1 && (work >= 2e6 || (M == 1 && wbytes >= (size_t(1) << 17)));
  if (par && nx * M * K >= 65536)
    parallel_for(nx * M, 0, [&](int64_t b, int64_t e) { for (int64_t t = b; t < e; t++) quantize(t / M, t % M, t % M + 1); });
  else
    for (int64_t u = 0; u < nx; u++) quantize(u, 0, M);
  const TilePath tp = M >= 2 ? pick_tile(kind) : TilePath();
  if (tp.fn) {
    // M >= 2: the activations in tiles of T rows; a task is (group, chunk of tiles): each call streams the group's
    // weights once for T rows, and the group stays in L1/L2 across the chunk's tiles. Small M splits over groups.
    const int64_t T = tp.T, ntiles = ceil_div(M, T);
    const int64_t sq = nb * T * 32, sd = ldd * T, sc = nb * T;
    const size_t tqb = round_up(ntiles * sq, 64), tdb = round_up(ntiles * sd * 4, 64), tcb = round_up(ntiles * sc * 4, 64);
    const size_t per_t = tqb + tdb + tcb;
    uint8_t* tb = static_cast<uint8_t*>(t_tbuf.get(per_t * nx));
    std::vector<QuantXT> xt(nx);
    for (int64_t u = 0; u < nx; u++) {
      uint8_t* b = tb + u * per_t;
      xt[u] = {reinterpret_cast<int8_t*>(b), reinterpret_cast<float*>(b + tqb), reinterpret_cast<int32_t*>(b + tqb + tdb), sq, sd, sc};
    }
    if (par && nx * M * K >= 65536)
      parallel_for(nx * ntiles, 0, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; t++) tile_acts(kind, tp.T, tp.cmul, M, qx[t / ntiles], nb, t % ntiles, t % ntiles + 1, xt[t / ntiles]);
      });
    else
      for (int64_t u = 0; u < nx; u++) tile_acts(kind, tp.T, tp.cmul, M, qx[u], nb, 0, ntiles, xt[u]);
    const int64_t TCH = std::max<int64_t>(1, 64 / T);
    const int64_t ntc = ceil_div(ntiles, TCH), ntasks = ng * ntc;
    auto run = [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; t++) {
        const int64_t gg = t / ntc, tc = t % ntc;
        const int i = which(gg);
        const int64_t g = gg - gstart[i], N = ps[i]->N;
        const int64_t tend = std::min(ntiles, (tc + 1) * TCH);
        for (int64_t ti = tc * TCH; ti < tend; ti++)
          tp.fn(ps[i], &xt[xi[i]], ti, static_cast<int>(std::min(T, M - ti * T)), g, outs[i] + ti * T * N, N);
      }
    };
    if (!par || ntasks <= 1) run(0, ntasks);
    else parallel_for(ntasks, std::max<int64_t>(1, ntasks / (static_cast<int64_t>(num_threads()) * 8)),
                      [&](int64_t b, int64_t e) { run(b, e); });
    return;
  }
  const quant_group_fn fn = pick_kernel(kind);

  // Tasks: (group, chunk of up to MCH rows of x); a task runs tiles of 8 rows against one group of weights, which
  // stays in L1/L2 between tiles. Consecutive tasks share the group.
  const int64_t MCH = 64, TILE = 8;
  const int64_t nmc = ceil_div(M, MCH), ntasks = ng * nmc;
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      const int64_t gg = t / nmc, mc = t % nmc;
      const int i = which(gg);
      const int64_t g = gg - gstart[i];
      const int64_t mend = std::min(M, (mc + 1) * MCH);
      for (int64_t m0 = mc * MCH; m0 < mend; m0 += TILE)
        fn(ps[i], &qx[xi[i]], m0, static_cast<int>(std::min(TILE, mend - m0)), g, outs[i], ps[i]->N);
    }
  };
  if (!par || ntasks <= 1) {
    run(0, ntasks);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, ntasks / (static_cast<int64_t>(num_threads()) * 8));
  parallel_for(ntasks, grain, [&](int64_t b, int64_t e) { run(b, e); });
}

}  // namespace fathom
