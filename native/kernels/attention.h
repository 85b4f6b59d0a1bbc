// Tiled (flash-style) scaled-dot-product attention, fp32, forward and backward.
//
// Layouts: q [B,Hq,Tq,D], out/dout [B,Hq,Tq,Dv], lse [B,Hq,Tq] contiguous. k [B,Hkv,Tk,D] and v [B,Hkv,Tk,Dv]:
// in the forward pass element (b, h, j, d) of k sits at b*ks[0] + h*ks[1] + j*ks[2] + d (likewise v with vs), so a
// view of a preallocated cache [B,Hkv,capacity,D] narrowed along T is read in place; the backward pass takes them
// contiguous (ks/vs ignored). Query head h reads kv head h / (Hq/Hkv). Scores s_ij = scale*q_i.k_j (+ additive mask);
// causal: key j allowed only if j <= i + q_offset; boolean mask: nonzero = attend. Mask element (b,h,i,j) at
// b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3]. A query with no allowed key gets out = 0, lse = -inf, zero grads.
//
// Batch invariance: keys are taken in chunks of ATTN_CHUNK_BLOCKS x 64 at fixed absolute positions; each chunk keeps
// its own online-softmax state (m, l, O) and the chunks merge in order. Decode (few query rows per kv head, fewer
// row blocks than 2 x threads) runs the chunks as separate tasks and merges afterwards with the same arithmetic, so
// a row's output is the same bits whatever Tq, the other rows or the thread count (a decode step equals the prefill
// of the same position).
//
// Design: the driver (attention.cc, baseline code) tiles keys into blocks of ATTN_BK = 64 and query rows into
// blocks of 64 (for GQA the query heads sharing a kv head are interleaved into one row block, so a K/V tile
// serves the whole group), and calls per-ISA micro-kernels through an AttnKernels table (scalar in
// attention.cc, AVX2 / AVX-512 in native/arch/x86/*/attention_*.cc). Forward: online softmax, tasks over
// (b, kv head, row block). Backward (FlashAttention-2): dk/dv tasks own (b, kv head, key block); dq either
// comes from a second pass over row blocks or, when B*Hkv >= 2*threads, is accumulated in the same pass by
// tasks owning a whole (b, kv head). Every output has one writer and a fixed summation order (deterministic).
// Extra memory: O(64 * (D + Dv)) per task plus O(B*Hq*Tq) in the backward pass (plus Hq/Hkv*Tq*D per task
// in the fused backward when D % 16 != 0); never a Tq x Tk matrix.
// The caller (bind/attention.cc) has validated every size; these functions trust their arguments.
#pragma once
#include <cstdint>

namespace fathom {

struct AttnArgs {
  int64_t B, Hq, Hkv, Tq, Tk, D, Dv;
  const float* q;
  const float* k;
  const float* v;
  // forward: out (written), lse (written, may be null). backward: out and lse are read.
  const float* out_in;
  float* out;
  float* lse;
  const float* lse_in;
  const float* dout;
  float* dq;
  float* dk;
  float* dv;
  float scale;
  bool causal;
  int64_t q_offset;
  const float* mask_add;      // additive mask or null
  const uint8_t* mask_bool;   // boolean mask or null (at most one of the two)
  int64_t ms[4];
  int64_t ks[3], vs[3];       // forward: k / v strides (batch, head, row) in elements; the last axis is contiguous
};

// Contiguous k / v strides for a's sizes.
inline void attn_contiguous_kv(AttnArgs& a) {
  a.ks[2] = a.D; a.ks[1] = a.Tk * a.D; a.ks[0] = a.Hkv * a.ks[1];
  a.vs[2] = a.Dv; a.vs[1] = a.Tk * a.Dv; a.vs[0] = a.Hkv * a.vs[1];
}

void attention_f32(const AttnArgs& a);
void attention_backward_f32(const AttnArgs& a);

// ---- micro-kernels (shared by the driver and the ISA translation units) -------------------------------
// A "score tile" has ATTN_BK columns per row (row stride ATTN_BK). Packed row widths (xp) are multiples of 16.
// Keys are merged in chunks of ATTN_CHUNK_BLOCKS key blocks (2048 keys) at fixed absolute positions (see the forward
// driver). Decode splits a row block's work by chunk, keeping one partial state per chunk: larger chunks bound that
// memory (MLA, Dv = 512, at 128k keys: 64 chunks, ~17 MB; with 128-key chunks it was ~263 MB) at the cost of splitting
// only beyond 2048 keys (below that, decode attention is short anyway).
enum { ATTN_BK = 64, ATTN_PAD = 16, ATTN_CHUNK_BLOCKS = 32 };

struct AttnKernels {
  // C[r][0..64) = scale * sum_d A[r*lda + d] * Bt[d*64 + c], r < nrows (Bt is a packed [K][64] tile).
  void (*scores)(const float* A, int64_t lda, int nrows, int K, const float* Bt, float* C, float scale);
  // Transposes a key tile: Kt[d*64 + j] = src[j*ld + d] for d < D, j < nk; columns nk..63 are zeroed.
  void (*pack_t)(const float* src, int64_t ld, int nk, int64_t D, float* Kt);
  // C[r][0..xp) = (alpha ? alpha[r] : 1) * C[r][..] + sum_{t<n} A[r*asr + t*ast] * X[t*xp + ..], r < nrows.
  void (*gemm_acc)(const float* A, int64_t asr, int64_t ast, int nrows, int n, const float* X, int64_t xp,
                   float* C, const float* alpha);
  // Online softmax over a score tile: per row m_new = max(m, rowmax), S = exp(S - m_new) (0 if m_new = -inf),
  // alpha = exp(m - m_new) (1 if m_new = -inf), l = l*alpha + rowsum(S), m = m_new.
  void (*softmax)(float* S, int nrows, float* m, float* l, float* alpha);
  // S[r][..] = exp(S[r][..] - lse[r]) (0 if lse[r] = -inf).
  void (*exp_rows)(float* S, int nrows, const float* lse);
  // dP[r][..] = P[r][..] * (dP[r][..] - Di[r]).
  void (*ds_rows)(const float* P, float* dP, int nrows, const float* Di);
};

#if !defined(FATHOM_NO_X86)
extern const AttnKernels attn_kernels_avx512;
extern const AttnKernels attn_kernels_avx2;
#endif

}  // namespace fathom
