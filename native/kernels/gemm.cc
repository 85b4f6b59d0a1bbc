// GEMM driver (blocking, packing, threading, batching, dispatch) and the portable scalar path. See gemm.h.
#include "kernels/gemm.h"
#include "common.h"
#include "cpu.h"
#include "pool.h"
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

namespace fathom {
namespace {

// ---------------------------------------------------------------------------------------------------------------
// Generic packing (any MR/NR), used by the scalar path and for the cases without a vectorised packer.

static inline float ld_f32(const float* p) { return *p; }
static inline float ld_f32(const uint16_t* p) { return bf16_to_f32(*p); }

// op(A) block (mc × kc) -> ceil(mc/MR) panels of [kc][MR] f32, rows past mc zero.
template <int MR, class TI>
void pack_a_f32_generic(const void* src, int64_t ld, bool trans, int64_t mc, int64_t kc, void* dst) {
  const TI* A = static_cast<const TI*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t p = 0; p < mc; p += MR) {
    int rows = static_cast<int>(std::min<int64_t>(MR, mc - p));
    if (rows < MR) std::memset(d, 0, sizeof(float) * MR * kc);
    for (int i = 0; i < rows; i++) {
      if (!trans) {
        const TI* r = A + (p + i) * ld;
        for (int64_t k = 0; k < kc; k++) d[k * MR + i] = ld_f32(r + k);
      } else {
        const TI* c = A + (p + i);
        for (int64_t k = 0; k < kc; k++) d[k * MR + i] = ld_f32(c + k * ld);
      }
    }
    d += MR * kc;
  }
}

// op(B) block (kc × nc) -> ceil(nc/NR) panels of [kc][NR] f32, columns past nc zero.
template <int NR, class TI>
void pack_b_f32_generic(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const TI* B = static_cast<const TI*>(src);
  float* d = static_cast<float*>(dst);
  for (int64_t j = 0; j < nc; j += NR) {
    int cols = static_cast<int>(std::min<int64_t>(NR, nc - j));
    if (cols < NR) std::memset(d, 0, sizeof(float) * NR * kc);
    if (!trans) {
      for (int64_t k = 0; k < kc; k++) {
        const TI* r = B + k * ld + j;
        for (int c = 0; c < cols; c++) d[k * NR + c] = ld_f32(r + c);
      }
    } else {
      for (int c = 0; c < cols; c++) {
        const TI* r = B + (j + c) * ld;
        for (int64_t k = 0; k < kc; k++) d[k * NR + c] = ld_f32(r + k);
      }
    }
    d += NR * kc;
  }
}

// bf16 pairs: op(A) block -> panels of [ceil(kc/2)][MR][2] bf16 (k pairs interleaved), zero padded.
template <int MR>
void pack_a_bf16_pairs_generic(const void* src, int64_t ld, bool trans, int64_t mc, int64_t kc, void* dst) {
  const uint16_t* A = static_cast<const uint16_t*>(src);
  uint16_t* d = static_cast<uint16_t*>(dst);
  int64_t kcp = (kc + 1) & ~int64_t(1);
  for (int64_t p = 0; p < mc; p += MR) {
    int rows = static_cast<int>(std::min<int64_t>(MR, mc - p));
    if (rows < MR || kcp != kc) std::memset(d, 0, sizeof(uint16_t) * MR * kcp);
    for (int i = 0; i < rows; i++)
      for (int64_t k = 0; k < kc; k++)
        d[(k >> 1) * 2 * MR + 2 * i + (k & 1)] = trans ? A[k * ld + p + i] : A[(p + i) * ld + k];
    d += MR * kcp;
  }
}

template <int NR>
void pack_b_bf16_pairs_generic(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst) {
  const uint16_t* B = static_cast<const uint16_t*>(src);
  uint16_t* d = static_cast<uint16_t*>(dst);
  int64_t kcp = (kc + 1) & ~int64_t(1);
  for (int64_t j = 0; j < nc; j += NR) {
    int cols = static_cast<int>(std::min<int64_t>(NR, nc - j));
    if (cols < NR || kcp != kc) std::memset(d, 0, sizeof(uint16_t) * NR * kcp);
    for (int64_t k = 0; k < kc; k++)
      for (int c = 0; c < cols; c++)
        d[(k >> 1) * 2 * NR + 2 * c + (k & 1)] = trans ? B[(j + c) * ld + k] : B[k * ld + j + c];
    d += NR * kcp;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scalar micro-kernel, 4×16 (the compiler vectorises the inner loop with baseline SSE2).

constexpr int SC_MR = 4, SC_NR = 16;

void scalar_kernel_f32(int64_t kc, const void* ap, const void* bp, float* C, int64_t ldc, int mr, int nr, float alpha,
                       float beta, const char* const*, int) {
  const float* a = static_cast<const float*>(ap);
  const float* b = static_cast<const float*>(bp);
  float acc[SC_MR][SC_NR];
  for (int i = 0; i < SC_MR; i++)
    for (int j = 0; j < SC_NR; j++) acc[i][j] = 0.f;
  for (int64_t k = 0; k < kc; k++) {
    for (int i = 0; i < SC_MR; i++) {
      float ai = a[i];
      for (int j = 0; j < SC_NR; j++) acc[i][j] += ai * b[j];
    }
    a += SC_MR;
    b += SC_NR;
  }
  for (int i = 0; i < mr; i++) {
    float* c = C + i * ldc;
    if (beta == 0.f)
      for (int j = 0; j < nr; j++) c[j] = alpha * acc[i][j];
    else
      for (int j = 0; j < nr; j++) c[j] = alpha * acc[i][j] + beta * c[j];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Code paths.

enum Variant {
  V_SCALAR_F32 = 1, V_SCALAR_BF16, V_AVX2_F32, V_AVX2_BF16, V_AVX512_F32, V_AVX512_BF16DOT, V_AVX512_BF16F32
};

struct Path {
  int variant;
  int mr, nr;
  int64_t kc, mc;     // k-block (in k, even) and the largest M-block
  int kstep;          // 2 when k pairs are interleaved (bf16 dot)
  int esize;          // bytes per packed element
  int in_bf16;        // A and B are bf16
  gemm_kernel_fn kernel;
  gemm_pack_fn pack_a, pack_b;
  gemm_gemv_n_fn gemv_n;  // small-M paths (may be null)
  gemm_gemv_t_fn gemv_t;
};

const Path P_SCALAR_F32 = {V_SCALAR_F32, SC_MR, SC_NR, 256, 128, 1, 4, 0, scalar_kernel_f32,
                           pack_a_f32_generic<SC_MR, float>, pack_b_f32_generic<SC_NR, float>, nullptr, nullptr};
const Path P_SCALAR_BF16 = {V_SCALAR_BF16, SC_MR, SC_NR, 256, 128, 1, 4, 1, scalar_kernel_f32,
                            pack_a_f32_generic<SC_MR, uint16_t>, pack_b_f32_generic<SC_NR, uint16_t>, nullptr, nullptr};
#if !defined(FATHOM_NO_X86)
const Path P_AVX2_F32 = {V_AVX2_F32, 6, 16, 256, 192, 1, 4, 0, gemm_avx2_kernel_f32,
                         pack_a_f32_generic<6, float>, gemm_avx2_pack_b_f32, gemm_avx2_gemv_n_f32, gemm_avx2_gemv_t_f32};
const Path P_AVX2_BF16 = {V_AVX2_BF16, 6, 16, 256, 192, 1, 4, 1, gemm_avx2_kernel_f32,
                          pack_a_f32_generic<6, uint16_t>, gemm_avx2_pack_b_bf16f32, gemm_avx2_gemv_n_bf16, gemm_avx2_gemv_t_bf16};
const Path P_AVX512_F32 = {V_AVX512_F32, 14, 32, 512, 224, 1, 4, 0, gemm_avx512_kernel_f32,
                           gemm_avx512_pack_a_f32, gemm_avx512_pack_b_f32, gemm_avx512_gemv_n_f32, gemm_avx512_gemv_t_f32};
const Path P_AVX512_BF16DOT = {V_AVX512_BF16DOT, 14, 32, 512, 224, 2, 2, 1, gemm_avx512_kernel_bf16,
                               gemm_avx512_pack_a_bf16, gemm_avx512_pack_b_bf16, gemm_avx512_gemv_n_bf16, gemm_avx512_gemv_t_bf16};
const Path P_AVX512_BF16F32 = {V_AVX512_BF16F32, 14, 32, 256, 224, 1, 4, 1, gemm_avx512_kernel_f32,
                               gemm_avx512_pack_a_bf16f32, gemm_avx512_pack_b_bf16f32, gemm_avx512_gemv_n_bf16, gemm_avx2_gemv_t_bf16};
#endif

const Path& path_for(int bf16) {
#if !defined(FATHOM_NO_X86)
  const Path &avx512_f32 = P_AVX512_F32, &avx512_dot = P_AVX512_BF16DOT, &avx512_bf = P_AVX512_BF16F32,
             &avx2_f32 = P_AVX2_F32, &avx2_bf = P_AVX2_BF16;
  switch (current_isa()) {
    case ISA_AVX512: return bf16 ? (has_bf16_dot() ? avx512_dot : avx512_bf) : avx512_f32;
    case ISA_AVX2: return bf16 ? avx2_bf : avx2_f32;
    default: break;
  }
#endif
  return bf16 ? P_SCALAR_BF16 : P_SCALAR_F32;
}

const Path* path_by_variant(int v) {
#if !defined(FATHOM_NO_X86)
  for (int bf = 0; bf < 2; bf++) {
    const Path& p = path_for(bf);
    if (p.variant == v) return &p;
  }
#endif
  if (v == V_SCALAR_F32) return &P_SCALAR_F32;
  if (v == V_SCALAR_BF16) return &P_SCALAR_BF16;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------------------------
// Buffers: 64-byte aligned, per thread, grown on demand and kept.

struct Buf {
  void* p = nullptr;
  size_t cap = 0;
  ~Buf() { std::free(p); }
  void* get(size_t bytes) {
    if (bytes > cap) {
      std::free(p);
      size_t c = std::max<size_t>((bytes + 63) & ~size_t(63), 4096);
      p = std::aligned_alloc(64, c);
      if (!p) { cap = 0; throw std::bad_alloc(); }
      cap = c;
    }
    return p;
  }
};

thread_local Buf t_abuf;     // per-task packed B slice (small-M-block path)
thread_local Buf t_bbuf;     // packed op(B) (large path; per caller, shared with the workers)
thread_local Buf t_rowbuf;   // gathered A rows (small-M path); packed op(A) (the other paths)
thread_local Buf t_partbuf;  // partial sums (small-M path)

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Runs f(t) for t in [0, n): in parallel when the work is worth it.
template <class F>
void run_tasks(int64_t n, double flops, F&& f) {
  if (n <= 1 || flops < 3e5 || num_threads() <= 1) {
    for (int64_t t = 0; t < n; t++) f(t);
    return;
  }
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) f(t);
  });
}

struct Mat {
  const uint8_t* p;  // bytes
  int64_t ld;
  bool trans;
  int esz;           // bytes per element of the user's array
  // Address of element (r, c) of op(X) (r over the M or K dim, c over the K or N dim).
  const void* at(int64_t r, int64_t c) const { return p + (trans ? c * ld + r : r * ld + c) * esz; }
};

void scale_c(int64_t M, int64_t N, float* C, int64_t ldc, float beta) {
  for (int64_t i = 0; i < M; i++) {
    float* c = C + i * ldc;
    if (beta == 0.f) std::memset(c, 0, sizeof(float) * N);
    else if (beta != 1.f) for (int64_t j = 0; j < N; j++) c[j] *= beta;
  }
}

constexpr int64_t SMALL_M = 4;

// Small M (<= 4), B not prepacked: stream B once without packing.
// split_k = false keeps each output one FMA chain over all of K (B not transposed; tasks then split N only).
void gemm_small_m(const Path& P, int64_t M, int64_t N, int64_t K, const Mat& A, const Mat& B, float* C, int64_t ldc,
                  float alpha, float beta, bool split_k = true) {
  const double flops = 2.0 * M * N * K;
  const int T = num_threads();
  const bool par = T > 1 && flops >= 3e5;
  // op(A) rows, contiguous (row stride lda_r).
  const void* rows = A.p;
  int64_t lda_r = A.ld;
  if (A.trans && M > 1) {
    uint8_t* r = static_cast<uint8_t*>(t_rowbuf.get(static_cast<size_t>(M * K * A.esz)));
    for (int64_t i = 0; i < M; i++)
      for (int64_t k = 0; k < K; k++) std::memcpy(r + (i * K + k) * A.esz, A.at(i, k), A.esz);
    rows = r;
    lda_r = K;
  } else if (A.trans) {  // one row of a transposed A: a column with stride lda
    uint8_t* r = static_cast<uint8_t*>(t_rowbuf.get(static_cast<size_t>(K * A.esz)));
    for (int64_t k = 0; k < K; k++) std::memcpy(r + k * A.esz, A.at(0, k), A.esz);
    rows = r;
    lda_r = K;
  }
  const uint8_t* arow = static_cast<const uint8_t*>(rows);
  if (B.trans) {
    // Dot products against rows of B: split N.
    int64_t chunk = par ? std::max<int64_t>(16, ceil_div(N, 4 * T)) : N;
    run_tasks(ceil_div(N, chunk), flops, [&](int64_t t) {
      int64_t j0 = t * chunk, nc = std::min(chunk, N - j0);
      P.gemv_t(static_cast<int>(M), K, rows, lda_r, B.at(0, j0), B.ld, nc, C + j0, ldc, alpha, beta);
    });
    return;
  }
  // Rows of B are streamed in order; split K (each task reads one contiguous range) and sum the partials.
  int64_t nk = par && split_k ? std::min<int64_t>(4 * T, std::max<int64_t>(1, K / 64)) : 1;
  int64_t kchunk = ceil_div(K, nk);
  nk = ceil_div(K, kchunk);
  int64_t nn = 1, nchunk = N;
  if (par && nk < 2 * T) {  // short K: split N as well
    nn = std::min<int64_t>(ceil_div(N, 64), ceil_div(4 * T, nk));
    nchunk = ceil_div(ceil_div(N, nn), 16) * 16;
    nn = ceil_div(N, nchunk);
  }
  float* part = static_cast<float*>(t_partbuf.get(static_cast<size_t>(nk * M * N) * sizeof(float)));
  run_tasks(nk * nn, flops, [&](int64_t t) {
    const int64_t kt = t / nn, jt = t % nn;
    const int64_t k0 = kt * kchunk, kc = std::min(kchunk, K - k0);
    const int64_t j0 = jt * nchunk, nc = std::min(nchunk, N - j0);
    float* acc = part + kt * M * N + j0;
    for (int64_t i = 0; i < M; i++) std::memset(acc + i * N, 0, sizeof(float) * nc);
    P.gemv_n(static_cast<int>(M), kc, arow + k0 * A.esz, lda_r, B.at(k0, j0), B.ld, nc, acc, N);
  });
  for (int64_t i = 0; i < M; i++) {
    float* c = C + i * ldc;
    const float* p0 = part + i * N;
    for (int64_t j = 0; j < N; j++) {
      float sum = p0[j];
      for (int64_t t = 1; t < nk; t++) sum += p0[t * M * N + j];
      c[j] = beta == 0.f ? alpha * sum : alpha * sum + beta * c[j];
    }
  }
}

// Prefetches a 2-D region (rows of `bytes` bytes, `stride` apart) into L2, a few lines per call, so that the next
// k-block of B streams in from memory while the current one is being multiplied.
struct Prefetcher {
  const uint8_t* row = nullptr;
  int64_t rows_left = 0, stride = 0, lines = 0, line = 0;
  int64_t total = 0;
  void start(const uint8_t* b, int64_t nrows, int64_t bytes, int64_t st) {
    row = b;
    rows_left = nrows;
    stride = st;
    lines = (bytes + 63) / 64 + 1;
    line = 0;
    total = nrows * lines;
  }
  // Fills out[] with up to n next line addresses; returns how many.
  int take(int64_t n, const char** out) {
    int c = 0;
    while (n > 0 && rows_left > 0) {
      const int64_t m = std::min(n, lines - line);
      const char* p = reinterpret_cast<const char*>(row) + line * 64;
      for (int64_t i = 0; i < m; i++) out[c++] = p + i * 64;
      n -= m;
      line += m;
      if (line == lines) { line = 0; row += stride; rows_left--; }
    }
    return c;
  }
};

// M fits one M-block: pack all of op(A) once, then one parallel pass over column chunks; each task walks all
// k-blocks, packing its slice of B into a per-thread (L2-resident) buffer unless B is prepacked.
void gemm_one_mblock(const Path& P, int64_t M, int64_t N, int64_t K, const Mat& A, const Mat& B,
                     const GemmPackedB* pre, float* C, int64_t ldc, float alpha, float beta) {
  const double flops = 2.0 * M * N * K;
  const int T = num_threads();
  const bool par = T > 1 && flops >= 3e5;
  const int mr = P.mr, nr = P.nr, es = P.esize;
  const int64_t KC = pre ? pre->kc : P.kc;
  const int64_t nkb = ceil_div(K, KC);
  const int64_t Mp = ceil_div(M, mr);
  const int64_t Npad = ceil_div(N, nr) * nr;
  // Packed A: k-block b at byte offset b*KC*Mp*mr*es (KC is even, so earlier blocks are unpadded).
  uint8_t* apack = static_cast<uint8_t*>(t_rowbuf.get(static_cast<size_t>((ceil_div(K, KC) * KC) * Mp * mr * es)));
  run_tasks(nkb, par ? flops : 0, [&](int64_t b) {
    const int64_t k0 = b * KC, kc = std::min(KC, K - k0);
    P.pack_a(A.at(0, k0), A.ld, A.trans, M, kc, apack + static_cast<size_t>(k0 * Mp * mr * es));
  });
  // Column chunks: a multiple of NR, at most 256 wide (f32 B slice <= 512 KB, with KC = 512), enough for the threads.
  const int64_t jwmax = P.kstep == 2 ? 128 : 256;  // measured: bf16 prefers narrower slices
  int64_t jw = par ? std::min<int64_t>(jwmax, ceil_div(ceil_div(N, 4 * T), nr) * nr) : std::min<int64_t>(Npad, jwmax);
  jw = std::max<int64_t>(jw, nr);
  const int64_t ntask = ceil_div(N, jw);
  run_tasks(ntask, par ? flops : 0, [&](int64_t t) {
    const int64_t j0 = t * jw, nc = std::min(jw, N - j0), np = ceil_div(nc, nr);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      const int64_t kcp = P.kstep == 2 ? (kc + 1) & ~int64_t(1) : kc;
      const size_t panel_bytes = static_cast<size_t>(nr * kcp * es), apanel_bytes = static_cast<size_t>(mr * kcp * es);
      const uint8_t* bp;
      if (pre) {
        bp = static_cast<const uint8_t*>(pre->data) + static_cast<size_t>(k0 * Npad * es) + (j0 / nr) * panel_bytes;
      } else {
        uint8_t* w = static_cast<uint8_t*>(t_abuf.get(panel_bytes * np));
        P.pack_b(B.at(k0, j0), B.ld, B.trans, kc, nc, w);
        bp = w;
      }
      const uint8_t* ap = apack + static_cast<size_t>(k0 * Mp * mr * es);
      const float beta_k = k0 == 0 ? beta : 1.f;
      const int64_t kiter = P.kstep == 2 ? kcp / 2 : kc;
      Prefetcher pf;
      int64_t pf_per_call = 0;
      if (!pre && k0 + KC < K) {
        const int64_t k1 = k0 + KC, kn = std::min(KC, K - k1);
        const uint8_t* b1 = static_cast<const uint8_t*>(B.at(k1, j0));
        if (!B.trans) pf.start(b1, kn, nc * B.esz, B.ld * B.esz);
        else pf.start(b1, nc, kn * B.esz, B.ld * B.esz);
        pf_per_call = std::min<int64_t>(ceil_div(pf.total, np * Mp), std::min<int64_t>(kiter / 4, 256));
      }
      const char* pf_addr[256];
      for (int64_t p = 0; p < np; p++) {
        const int cols = static_cast<int>(std::min<int64_t>(nr, nc - p * nr));
        for (int64_t ir = 0; ir < Mp; ir++) {
          const int npf = pf.take(pf_per_call, pf_addr);
          const int rows = static_cast<int>(std::min<int64_t>(mr, M - ir * mr));
          P.kernel(kiter, ap + ir * apanel_bytes, bp + p * panel_bytes, C + ir * mr * ldc + j0 + p * nr, ldc, rows, cols,
                   alpha, beta_k, pf_addr, npf);
        }
      }
    }
  });
}

// Large M: op(A) and op(B) are packed once, in one parallel phase (fine-grained tasks over k-blocks × groups of
// micro-panels), then C is computed in MC×NC tiles, one task per tile walking all k-blocks. There is no barrier
// between k-blocks and the tiles are small enough (~40 per 1024² product) that dynamic scheduling keeps both threads
// busy even when another process takes part of a core. Per tile and k-block the working set (A block MC×KC,
// B block KC×NC, C tile) fits the 1 MB L2; the packed operands themselves stream from L3.
// Packed data is bounded (~16 MB per operand): larger products are processed in M and N super-blocks.
void gemm_large(const Path& P, int64_t M, int64_t N, int64_t K, const Mat& A, const Mat& B, const GemmPackedB* pre,
                float* C, int64_t ldc, float alpha, float beta) {
  const double flops = 2.0 * M * N * K;
  const int mr = P.mr, nr = P.nr, es = P.esize;
  const int64_t KC = pre ? pre->kc : P.kc;
  const int64_t nkb = ceil_div(K, KC);
  const int64_t Kpad = nkb * KC;
  constexpr int64_t BUDGET = int64_t(16) << 20;
  // M super-blocks (rows of A packed at once) and N super-blocks (columns of B packed at once).
  int64_t MS = std::max<int64_t>(mr, BUDGET / (Kpad * es) / mr * mr);
  int64_t nMS = ceil_div(M, MS);
  MS = ceil_div(ceil_div(M, nMS), mr) * mr;
  nMS = ceil_div(M, MS);
  int64_t NS = N, nNS = 1;
  if (!pre) {
    NS = std::max<int64_t>(nr, BUDGET / (Kpad * es) / nr * nr);
    nNS = ceil_div(N, NS);
    NS = ceil_div(ceil_div(N, nNS), nr) * nr;
    nNS = ceil_div(N, NS);
  }
  const int64_t Npad_pre = pre ? pre->Npad : 0;
  const int64_t MSp = ceil_div(MS, mr), NSp = ceil_div(NS, nr);
  uint8_t* apack = static_cast<uint8_t*>(t_rowbuf.get(static_cast<size_t>(Kpad * MSp * mr * es)));
  uint8_t* bpack = pre ? nullptr : static_cast<uint8_t*>(t_bbuf.get(static_cast<size_t>(Kpad * NSp * nr * es)));
  constexpr int64_t GA = 8, GB = 8;  // micro-panels per packing task
  for (int64_t ms = 0; ms < nMS; ms++) {
    const int64_t i0 = ms * MS, mcs = std::min(MS, M - i0), Mp = ceil_div(mcs, mr);
    for (int64_t ns = 0; ns < nNS; ns++) {
      const int64_t j0 = ns * NS, ncs = std::min(NS, N - j0), Np = ceil_div(ncs, nr);
      const bool packA = ns == 0, packB = !pre && (ms == 0 || nNS > 1);
      // Packed layout (both operands): k-block b at offset b*KC*(panels)*(mr|nr)*es, panels of kcp×(mr|nr).
      const int64_t bstride = pre ? Npad_pre : Np * nr;     // columns per k-block in the packed B
      const int64_t bpanel0 = pre ? j0 / nr : 0;            // first panel of this super-block
      const uint8_t* bbase = pre ? static_cast<const uint8_t*>(pre->data) : bpack;
      const int64_t nga = packA ? ceil_div(Mp, GA) : 0, ngb = packB ? ceil_div(Np, GB) : 0;
      const int64_t npack = nkb * (nga + ngb);
      if (npack > 0) {
        run_tasks(npack, flops, [&](int64_t t) {
          const int64_t kb = t / (nga + ngb), g = t % (nga + ngb);
          const int64_t k0 = kb * KC, kc = std::min(KC, K - k0);
          const int64_t kcp = P.kstep == 2 ? (kc + 1) & ~int64_t(1) : kc;
          if (g < nga) {
            const int64_t r0 = g * GA * mr, rows = std::min(GA * mr, mcs - r0);
            P.pack_a(A.at(i0 + r0, k0), A.ld, A.trans, rows, kc,
                     apack + static_cast<size_t>(k0 * Mp * mr * es) + static_cast<size_t>(g * GA * mr * kcp * es));
          } else {
            const int64_t gb = g - nga, c0 = gb * GB * nr, cols = std::min(GB * nr, ncs - c0);
            P.pack_b(B.at(k0, j0 + c0), B.ld, B.trans, kc, cols,
                     bpack + static_cast<size_t>(k0 * Np * nr * es) + static_cast<size_t>(gb * GB * nr * kcp * es));
          }
        });
      }
      // Tiles: about 4 micro-panels of A (56 rows) × 16 panels of B (512 columns), split evenly (measured best).
      const int64_t nti = ceil_div(Mp, 4), ntj = ceil_div(Np, 16);
      run_tasks(nti * ntj, flops, [&](int64_t t) {
        const int64_t ti = t / ntj, tj = t % ntj;
        const int64_t ir0 = ti * Mp / nti, ir1 = (ti + 1) * Mp / nti;
        const int64_t p0 = tj * Np / ntj, p1 = (tj + 1) * Np / ntj;
        for (int64_t kb = 0; kb < nkb; kb++) {
          const int64_t k0 = kb * KC, kc = std::min(KC, K - k0);
          const int64_t kcp = P.kstep == 2 ? (kc + 1) & ~int64_t(1) : kc;
          const int64_t kiter = P.kstep == 2 ? kcp / 2 : kc;
          const size_t panel_bytes = static_cast<size_t>(nr * kcp * es), apanel_bytes = static_cast<size_t>(mr * kcp * es);
          const uint8_t* ab = apack + static_cast<size_t>(k0 * Mp * mr * es);
          const uint8_t* bb = bbase + static_cast<size_t>(k0 * bstride * es) + bpanel0 * panel_bytes;
          const float beta_k = kb == 0 ? beta : 1.f;
          for (int64_t p = p0; p < p1; p++) {
            const int64_t jc = j0 + p * nr;
            const int cols = static_cast<int>(std::min<int64_t>(nr, N - jc));
            for (int64_t ir = ir0; ir < ir1; ir++) {
              const int64_t ic = i0 + ir * mr;
              const int rows = static_cast<int>(std::min<int64_t>(mr, M - ic));
              P.kernel(kiter, ab + ir * apanel_bytes, bb + p * panel_bytes, C + ic * ldc + jc, ldc, rows, cols, alpha,
                       beta_k, nullptr, 0);
            }
          }
        }
      });
    }
  }
}

// One matrix product (M, N, K > 0). pre: B packed in advance with path P (or null).
void gemm_one(const Path& P, int64_t M, int64_t N, int64_t K, const Mat& A, const Mat& B, const GemmPackedB* pre,
              float* C, int64_t ldc, float alpha, float beta) {
  if (M <= SMALL_M && P.gemv_n && !pre) {
    gemm_small_m(P, M, N, K, A, B, C, ldc, alpha, beta);
    return;
  }
  if (M <= P.mc) {
    gemm_one_mblock(P, M, N, K, A, B, pre, C, ldc, alpha, beta);
    return;
  }
  gemm_large(P, M, N, K, A, B, pre, C, ldc, alpha, beta);
}

// Row-invariant product: rows of op(A) go through the small-M kernels SMALL_M at a time -- gemv_t (B transposed: one
// 16-lane FMA accumulator per output, then a fixed horizontal sum) or gemv_n (one FMA chain per output over all of K,
// in order; K is not split between tasks) -- or one at a time on a path without them. A row's result then does not
// depend on how many rows come with it: for routers and other small products whose decode must equal prefill.
void gemm_rowwise(const Path& P, int64_t M, int64_t N, int64_t K, const Mat& A, const Mat& B, float* C, int64_t ldc,
                  float alpha, float beta) {
  const bool small = B.trans ? P.gemv_t != nullptr : P.gemv_n != nullptr;
  const int64_t step = small ? SMALL_M : 1;
  for (int64_t i0 = 0; i0 < M; i0 += step) {
    const Mat a{static_cast<const uint8_t*>(A.at(i0, 0)), A.ld, A.trans, A.esz};
    const int64_t mr = std::min(step, M - i0);
    if (small) gemm_small_m(P, mr, N, K, a, B, C + i0 * ldc, ldc, alpha, beta, false);
    else gemm_one(P, mr, N, K, a, B, nullptr, C + i0 * ldc, ldc, alpha, beta);
  }
}

void gemm_batched(const Path& P, int64_t batch, int64_t M, int64_t N, int64_t K, const void* A, int64_t sA,
                  int64_t lda, bool tA, const void* B, int64_t sB, int64_t ldb, bool tB, float* C, int64_t sC,
                  int64_t ldc, float alpha, float beta, bool rowwise) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int esz = P.in_bf16 ? 2 : 4;
  if (K == 0 || alpha == 0.f) {
    for (int64_t b = 0; b < batch; b++) scale_c(M, N, C + b * sC, ldc, beta);
    return;
  }
  // A stack of row-major A's against one B is a single taller product.
  if (batch > 1 && sB == 0 && !tA && sA == M * lda && sC == M * ldc) {
    M *= batch;
    batch = 1;
  }
  auto one = [&](int64_t b) {
    Mat a{static_cast<const uint8_t*>(A) + b * sA * esz, lda, tA, esz};
    Mat bm{static_cast<const uint8_t*>(B) + b * sB * esz, ldb, tB, esz};
    if (rowwise) gemm_rowwise(P, M, N, K, a, bm, C + b * sC, ldc, alpha, beta);
    else gemm_one(P, M, N, K, a, bm, nullptr, C + b * sC, ldc, alpha, beta);
  };
  const double flops = 2.0 * M * N * K;
  if (batch > 1 && num_threads() > 1 && flops < 4e6) {
    run_tasks(batch, flops * batch, one);
  } else {
    for (int64_t b = 0; b < batch; b++) one(b);
  }
}

}  // namespace

