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

void pack_t_scalar(const float* src, int64_t ld, int nk, int64_t D, float* Kt) {
  for (int64_t d = 0; d < D; d++) {
    float* dst = Kt + d * BK;
    for (int j = 0; j < nk; j++) dst[j] = src[j * ld + d];
    for (int j = nk; j < BK; j++) dst[j] = 0.f;
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

const AttnKernels attn_kernels_scalar = {scores_scalar, pack_t_scalar, gemm_acc_scalar, softmax_scalar, exp_rows_scalar,
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

// One 64-byte aligned block per thread, kept between calls (a decode step calls attention once per layer; fresh
// allocations of a few hundred KB would be mmapped and page-faulted every time), carved into float arrays.
struct ScratchStore {
  float* base = nullptr;
  size_t cap = 0;
  ~ScratchStore() { std::free(base); }
};
thread_local ScratchStore t_scratch;
thread_local ScratchStore t_partials;   // the calling thread's key-split partials (forward)

// `floats` floats from `st`, grown when too small; null on failure.
float* reserve(ScratchStore& st, size_t floats) {
  if (st.cap < floats) {
    std::free(st.base);
    st.base = nullptr;
    st.cap = 0;
    void* p = nullptr;
    if (posix_memalign(&p, 64, floats * sizeof(float)) != 0) return nullptr;
    st.base = static_cast<float*>(p);
    st.cap = floats;
  }
  return st.base;
}

// Null base on allocation failure (tasks must not throw). One Scratch per thread at a time.
struct Scratch {
  float* base = nullptr;
  size_t used = 0;
  explicit Scratch(size_t floats) {
    base = reserve(t_scratch, (floats + 16 * 16 + 15) / 16 * 16);  // room for per-array rounding
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* take(size_t n) {
    float* p = base + used;
    used += (n + 15) / 16 * 16;
    return p;
  }
};

// ---- packing -----------------------------------------------------------------------------------------------

// dst[j*xp + d] = src[j*ld + d] for j < n, d < D; columns D..xp-1 zero.
void pack_rows(const float* src, int64_t ld, int64_t D, int n, int64_t xp, float* dst) {
  for (int j = 0; j < n; j++) {
    std::memcpy(dst + j * xp, src + j * ld, static_cast<size_t>(D) * sizeof(float));
    for (int64_t d = D; d < xp; d++) dst[j * xp + d] = 0.f;
  }
}

// ---- forward ----------------------------------------------------------------------------------------------

// Query rows of one kv head are processed together: for GQA the `group` query heads sharing a kv head are
// interleaved (row r of the head's block -> query i = r / group, head g = r % group), so one packed K/V tile
// serves every head of the group and causal skipping still sees a narrow range of i.
struct RowBlock {
  int n;                    // rows in the block
  int64_t idx[BQ];          // global row: (b*Hq + h)*Tq + i
  int64_t i[BQ];            // query position
  int64_t h[BQ];            // query head
  bool contiguous;          // idx[r] = idx[0] + r
};

void make_rows(const AttnArgs& a, int64_t b, int64_t kvh, int64_t group, int64_t r0, int n, RowBlock& rb) {
  rb.n = n;
  for (int r = 0; r < n; r++) {
    const int64_t rr = r0 + r, i = rr / group, h = kvh * group + rr % group;
    rb.i[r] = i;
    rb.h[r] = h;
    rb.idx[r] = (b * a.Hq + h) * a.Tq + i;
  }
  rb.contiguous = group == 1;
}

// Rows of src (row length len) for the block: a direct pointer when contiguous, else packed into buf.
const float* gather_rows(const RowBlock& rb, const float* src, int64_t len, float* buf) {
  if (rb.contiguous) return src + rb.idx[0] * len;
  for (int r = 0; r < rb.n; r++) std::memcpy(buf + r * len, src + rb.idx[r] * len, static_cast<size_t>(len) * sizeof(float));
  return buf;
}

// Applies causal limits, the mask and the key-block tail to a score tile (rows of rb), key columns
// kb0..kb0+nk-1; columns >= nk become -inf.
void mask_tile(const AttnArgs& a, float* S, const RowBlock& rb, int64_t b, int64_t kb0, int nk) {
  for (int r = 0; r < rb.n; r++) {
    float* s = S + r * BK;
    const int64_t i = rb.i[r];
    int jlim = nk;
    if (a.causal) {
      int64_t lim = i + a.q_offset - kb0 + 1;  // allowed columns j < lim
      if (lim < jlim) jlim = lim < 0 ? 0 : static_cast<int>(lim);
    }
    if (a.mask_add || a.mask_bool) {
      const int64_t base = b * a.ms[0] + rb.h[r] * a.ms[1] + i * a.ms[2] + kb0 * a.ms[3];
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

// Number of keys (from 0) any row of the block may see (rows are ordered by i).
int64_t key_end(const AttnArgs& a, const RowBlock& rb) {
  if (!a.causal) return a.Tk;
  int64_t e = rb.i[rb.n - 1] + a.q_offset + 1;
  return e < a.Tk ? e : a.Tk;
}

// S = scale * A . K_tile^T for rows of A (lda = K), keys kp[j*ldk .. +K) for j < nk; Kt is scratch [K][64]. Always
// through a transposed tile, so every score is one FMA chain over d in order whatever the number of rows (a dot-product
// kernel for few rows would sum in another order: decode and prefill would differ in the last bits).
void tile_scores(const AttnKernels& KN, const float* A, int nrows, int64_t K, const float* kp, int64_t ldk, int nk,
                 float* Kt, float* S, float scale) {
  KN.pack_t(kp, ldk, nk, K, Kt);
  KN.scores(A, K, nrows, static_cast<int>(K), Kt, S, scale);
}

// Merges a key chunk's online-softmax state (Oc, mc, lc) into a running one (O, m, l), row by row: M = max(m, mc),
// l = l e^(m - M) + lc e^(mc - M), O likewise. A chunk a row saw nothing of (mc = -inf) changes nothing; into an empty
// running state the chunk is copied. The one merge used by both the in-task and the split paths (same arithmetic).
void merge_chunk(int nq, int64_t Dv, int64_t dvp, float* O, float* m, float* l, const float* Oc, const float* mc,
                 const float* lc) {
  for (int r = 0; r < nq; r++) {
    const float mcr = mc[r];
    if (mcr == NEG_INF) continue;
    float* o = O + r * dvp;
    const float* oc = Oc + r * dvp;
    if (m[r] == NEG_INF) {
      m[r] = mcr;
      l[r] = lc[r];
      std::memcpy(o, oc, sizeof(float) * Dv);
      continue;
    }
    const float M = m[r] > mcr ? m[r] : mcr;
    const float wa = std::exp(m[r] - M), wb = std::exp(mcr - M);
    m[r] = M;
    l[r] = l[r] * wa + lc[r] * wb;
    for (int64_t x = 0; x < Dv; x++) o[x] = o[x] * wa + oc[x] * wb;
  }
}

// Writes the normalized output rows (and lse) of a row block from its online-softmax state.
void finish_rows(const AttnArgs& a, const RowBlock& rb, const float* O, int64_t dvp, const float* m, const float* l) {
  for (int r = 0; r < rb.n; r++) {
    const bool empty = !(l[r] > 0.f);
    const float inv = empty ? 0.f : 1.f / l[r];
    float* op = a.out + rb.idx[r] * a.Dv;
    for (int64_t x = 0; x < a.Dv; x++) op[x] = O[r * dvp + x] * inv;
    if (a.lse) a.lse[rb.idx[r]] = empty ? NEG_INF : m[r] + std::log(l[r]);
  }
}

}  // namespace

static bool attention_forward_impl(const AttnArgs& a) {
  const AttnKernels& K = kernels();
  const int64_t D = a.D, Dv = a.Dv, dvp = pad16(Dv);
  const bool vdirect = Dv == dvp && a.vs[2] == Dv;
  const int64_t group = a.Hq / a.Hkv;
  const int64_t R = group * a.Tq;  // rows per kv head
  const int64_t nrb = (R + BQ - 1) / BQ;
  const int64_t nblk = a.B * a.Hkv * nrb;
  // Keys fall into chunks of CHUNK_BLOCKS key blocks at fixed absolute positions. Each chunk gets its own
  // online-softmax state and the chunks merge in order (merge_chunk), whether one task walks them all or, when the row
  // blocks cannot keep the threads busy (decode), tasks take (row block, chunk) pairs and the merge runs afterwards:
  // a row's output depends only on its query, the keys it may see and their values -- not on how many rows or threads
  // there are (decode equals prefill bit for bit).
  const int64_t nkb_all = (a.Tk + BK - 1) / BK;
  const int64_t nch = (nkb_all + ATTN_CHUNK_BLOCKS - 1) / ATTN_CHUNK_BLOCKS;
  const int64_t threads = num_threads();
  const bool split = threads > 1 && nblk < 2 * threads && nch > 1;
  const int64_t part_stride = BQ * (dvp + 2);  // O [BQ][dvp], m [BQ], l [BQ]
  float* part = nullptr;
  if (split && !(part = reserve(t_partials, static_cast<size_t>(nblk * nch * part_stride)))) return false;
  std::atomic<bool> failed{false};
  parallel_for(split ? nblk * nch : nblk, 1, [&](int64_t t0, int64_t t1) {
    Scratch sc(BK * D + BQ * D + (vdirect ? 0 : BK * dvp) + BQ * BK + 2 * BQ * dvp + 5 * BQ + sizeof(RowBlock) / sizeof(float) + 1);
    if (!sc.base) { failed = true; return; }
    float* Kt = sc.take(BK * D);
    float* Qp = sc.take(BQ * D);
    float* Vp = vdirect ? nullptr : sc.take(BK * dvp);
    float* S = sc.take(BQ * BK);
    float* O = sc.take(BQ * dvp);
    float* m = sc.take(BQ);
    float* l = sc.take(BQ);
    float* Oc = sc.take(BQ * dvp);
    float* mc = sc.take(BQ);
    float* lc = sc.take(BQ);
    float* alpha = sc.take(BQ);
    RowBlock* rb = new (sc.take(sizeof(RowBlock) / sizeof(float) + 1)) RowBlock;
    for (int64_t t = t0; t < t1; t++) {
      const int64_t blk_id = split ? t / nch : t;
      const int64_t blk = blk_id % nrb, bkv = blk_id / nrb, kvh = bkv % a.Hkv, b = bkv / a.Hkv;
      const int64_t r0 = blk * BQ;
      const int nq = static_cast<int>(R - r0 < BQ ? R - r0 : BQ);
      make_rows(a, b, kvh, group, r0, nq, *rb);
      const float* qp = gather_rows(*rb, a.q, D, Qp);
      const float* kp = a.k + b * a.ks[0] + kvh * a.ks[1];
      const float* vp = a.v + b * a.vs[0] + kvh * a.vs[1];
      const int64_t kend = key_end(a, *rb);
      const int64_t nkb = (kend + BK - 1) / BK;
      const int64_t c_lo = split ? t % nch : 0;
      const int64_t c_hi = split ? c_lo + 1 : (nkb + ATTN_CHUNK_BLOCKS - 1) / ATTN_CHUNK_BLOCKS;
      if (c_hi == c_lo) {   // no key at all (Tk = 0): an empty state, so out = 0 and lse = -inf
        for (int r = 0; r < nq; r++) { m[r] = NEG_INF; l[r] = 0.f; }
        std::memset(O, 0, sizeof(float) * nq * dvp);
      }
      for (int64_t c = c_lo; c < c_hi; c++) {
        // the first chunk of a task runs in the running state itself (merging into an empty state is a copy)
        float *Ot = c == c_lo ? O : Oc, *mt = c == c_lo ? m : mc, *lt = c == c_lo ? l : lc;
        if (split) {
          Ot = part + t * part_stride;
          mt = Ot + BQ * dvp;
          lt = mt + BQ;
        }
        for (int r = 0; r < nq; r++) { mt[r] = NEG_INF; lt[r] = 0.f; }
        std::memset(Ot, 0, sizeof(float) * nq * dvp);
        const int64_t kb_hi = (c + 1) * ATTN_CHUNK_BLOCKS < nkb ? (c + 1) * ATTN_CHUNK_BLOCKS : nkb;
        for (int64_t kb = c * ATTN_CHUNK_BLOCKS; kb < kb_hi; kb++) {
          const int64_t kb0 = kb * BK;
          const int nk = static_cast<int>(kend - kb0 < BK ? kend - kb0 : BK);
          tile_scores(K, qp, nq, D, kp + kb0 * a.ks[2], a.ks[2], nk, Kt, S, a.scale);
          mask_tile(a, S, *rb, b, kb0, nk);
          K.softmax(S, nq, mt, lt, alpha);
          const float* X = vp + kb0 * a.vs[2];
          if (!vdirect) { pack_rows(X, a.vs[2], Dv, nk, dvp, Vp); X = Vp; }
          K.gemm_acc(S, BK, 1, nq, nk, X, dvp, Ot, alpha);
        }
        if (!split && c != c_lo) merge_chunk(nq, Dv, dvp, O, m, l, Oc, mc, lc);
      }
      if (!split) finish_rows(a, *rb, O, dvp, m, l);
    }
  });
  if (split && !failed) {
    // Each block's chunks merged in order, as the in-task path does.
    Scratch sc(BQ * dvp + 2 * BQ + sizeof(RowBlock) / sizeof(float) + 1);
    if (!sc.base) {
      failed = true;
    } else {
      float* O = sc.take(BQ * dvp);
      float* m = sc.take(BQ);
      float* l = sc.take(BQ);
      RowBlock* rb = new (sc.take(sizeof(RowBlock) / sizeof(float) + 1)) RowBlock;
      for (int64_t blk_id = 0; blk_id < nblk; blk_id++) {
        const int64_t blk = blk_id % nrb, bkv = blk_id / nrb, kvh = bkv % a.Hkv, b = bkv / a.Hkv;
        const int64_t r0 = blk * BQ;
        const int nq = static_cast<int>(R - r0 < BQ ? R - r0 : BQ);
        make_rows(a, b, kvh, group, r0, nq, *rb);
        for (int r = 0; r < nq; r++) { m[r] = NEG_INF; l[r] = 0.f; }
        std::memset(O, 0, sizeof(float) * nq * dvp);
        for (int64_t c = 0; c < nch; c++) {
          const float* ps = part + (blk_id * nch + c) * part_stride;
          merge_chunk(nq, Dv, dvp, O, m, l, ps, ps + BQ * dvp, ps + BQ * dvp + BQ);
        }
        finish_rows(a, *rb, O, dvp, m, l);
      }
    }
  }
  return !failed;
}

// ---- backward ------------------------------------------------------------------------------------------------

static bool attention_backward_impl(const AttnArgs& a) {
  const AttnKernels& K = kernels();
  const int64_t D = a.D, Dv = a.Dv, dp = pad16(D), dvp = pad16(Dv);
  const bool qdirect = D == dp, vdirect = Dv == dvp;
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

  // Pass 1: dk, dv (and dq when fused). A task owns (b, kv head, key block) -- or, fused, a whole (b, kv head)
  // with its key blocks in order -- and walks every query head of the group and every query block in a fixed
  // order: each output element has one writer and a fixed summation order (deterministic, no races).
  // Fused mode also accumulates dq (one writer: the task owns all query heads of its kv head) and skips the
  // recomputation of pass 2; it is used when there are enough (b, kv head) pairs to keep the threads busy.
  const int64_t nkb = (a.Tk + BK - 1) / BK;
  const bool fused = a.B * a.Hkv >= 2 * static_cast<int64_t>(num_threads());
  const bool dq_in_place = qdirect;  // accumulate straight into dq (row stride D == dp)
  parallel_for(fused ? a.B * a.Hkv : a.B * a.Hkv * nkb, 1, [&](int64_t t0, int64_t t1) {
    const int64_t dq_scratch = fused && !dq_in_place ? group * a.Tq * dp : 0;
    Scratch sc(BK * D + BK * Dv + 2 * BQ * BK + BQ * dp + BQ * dvp + BK * dp + BK * dvp + BK * dp + dq_scratch);
    RowBlock* rb = new (std::nothrow) RowBlock;
    if (!sc.base || !rb) { delete rb; failed = true; return; }
    float* Kt = sc.take(BK * D);
    float* Vt = sc.take(BK * Dv);
    float* S = sc.take(BQ * BK);
    float* dP = sc.take(BQ * BK);
    float* Qp = sc.take(BQ * dp);
    float* dOp = sc.take(BQ * dvp);
    float* dK = sc.take(BK * dp);
    float* dV = sc.take(BK * dvp);
    float* Kp = sc.take(BK * dp);
    float* dQs = dq_scratch ? sc.take(dq_scratch) : nullptr;
    for (int64_t t = t0; t < t1; t++) {
      const int64_t kb_begin = fused ? 0 : t % nkb, kb_end = fused ? nkb : kb_begin + 1;
      const int64_t bkv = fused ? t : t / nkb, kvh = bkv % a.Hkv, b = bkv / a.Hkv;
      // dq rows of the group's heads: [group][Tq][dp]
      float* dQ = nullptr;
      if (fused) {
        dQ = dq_in_place ? a.dq + (b * a.Hq + kvh * group) * a.Tq * D : dQs;
        std::memset(dQ, 0, sizeof(float) * group * a.Tq * dp);
      }
      for (int64_t kb = kb_begin; kb < kb_end; kb++) {
        const int64_t kb0 = kb * BK;
        const int nk = static_cast<int>(a.Tk - kb0 < BK ? a.Tk - kb0 : BK);
        const float* kp = a.k + (bkv * a.Tk + kb0) * D;
        K.pack_t(kp, D, nk, D, Kt);
        K.pack_t(a.v + (bkv * a.Tk + kb0) * Dv, Dv, nk, Dv, Vt);
        const float* Xk = kp;
        if (fused && !qdirect) { pack_rows(kp, D, D, nk, dp, Kp); Xk = Kp; }
        std::memset(dK, 0, sizeof(float) * BK * dp);
        std::memset(dV, 0, sizeof(float) * BK * dvp);
        int64_t istart = 0;
        if (a.causal && kb0 - a.q_offset > 0) istart = kb0 - a.q_offset;
        for (int64_t g = 0; g < group; g++) {
          const int64_t h = kvh * group + g, bh = b * a.Hq + h;
          for (int64_t i0 = istart; i0 < a.Tq; i0 += BQ) {
            const int nq = static_cast<int>(a.Tq - i0 < BQ ? a.Tq - i0 : BQ);
            rb->n = nq;
            rb->contiguous = true;
            for (int r = 0; r < nq; r++) { rb->i[r] = i0 + r; rb->h[r] = h; rb->idx[r] = bh * a.Tq + i0 + r; }
            const float* qp = a.q + (bh * a.Tq + i0) * D;
            const float* gp = a.dout + (bh * a.Tq + i0) * Dv;
            K.scores(qp, D, nq, static_cast<int>(D), Kt, S, a.scale);
            mask_tile(a, S, *rb, b, kb0, nk);
            K.exp_rows(S, nq, a.lse_in + bh * a.Tq + i0);
            K.scores(gp, Dv, nq, static_cast<int>(Dv), Vt, dP, 1.f);
            K.ds_rows(S, dP, nq, Di + bh * a.Tq + i0);
            const float* Xg = gp;
            if (!vdirect) { pack_rows(gp, Dv, Dv, nq, dvp, dOp); Xg = dOp; }
            const float* Xq = qp;
            if (!qdirect) { pack_rows(qp, D, D, nq, dp, Qp); Xq = Qp; }
            K.gemm_acc(S, 1, BK, nk, nq, Xg, dvp, dV, nullptr);   // dV[j] += sum_i P[i][j] dO[i]
            K.gemm_acc(dP, 1, BK, nk, nq, Xq, dp, dK, nullptr);   // dK[j] += sum_i dS[i][j] Q[i]
            if (dQ) K.gemm_acc(dP, BK, 1, nq, nk, Xk, dp, dQ + (g * a.Tq + i0) * dp, nullptr);  // dQ[i] += dS[i][j] K[j]
          }
        }
        float* dkp = a.dk + (bkv * a.Tk + kb0) * D;
        float* dvp_out = a.dv + (bkv * a.Tk + kb0) * Dv;
        for (int j = 0; j < nk; j++) {
          for (int64_t x = 0; x < D; x++) dkp[j * D + x] = dK[j * dp + x] * a.scale;
          for (int64_t x = 0; x < Dv; x++) dvp_out[j * Dv + x] = dV[j * dvp + x];
        }
      }
      if (fused) {
        float* dqp = a.dq + (b * a.Hq + kvh * group) * a.Tq * D;
        const int64_t n = group * a.Tq;
        for (int64_t r = 0; r < n; r++)
          for (int64_t x = 0; x < D; x++) dqp[r * D + x] = dQ[r * dp + x] * a.scale;
      }
    }
    delete rb;
  });
  if (fused) {
    std::free(Di);
    return !failed;
  }

  // Pass 2: dq. One task per (b, kv head, row block) (rows of the group's heads interleaved as in the
  // forward pass), walking key blocks in order.
  const int64_t R = group * a.Tq;
  const int64_t nrb = (R + BQ - 1) / BQ;
  parallel_for(a.B * a.Hkv * nrb, 1, [&](int64_t t0, int64_t t1) {
    Scratch sc(BK * D + BK * Dv + BK * dp + 2 * BQ * BK + BQ * dp + BQ * D + BQ * Dv + 2 * BQ);
    RowBlock* rb = new (std::nothrow) RowBlock;
    if (!sc.base || !rb) { delete rb; failed = true; return; }
    float* Kt = sc.take(BK * D);
    float* Vt = sc.take(BK * Dv);
    float* Kp = sc.take(BK * dp);
    float* S = sc.take(BQ * BK);
    float* dP = sc.take(BQ * BK);
    float* dQ = sc.take(BQ * dp);
    float* Qp = sc.take(BQ * D);
    float* Gp = sc.take(BQ * Dv);
    float* lse_r = sc.take(BQ);
    float* Di_r = sc.take(BQ);
    for (int64_t t = t0; t < t1; t++) {
      const int64_t blk = t % nrb, bkv = t / nrb, kvh = bkv % a.Hkv, b = bkv / a.Hkv;
      const int64_t r0 = blk * BQ;
      const int nq = static_cast<int>(R - r0 < BQ ? R - r0 : BQ);
      make_rows(a, b, kvh, group, r0, nq, *rb);
      const float* qp = gather_rows(*rb, a.q, D, Qp);
      const float* gp = gather_rows(*rb, a.dout, Dv, Gp);
      for (int r = 0; r < nq; r++) { lse_r[r] = a.lse_in[rb->idx[r]]; Di_r[r] = Di[rb->idx[r]]; }
      std::memset(dQ, 0, sizeof(float) * nq * dp);
      const int64_t kend = key_end(a, *rb);
      for (int64_t kb0 = 0; kb0 < kend; kb0 += BK) {
        const int nk = static_cast<int>(kend - kb0 < BK ? kend - kb0 : BK);
        const float* kp = a.k + (bkv * a.Tk + kb0) * D;
        tile_scores(K, qp, nq, D, kp, D, nk, Kt, S, a.scale);
        mask_tile(a, S, *rb, b, kb0, nk);
        K.exp_rows(S, nq, lse_r);
        tile_scores(K, gp, nq, Dv, a.v + (bkv * a.Tk + kb0) * Dv, Dv, nk, Vt, dP, 1.f);
        K.ds_rows(S, dP, nq, Di_r);
        const float* X = kp;
        if (!qdirect) { pack_rows(kp, D, D, nk, dp, Kp); X = Kp; }
        K.gemm_acc(dP, BK, 1, nq, nk, X, dp, dQ, nullptr);       // dQ[i] += sum_j dS[i][j] K[j]
      }
      for (int r = 0; r < nq; r++) {
        float* dqp = a.dq + rb->idx[r] * D;
        for (int64_t x = 0; x < D; x++) dqp[x] = dQ[r * dp + x] * a.scale;
      }
    }
    delete rb;
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
