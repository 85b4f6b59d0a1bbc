// Tiled scaled-dot-product attention: the driver (tiling, packing, masks, threading) and the portable scalar
// micro-kernels. See attention.h for the contract and the design.
#include "kernels/attention.h"
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include "cpu.h"
#include "pool.h"

namespace fathom {
namespace {

constexpr int BK = ATTN_BK;
constexpr int BQ = 64;  // query rows per tile
const float NEG_INF = -std::numeric_limits<float>::infinity();

inline int64_t pad16(int64_t x) { return (x + ATTN_PAD - 1) / ATTN_PAD * ATTN_PAD; }

// ---- scalar micro-kernels ---------------------------------------------------------------------------------

void scores_scalar(const float* A, int64_t lda, int nrows, int K, const float* Bt, float* C, float scale) {
  for (int r = 0; r < nrows; r++) {
    float acc[BK];
    for (int c = 0; c < BK; c++) acc[c] = 0.f;
    const float* a = A + r * lda;
    for (int d = 0; d < K; d++) {
      const float x = a[d];
      const float* b = Bt + static_cast<int64_t>(d) * BK;
      for (int c = 0; c < BK; c++) acc[c] += x * b[c];
    }
    for (int c = 0; c < BK; c++) C[r * BK + c] = acc[c] * scale;
  }
}

void gemm_acc_scalar(const float* A, int64_t asr, int64_t ast, int nrows, int n, const float* X, int64_t xp,
                     float* C, const float* alpha) {
  for (int r = 0; r < nrows; r++) {
    float* c = C + r * xp;
    if (alpha) {
      const float al = alpha[r];
      for (int64_t x = 0; x < xp; x++) c[x] *= al;
    }
    for (int t = 0; t < n; t++) {
      const float w = A[r * asr + t * ast];
      const float* xr = X + t * xp;
      for (int64_t x = 0; x < xp; x++) c[x] += w * xr[x];
    }
  }
}

void softmax_scalar(float* S, int nrows, float* m, float* l, float* alpha) {
  for (int r = 0; r < nrows; r++) {
    float* s = S + r * BK;
    float mx = NEG_INF;
    for (int c = 0; c < BK; c++) mx = s[c] > mx ? s[c] : mx;
    const float mo = m[r];
    const float mn = mo > mx ? mo : mx;
    if (mn == NEG_INF) {
      for (int c = 0; c < BK; c++) s[c] = 0.f;
      alpha[r] = 1.f;
      continue;
    }
    const float al = std::exp(mo - mn);
    float sum = 0.f;
    for (int c = 0; c < BK; c++) {
      const float p = std::exp(s[c] - mn);
      s[c] = p;
      sum += p;
    }
    l[r] = l[r] * al + sum;
    m[r] = mn;
    alpha[r] = al;
  }
}

void exp_rows_scalar(float* S, int nrows, const float* lse) {
  for (int r = 0; r < nrows; r++) {
    float* s = S + r * BK;
    const float L = lse[r];
    if (L == NEG_INF) {
      for (int c = 0; c < BK; c++) s[c] = 0.f;
      continue;
    }
    for (int c = 0; c < BK; c++) s[c] = std::exp(s[c] - L);
  }
}

void ds_rows_scalar(const float* P, float* dP, int nrows, const float* Di) {
  for (int r = 0; r < nrows; r++)
    for (int c = 0; c < BK; c++) dP[r * BK + c] = P[r * BK + c] * (dP[r * BK + c] - Di[r]);
}

const AttnKernels attn_kernels_scalar = {scores_scalar, gemm_acc_scalar, softmax_scalar, exp_rows_scalar,
                                         ds_rows_scalar};

const AttnKernels& kernels() {
#if !defined(FATHOM_NO_X86)
  switch (current_isa()) {
    case ISA_AVX512: return attn_kernels_avx512;
    case ISA_AVX2: return attn_kernels_avx2;
    default: break;
  }
#endif
  return attn_kernels_scalar;
}

// ---- scratch -----------------------------------------------------------------------------------------------

// One 64-byte aligned allocation carved into float arrays; null on failure (tasks must not throw).
struct Scratch {
  float* base = nullptr;
  size_t used = 0, cap = 0;
  explicit Scratch(size_t floats) {
    cap = (floats + 16 * 16 + 15) / 16 * 16;  // room for per-array rounding
    void* p = nullptr;
    if (posix_memalign(&p, 64, cap * sizeof(float)) == 0) base = static_cast<float*>(p);
  }
  ~Scratch() { std::free(base); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* take(size_t n) {
    float* p = base + used;
    used += (n + 15) / 16 * 16;
    return p;
  }
};

// ---- packing -----------------------------------------------------------------------------------------------

// Kt[d*64 + j] = src[j*D + d] for j < nk; columns nk..63 zero.
void pack_t(const float* src, int64_t D, int nk, float* Kt) {
  for (int64_t d = 0; d < D; d++) {
    float* dst = Kt + d * BK;
    for (int j = 0; j < nk; j++) dst[j] = src[j * D + d];
    for (int j = nk; j < BK; j++) dst[j] = 0.f;
  }
}

// dst[j*xp + d] = src[j*D + d] for j < n, d < D; columns D..xp-1 zero.
void pack_rows(const float* src, int64_t D, int n, int64_t xp, float* dst) {
  for (int j = 0; j < n; j++) {
    std::memcpy(dst + j * xp, src + j * D, static_cast<size_t>(D) * sizeof(float));
    for (int64_t d = D; d < xp; d++) dst[j * xp + d] = 0.f;
  }
}

// Applies causal limits, the mask and the key-block tail to a score tile of nq rows (query rows i0..),
// key columns kb0..kb0+nk-1; columns >= nk become -inf.
void mask_tile(const AttnArgs& a, float* S, int nq, int64_t b, int64_t h, int64_t i0, int64_t kb0, int nk) {
  for (int r = 0; r < nq; r++) {
    float* s = S + r * BK;
    const int64_t i = i0 + r;
    int jlim = nk;
    if (a.causal) {
      int64_t lim = i + a.q_offset - kb0 + 1;  // allowed columns j < lim
      if (lim < jlim) jlim = lim < 0 ? 0 : static_cast<int>(lim);
    }
    if (a.mask_add || a.mask_bool) {
      const int64_t base = b * a.ms[0] + h * a.ms[1] + i * a.ms[2] + kb0 * a.ms[3];
      const int64_t ms3 = a.ms[3];
      if (a.mask_add) {
        const float* mk = a.mask_add + base;
        for (int j = 0; j < jlim; j++) s[j] += mk[j * ms3];
      } else {
        const uint8_t* mk = a.mask_bool + base;
        for (int j = 0; j < jlim; j++)
          if (!mk[j * ms3]) s[j] = NEG_INF;
      }
    }
    for (int j = jlim; j < BK; j++) s[j] = NEG_INF;
  }
}

// Number of keys (from 0) any of query rows i0..i0+nq-1 may see.
int64_t key_end(const AttnArgs& a, int64_t i0, int64_t nq) {
  if (!a.causal) return a.Tk;
  int64_t e = i0 + nq - 1 + a.q_offset + 1;
  return e < a.Tk ? e : a.Tk;
}

}  // namespace

// ---- forward -------------------------------------------------------------------------------------------------

static bool attention_forward_impl(const AttnArgs& a) {
  const AttnKernels& K = kernels();
  const int64_t D = a.D, Dv = a.Dv, dvp = pad16(Dv);
  const int64_t group = a.Hq / a.Hkv;
  const int64_t nqb = (a.Tq + BQ - 1) / BQ;
  const int64_t ntasks = a.B * a.Hq * nqb;
  std::atomic<bool> failed{false};
  parallel_for(ntasks, 1, [&](int64_t t0, int64_t t1) {
    Scratch sc(BK * D + BK * dvp + BQ * BK + BQ * dvp + 3 * BQ);
    if (!sc.base) { failed = true; return; }
    float* Kt = sc.take(BK * D);
    float* Vp = sc.take(BK * dvp);
    float* S = sc.take(BQ * BK);
    float* O = sc.take(BQ * dvp);
    float* m = sc.take(BQ);
    float* l = sc.take(BQ);
    float* alpha = sc.take(BQ);
    for (int64_t t = t0; t < t1; t++) {
      const int64_t qb = t % nqb, bh = t / nqb, h = bh % a.Hq, b = bh / a.Hq;
      const int64_t i0 = qb * BQ;
      const int nq = static_cast<int>(a.Tq - i0 < BQ ? a.Tq - i0 : BQ);
      const int64_t kvh = b * a.Hkv + h / group;
      const float* qp = a.q + (bh * a.Tq + i0) * D;
      const float* kp = a.k + kvh * a.Tk * D;
      const float* vp = a.v + kvh * a.Tk * Dv;
      for (int r = 0; r < nq; r++) { m[r] = NEG_INF; l[r] = 0.f; }
      std::memset(O, 0, sizeof(float) * nq * dvp);
      const int64_t kend = key_end(a, i0, nq);
      for (int64_t kb0 = 0; kb0 < kend; kb0 += BK) {
        const int nk = static_cast<int>(kend - kb0 < BK ? kend - kb0 : BK);
        pack_t(kp + kb0 * D, D, nk, Kt);
        pack_rows(vp + kb0 * Dv, Dv, nk, dvp, Vp);
        K.scores(qp, D, nq, static_cast<int>(D), Kt, S, a.scale);
        mask_tile(a, S, nq, b, h, i0, kb0, nk);
        K.softmax(S, nq, m, l, alpha);
        K.gemm_acc(S, BK, 1, nq, nk, Vp, dvp, O, alpha);
      }
      float* op = a.out + (bh * a.Tq + i0) * Dv;
      for (int r = 0; r < nq; r++) {
        const bool empty = !(l[r] > 0.f);
        const float inv = empty ? 0.f : 1.f / l[r];
        for (int64_t x = 0; x < Dv; x++) op[r * Dv + x] = O[r * dvp + x] * inv;
        if (a.lse) a.lse[bh * a.Tq + i0 + r] = empty ? NEG_INF : m[r] + std::log(l[r]);
      }
    }
  });
  return !failed;
}

// ---- backward ------------------------------------------------------------------------------------------------

static bool attention_backward_impl(const AttnArgs& a) {
  const AttnKernels& K = kernels();
  const int64_t D = a.D, Dv = a.Dv, dp = pad16(D), dvp = pad16(Dv);
  const int64_t group = a.Hq / a.Hkv;
  const int64_t rows = a.B * a.Hq * a.Tq;
  std::atomic<bool> failed{false};

  // Di = rowsum(dout * out), one per query row.
  float* Di = nullptr;
  if (rows > 0) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, static_cast<size_t>(rows) * sizeof(float)) != 0) return false;
    Di = static_cast<float*>(p);
    parallel_for(rows, 256, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; r++) {
        const float* o = a.out_in + r * Dv;
        const float* g = a.dout + r * Dv;
        double s = 0;
        for (int64_t x = 0; x < Dv; x++) s += static_cast<double>(o[x]) * g[x];
        Di[r] = static_cast<float>(s);
      }
    });
  }

  // Pass 1: dk, dv. One task per (b, kv head, key block) owns those rows; it walks every query head of the
  // group and every query block in a fixed order (deterministic, no races).
  const int64_t nkb = (a.Tk + BK - 1) / BK;
  parallel_for(a.B * a.Hkv * nkb, 1, [&](int64_t t0, int64_t t1) {
    Scratch sc(BK * D + BK * Dv + 2 * BQ * BK + BQ * dp + BQ * dvp + BK * dp + BK * dvp);
    if (!sc.base) { failed = true; return; }
    float* Kt = sc.take(BK * D);
    float* Vt = sc.take(BK * Dv);
    float* S = sc.take(BQ * BK);
    float* dP = sc.take(BQ * BK);
    float* Qp = sc.take(BQ * dp);
    float* dOp = sc.take(BQ * dvp);
    float* dK = sc.take(BK * dp);
    float* dV = sc.take(BK * dvp);
    for (int64_t t = t0; t < t1; t++) {
      const int64_t kb = t % nkb, bkv = t / nkb, kvh = bkv % a.Hkv, b = bkv / a.Hkv;
      const int64_t kb0 = kb * BK;
      const int nk = static_cast<int>(a.Tk - kb0 < BK ? a.Tk - kb0 : BK);
      pack_t(a.k + (bkv * a.Tk + kb0) * D, D, nk, Kt);
      pack_t(a.v + (bkv * a.Tk + kb0) * Dv, Dv, nk, Vt);
      std::memset(dK, 0, sizeof(float) * BK * dp);
      std::memset(dV, 0, sizeof(float) * BK * dvp);
      int64_t istart = 0;
      if (a.causal && kb0 - a.q_offset > 0) istart = kb0 - a.q_offset;
      for (int64_t g = 0; g < group; g++) {
        const int64_t h = kvh * group + g, bh = b * a.Hq + h;
        for (int64_t i0 = istart; i0 < a.Tq; i0 += BQ) {
          const int nq = static_cast<int>(a.Tq - i0 < BQ ? a.Tq - i0 : BQ);
          const float* qp = a.q + (bh * a.Tq + i0) * D;
          const float* gp = a.dout + (bh * a.Tq + i0) * Dv;
          K.scores(qp, D, nq, static_cast<int>(D), Kt, S, a.scale);
          mask_tile(a, S, nq, b, h, i0, kb0, nk);
          K.exp_rows(S, nq, a.lse_in + bh * a.Tq + i0);
          K.scores(gp, Dv, nq, static_cast<int>(Dv), Vt, dP, 1.f);
          K.ds_rows(S, dP, nq, Di + bh * a.Tq + i0);
          pack_rows(gp, Dv, nq, dvp, dOp);
          pack_rows(qp, D, nq, dp, Qp);
          K.gemm_acc(S, 1, BK, nk, nq, dOp, dvp, dV, nullptr);   // dV[j] += sum_i P[i][j] dO[i]
          K.gemm_acc(dP, 1, BK, nk, nq, Qp, dp, dK, nullptr);    // dK[j] += sum_i dS[i][j] Q[i]
        }
      }
      float* dkp = a.dk + (bkv * a.Tk + kb0) * D;
      float* dvp_out = a.dv + (bkv * a.Tk + kb0) * Dv;
      for (int j = 0; j < nk; j++) {
        for (int64_t x = 0; x < D; x++) dkp[j * D + x] = dK[j * dp + x] * a.scale;
        for (int64_t x = 0; x < Dv; x++) dvp_out[j * Dv + x] = dV[j * dvp + x];
      }
    }
  });

  // Pass 2: dq. One task per (b, query head, query block), walking key blocks in order.
  const int64_t nqb = (a.Tq + BQ - 1) / BQ;
  parallel_for(a.B * a.Hq * nqb, 1, [&](int64_t t0, int64_t t1) {
    Scratch sc(BK * D + BK * Dv + BK * dp + 2 * BQ * BK + BQ * dp);
    if (!sc.base) { failed = true; return; }
    float* Kt = sc.take(BK * D);
    float* Vt = sc.take(BK * Dv);
    float* Kp = sc.take(BK * dp);
    float* S = sc.take(BQ * BK);
    float* dP = sc.take(BQ * BK);
    float* dQ = sc.take(BQ * dp);
    for (int64_t t = t0; t < t1; t++) {
      const int64_t qb = t % nqb, bh = t / nqb, h = bh % a.Hq, b = bh / a.Hq;
      const int64_t i0 = qb * BQ;
      const int nq = static_cast<int>(a.Tq - i0 < BQ ? a.Tq - i0 : BQ);
      const int64_t kvh = b * a.Hkv + h / group;
      const float* qp = a.q + (bh * a.Tq + i0) * D;
      const float* gp = a.dout + (bh * a.Tq + i0) * Dv;
      std::memset(dQ, 0, sizeof(float) * nq * dp);
      const int64_t kend = key_end(a, i0, nq);
      for (int64_t kb0 = 0; kb0 < kend; kb0 += BK) {
        const int nk = static_cast<int>(kend - kb0 < BK ? kend - kb0 : BK);
        const float* kp = a.k + (kvh * a.Tk + kb0) * D;
        pack_t(kp, D, nk, Kt);
        pack_t(a.v + (kvh * a.Tk + kb0) * Dv, Dv, nk, Vt);
        pack_rows(kp, D, nk, dp, Kp);
        K.scores(qp, D, nq, static_cast<int>(D), Kt, S, a.scale);
        mask_tile(a, S, nq, b, h, i0, kb0, nk);
        K.exp_rows(S, nq, a.lse_in + bh * a.Tq + i0);
        K.scores(gp, Dv, nq, static_cast<int>(Dv), Vt, dP, 1.f);
        K.ds_rows(S, dP, nq, Di + bh * a.Tq + i0);
        K.gemm_acc(dP, BK, 1, nq, nk, Kp, dp, dQ, nullptr);       // dQ[i] += sum_j dS[i][j] K[j]
      }
      float* dqp = a.dq + (bh * a.Tq + i0) * D;
      for (int r = 0; r < nq; r++)
        for (int64_t x = 0; x < D; x++) dqp[r * D + x] = dQ[r * dp + x] * a.scale;
    }
  });
  std::free(Di);
  return !failed;
}

void attention_f32(const AttnArgs& a) {
  if (!attention_forward_impl(a)) throw std::bad_alloc();
}
void attention_backward_f32(const AttnArgs& a) {
  if (!attention_backward_impl(a)) throw std::bad_alloc();
}

}  // namespace fathom
