// GEMM: C = alpha * op(A) @ op(B) + beta * C, fp32 and bf16 inputs, f32 accumulation and output.
//
// Design (GotoBLAS-style): op(B) is packed per k-block into NR-wide micro-panels ([k][NR], zero-padded) and op(A)
// into MR-tall micro-panels ([k][MR]); an MR×NR register-blocked micro-kernel multiplies them. Large M: both
// operands are packed once per call (one parallel phase), then threads take small C tiles dynamically, each tile
// walking all k-blocks (no barrier per k-block). M <= one M-block: op(A) is packed once and each task packs its own
// slice of op(B) per k-block, prefetching the next one. bf16 on CPUs with AVX512-BF16 keeps bf16 in the panels with pairs of k
// interleaved ([k/2][MR|NR][2]) for vdpbf16ps; other paths convert bf16 to f32 while packing. Small M (GEMV-like)
// streams B directly without packing. Code paths: AVX-512 (14×32), AVX2+FMA (6×16), scalar (4×16).
//
// This header holds plain declarations only (no templates): it is included by the ISA translation units.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fathom {

// One operand as the user gave it. elem: 0 = f32, 1 = bf16 bit patterns.
struct GemmOperand {
  const void* p;
  int64_t ld;
  bool trans;
};

// Packed right-hand side (packB). Memory is 64-byte aligned and owned by this object.
struct GemmPackedB {
  int isa;       // Isa the panels were packed for
  int variant;   // path variant id (see gemm.cc): which kernel/format
  int dtype;     // 0 = f32, 1 = bf16 (the dtype A must have)
  int64_t K, N, Npad, kc;  // kc: k-block used for the panels
  size_t bytes;
  void* data;
};

// Entry points used by the N-API glue (arguments already validated). rowwise: every row of op(A) gives the same bits
// whatever M (rows through the small-M kernels a few at a time, K never split; slower for large M).
void gemm_f32(int64_t batch, int64_t M, int64_t N, int64_t K, const float* A, int64_t strideA, int64_t lda, bool transA,
              const float* B, int64_t strideB, int64_t ldb, bool transB, float* C, int64_t strideC, int64_t ldc,
              float alpha, float beta, bool rowwise = false);
void gemm_bf16(int64_t batch, int64_t M, int64_t N, int64_t K, const uint16_t* A, int64_t strideA, int64_t lda,
               bool transA, const uint16_t* B, int64_t strideB, int64_t ldb, bool transB, float* C, int64_t strideC,
               int64_t ldc, float alpha, float beta, bool rowwise = false);
// Returns nullptr on allocation failure. dtype: 0 f32, 1 bf16.
GemmPackedB* gemm_pack_b(int dtype, int64_t K, int64_t N, const void* B, int64_t ldb, bool transB);
void gemm_packed_free(GemmPackedB* p);
// Returns false (and does nothing) if the packed matrix belongs to another code path than the current one.
bool gemm_packed_compatible(const GemmPackedB* p);
void gemm_packed(int64_t M, const void* A, int64_t lda, bool transA, const GemmPackedB* P, float* C, int64_t ldc,
                 float alpha, float beta);

// ---- ISA kernels (plain functions). Packed panels are 64-byte aligned.
// Micro-kernel: acc = sum_k a[k][MR] x b[k][NR] for kc steps (k pairs for bf16), then
// C[i][j] = alpha*acc + beta*C[i][j] for i < mr, j < nr (beta == 0: C is not read). While it runs, the kernel
// issues prefetches (to L2) for the npf addresses in pf, one per 4 k steps (npf <= kc/4 is used) (the next block of B streaming in).
typedef void (*gemm_kernel_fn)(int64_t kc, const void* a, const void* b, float* C, int64_t ldc, int mr, int nr,
                               float alpha, float beta, const char* const* pf, int npf);
// Packs op(B) (kc × nc, B already offset to the block) into ceil(nc/NR) micro-panels of kc (or ceil(kc/2) pairs) rows.
typedef void (*gemm_pack_fn)(const void* src, int64_t ld, bool trans, int64_t kc, int64_t nc, void* dst);
// Small-M paths (mr <= 4 rows of op(A), given as rows of a with row stride lda, f32 or bf16 like B):
//  gemv_n (B not transposed, B[k*ldb + n]): acc[i*ldacc + n] += sum_{k<K} a[i*lda + k] * B[k*ldb + n], n < nc.
//  gemv_t (B transposed, B[n*ldb + k]):     C[i*ldc + n] = alpha * sum_k a[i*lda + k] * B[n*ldb + k] + beta * C[..].
typedef void (*gemm_gemv_n_fn)(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                               float* acc, int64_t ldacc);
typedef void (*gemm_gemv_t_fn)(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                               float* C, int64_t ldc, float alpha, float beta);

// AVX-512 (native/arch/x86/avx512/gemm_avx512.cc): MR = 14, NR = 32.
void gemm_avx512_kernel_f32(int64_t kc, const void* a, const void* b, float* C, int64_t ldc, int mr, int nr,
                            float alpha, float beta, const char* const* pf, int npf);
void gemm_avx512_kernel_bf16(int64_t kp, const void* a, const void* b, float* C, int64_t ldc, int mr, int nr,
                             float alpha, float beta, const char* const* pf, int npf);
void gemm_avx512_pack_b_f32(const void* B, int64_t ldb, bool trans, int64_t kc, int64_t nc, void* dst);
void gemm_avx512_pack_b_bf16f32(const void* B, int64_t ldb, bool trans, int64_t kc, int64_t nc, void* dst);
void gemm_avx512_pack_b_bf16(const void* B, int64_t ldb, bool trans, int64_t kc, int64_t nc, void* dst);
void gemm_avx512_pack_a_f32(const void* A, int64_t lda, bool trans, int64_t mc, int64_t kc, void* dst);
void gemm_avx512_pack_a_bf16f32(const void* A, int64_t lda, bool trans, int64_t mc, int64_t kc, void* dst);
void gemm_avx512_pack_a_bf16(const void* A, int64_t lda, bool trans, int64_t mc, int64_t kc, void* dst);
void gemm_avx512_gemv_n_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* acc, int64_t ldacc);
void gemm_avx512_gemv_t_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* C, int64_t ldc, float alpha, float beta);
void gemm_avx512_gemv_n_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* acc, int64_t ldacc);
void gemm_avx512_gemv_t_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* C, int64_t ldc, float alpha, float beta);

// AVX2 + FMA (native/arch/x86/avx2/gemm_avx2.cc): MR = 6, NR = 16.
void gemm_avx2_kernel_f32(int64_t kc, const void* a, const void* b, float* C, int64_t ldc, int mr, int nr,
                          float alpha, float beta, const char* const* pf, int npf);
void gemm_avx2_pack_b_f32(const void* B, int64_t ldb, bool trans, int64_t kc, int64_t nc, void* dst);
void gemm_avx2_pack_b_bf16f32(const void* B, int64_t ldb, bool trans, int64_t kc, int64_t nc, void* dst);
void gemm_avx2_gemv_n_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* acc, int64_t ldacc);
void gemm_avx2_gemv_t_f32(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* C, int64_t ldc, float alpha, float beta);
void gemm_avx2_gemv_n_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* acc, int64_t ldacc);
void gemm_avx2_gemv_t_bf16(int mr, int64_t K, const void* a, int64_t lda, const void* B, int64_t ldb, int64_t nc,
                          float* C, int64_t ldc, float alpha, float beta);

}  // namespace fathom