void gemm_f32(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, int64_t strideA, int64_t lda, bool transA,
              const float* B, int64_t strideB, int64_t ldb, bool transB, float* C, int64_t strideC, int64_t ldc,
              float alpha, float beta, bool rowwise) {
  gemm_batched(path_for(0), batch, M, N, K, A, strideA, lda, transA, B, strideB, ldb, transB, C, strideC, ldc, alpha,
               beta, rowwise);
}

void gemm_bf16(int64_t batch, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t strideA, int64_t lda,
               bool transA, const uint16_t* B, int64_t strideB, int64_t ldb, bool transB, float* C, int64_t strideC,
               int64_t ldc, float alpha, float beta, bool rowwise) {
  gemm_batched(path_for(1), batch, M, N, K, A, strideA, lda, transA, B, strideB, ldb, transB, C, strideC, ldc, alpha,
               beta, rowwise);
}

GemmPackedB* gemm_pack_b(int dtype, int64_t K, int64_t N, const void* B, int64_t ldb, bool transB) {
  const Path& P = path_for(dtype);
  GemmPackedB* r = new (std::nothrow) GemmPackedB();
  if (!r) return nullptr;
  r->isa = static_cast<int>(current_isa());
  r->variant = P.variant;
  r->dtype = dtype;
  r->K = K;
  r->N = N;
  r->Npad = ceil_div(std::max<int64_t>(N, 1), P.nr) * P.nr;
  r->kc = P.kc;
  const int64_t Kp = P.kstep == 2 ? (K + 1) & ~int64_t(1) : K;
  r->bytes = static_cast<size_t>(std::max<int64_t>(Kp, 1) * r->Npad * P.esize);
  r->data = std::aligned_alloc(64, (r->bytes + 63) & ~size_t(63));
  if (!r->data) { delete r; return nullptr; }
  if (K == 0 || N == 0) return r;
  const int esz = dtype ? 2 : 4;
  const Mat bm{static_cast<const uint8_t*>(B), ldb, transB, esz};
  const int64_t npanels = r->Npad / P.nr;
  const int T = num_threads();
  for (int64_t k0 = 0; k0 < K; k0 += P.kc) {
    const int64_t kc = std::min<int64_t>(P.kc, K - k0);
    const int64_t kcp = P.kstep == 2 ? (kc + 1) & ~int64_t(1) : kc;
    const size_t panel_bytes = static_cast<size_t>(P.nr * kcp * P.esize);
    uint8_t* base = static_cast<uint8_t*>(r->data) + static_cast<size_t>(k0 * r->Npad * P.esize);
    int64_t per = std::max<int64_t>(1, ceil_div(npanels, 4 * T));
    run_tasks(ceil_div(npanels, per), 2.0 * kc * N * 64, [&](int64_t t) {
      int64_t p0 = t * per, p1 = std::min(npanels, p0 + per);
      int64_t j0 = p0 * P.nr, nc = std::min(N, p1 * P.nr) - j0;
      P.pack_b(bm.at(k0, j0), ldb, transB, kc, nc, base + p0 * panel_bytes);
    });
  }
  return r;
}

void gemm_packed_free(GemmPackedB* p) {
  if (!p) return;
  std::free(p->data);
  delete p;
}

bool gemm_packed_compatible(const GemmPackedB* p) { return p && path_for(p->dtype).variant == p->variant; }

void gemm_packed(int64_t M, const void* A, int64_t lda, bool transA, const GemmPackedB* pk, float* C, int64_t ldc,
                 float alpha, float beta) {
  const Path* P = path_by_variant(pk->variant);
  if (!P || M <= 0 || pk->N <= 0) return;
  if (pk->K == 0 || alpha == 0.f) {
    scale_c(M, pk->N, C, ldc, beta);
    return;
  }
  const int esz = pk->dtype ? 2 : 4;
  Mat a{static_cast<const uint8_t*>(A), lda, transA, esz};
  Mat dummy{nullptr, 0, false, esz};
  gemm_one(*P, M, pk->N, pk->K, a, dummy, pk, C, ldc, alpha, beta);
}

}  // namespace fathom
