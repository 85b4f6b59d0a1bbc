// Elementwise, reduction, norm, RoPE, SwiGLU, AdamW, cast and strided-copy kernels (fp32).
//
// Two layers:
//  * fathom::*_f32 entry points (native/kernels/*.cc, baseline): split work over the thread pool and call
//    single-threaded chunk functions through an OpsTable picked from current_isa() at each call.
//  * OpsTable: one per code path. scalar_ops lives in the baseline kernels; avx2_ops / avx512_ops in the ISA
//    folders (native/arch/x86/*/ops_*.cc, shared body native/arch/x86/ops_simd_impl.h).
// This header is included by ISA translation units: plain declarations and POD structs only (plus one
// template that only baseline files instantiate).
#pragma once
#include <cstdint>
#include "pool.h"

namespace fathom {

enum UnaryOp { U_NEG = 0, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SILU, U_GELU, U_GELU_TANH, U_TANH, U_SIGMOID, U_ABS,
               U_SQUARE, U_RECIP, U_RELU, U_COUNT };
enum BinaryOp { B_ADD = 0, B_SUB, B_MUL, B_DIV, B_MAX, B_MIN, B_POW, B_COUNT };
enum ReduceOp { R_SUM = 0, R_MAX, R_MIN, R_COUNT };

struct AdamCoef {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float decay;        // 1 - lr * weight_decay
  float step_size;    // lr / (1 - beta1^step)
  float sqrt_bc2;     // sqrt(1 - beta2^step)
  float eps;
};

// Single-threaded chunk functions of one code path.
struct OpsTable {
  void (*unary)(int op, int64_t n, const float* x, float* y);
  void (*unary_grad)(int op, int64_t n, const float* x, const float* dy, float* dx);
  // out[i] = a[i*sa] op b[i*sb] with sa, sb in {0, 1} (not both 0); op != B_POW.
  void (*binary_row)(int op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out);
  double (*sum_row)(int64_t n, const float* x);                  // f64 accumulation
  float (*minmax_row)(int is_max, int64_t n, const float* x);    // NaN if any NaN; n >= 1
  // y[j] = reduce_k x[k*stride + j] for j < width; n >= 0 (sum 0, max -inf, min +inf when n = 0).
  void (*reduce_cols)(int op, int64_t n, int64_t width, int64_t stride, const float* x, float* y);
  void (*softmax_row)(int64_t n, const float* x, float* y, int log);
  void (*softmax_bwd_row)(int64_t n, const float* y, const float* dy, float* dx, int log);
  float (*rmsnorm_row)(int64_t n, const float* x, const float* w, float eps, float* y);  // returns rstd
  // dx = rstd*g - x*rstd^3*mean(g*x) with g = dy*w; dwacc (may be null) += dy*x*rstd.
  void (*rmsnorm_bwd_row)(int64_t n, const float* x, const float* w, float rstd, const float* dy, float* dx,
                          float* dwacc);
  // Rotates the first 2*half values of one row; c, s hold `half` values.
  void (*rope_row)(int64_t half, const float* x, float* y, const float* c, const float* s, int interleaved,
                   int inverse);
  void (*swiglu)(int64_t n, const float* g, const float* u, float* out);
  void (*swiglu_bwd)(int64_t n, const float* g, const float* u, const float* dout, float* dg, float* du);
  void (*adamw)(int64_t n, float* p, const float* g, float* m, float* v, const AdamCoef* c);
  void (*f32_to_bf16)(int64_t n, const float* x, uint16_t* y);
  void (*bf16_to_f32)(int64_t n, const uint16_t* x, float* y);
  void (*f32_to_f16)(int64_t n, const float* x, uint16_t* y);
  void (*f16_to_f32)(int64_t n, const uint16_t* x, float* y);
};

extern const OpsTable scalar_ops;
namespace ops_scalar {  // the scalar path's chunk functions (baseline kernels)
void unary(int op, int64_t n, const float* x, float* y);
void unary_grad(int op, int64_t n, const float* x, const float* dy, float* dx);
void binary_row(int op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out);
float binary_one(int op, float a, float b);  // any op, pow included
double sum_row(int64_t n, const float* x);
float minmax_row(int is_max, int64_t n, const float* x);
void reduce_cols(int op, int64_t n, int64_t width, int64_t stride, const float* x, float* y);
void softmax_row(int64_t n, const float* x, float* y, int log);
void softmax_bwd_row(int64_t n, const float* y, const float* dy, float* dx, int log);
float rmsnorm_row(int64_t n, const float* x, const float* w, float eps, float* y);
void rmsnorm_bwd_row(int64_t n, const float* x, const float* w, float rstd, const float* dy, float* dx, float* dwacc);
void rope_row(int64_t half, const float* x, float* y, const float* c, const float* s, int interleaved, int inverse);
void swiglu(int64_t n, const float* g, const float* u, float* out);
void swiglu_bwd(int64_t n, const float* g, const float* u, const float* dout, float* dg, float* du);
void adamw(int64_t n, float* p, const float* g, float* m, float* v, const AdamCoef* c);
void f32_to_bf16(int64_t n, const float* x, uint16_t* y);
void bf16_to_f32(int64_t n, const uint16_t* x, float* y);
void f32_to_f16(int64_t n, const float* x, uint16_t* y);
void f16_to_f32(int64_t n, const uint16_t* x, float* y);
}  // namespace ops_scalar
#if !defined(FATHOM_NO_X86)
extern const OpsTable avx2_ops;
extern const OpsTable avx512_ops;
#endif
const OpsTable& ops_table();  // the table of current_isa()

// ---- threaded entry points (all validation is done by the bind layer)
void unary_f32(int op, int64_t n, const float* x, float* y);
void unary_grad_f32(int op, int64_t n, const float* x, const float* dy, float* dx);
// shape/strides have ndim entries (strides in elements, may be 0 or negative; all reachable offsets valid).
void binary_f32(int op, int ndim, const int64_t* shape, const float* a, const int64_t* as, const float* b,
                const int64_t* bs, float* out);
void reduce_f32(int op, int64_t outer, int64_t n, int64_t inner, const float* x, float* y);
void argmax_f32(int64_t outer, int64_t n, int64_t inner, const float* x, int32_t* idx);
void softmax_f32(int64_t rows, int64_t n, const float* x, float* y, bool log);
void softmax_backward_f32(int64_t rows, int64_t n, const float* y, const float* dy, float* dx, bool log);
void rms_norm_f32(int64_t rows, int64_t n, const float* x, const float* w, float eps, float* y, float* rstd);
void rms_norm_backward_f32(int64_t rows, int64_t n, const float* x, const float* w, const float* rstd,
                           const float* dy, float* dx, float* dw);
void rope_f32(int64_t rows, int64_t D, int64_t rot_dim, const float* x, float* y, const float* cos_t,
              const float* sin_t, const int32_t* pos, bool interleaved, bool inverse);
void swiglu_f32(int64_t n, const float* g, const float* u, float* out);
void swiglu_backward_f32(int64_t n, const float* g, const float* u, const float* dout, float* dg, float* du);
void adamw_f32(int64_t n, float* p, const float* g, float* m, float* v, double lr, double beta1, double beta2,
               double eps, double weight_decay, int64_t step);
void cast_f32_to_bf16(int64_t n, const float* x, uint16_t* y);
void cast_bf16_to_f32(int64_t n, const uint16_t* x, float* y);
void cast_f32_to_f16(int64_t n, const float* x, uint16_t* y);
void cast_f16_to_f32(int64_t n, const uint16_t* x, float* y);
// q8_0 rows to f32: src holds `groups` runs of `cap` rows of ceil(d/32) blocks (34 bytes: f16 scale, 32 int8);
// dst [groups, T, d] = the first T rows of each run, the first d values of each row (x = scale * q, in f32).
void dequant_q8_0_rows(int64_t groups, int64_t T, int64_t cap, int64_t d, const uint8_t* src, float* dst);
// dst (contiguous) = src[(offset + Σ idx·strides) * elem_bytes], elem_bytes in {1, 2, 4, 8}.
void copy_strided(int elem_bytes, int ndim, const int64_t* shape, const uint8_t* src, int64_t offset,
                  const int64_t* strides, uint8_t* dst);

// Minimum elements per thread chunk for streaming kernels; smaller ops run inline.
static const int64_t kOpsGrain = 16384;

// Chunk size for parallel_for over n items of `cost` elements each: at least kOpsGrain elements per chunk,
// about four chunks per thread otherwise (a single chunk runs inline on the caller).
static inline int64_t ops_grain(int64_t n, int64_t cost) {
  if (cost < 1) cost = 1;
  int64_t min_items = (kOpsGrain + cost - 1) / cost;
  int64_t parts = 4 * static_cast<int64_t>(num_threads());
  int64_t g = (n + parts - 1) / parts;
  g = g < min_items ? min_items : g;
  return (g + 15) & ~static_cast<int64_t>(15);
}

// ---- strided iteration (baseline kernels only: never instantiate in an ISA translation unit)
// Visits every element of a coalesced shape sh[0..nd) (row-major, output contiguous) as runs along the last
// dimension: row(len, off, pos) with off[i] the element offset of input i (strides st[i]) and pos the
// output offset. When an input reads the last dimension with a stride other than 0/±1 while another
// dimension has stride ±1 (a transpose), the two dimensions are walked in 32x32 tiles so both sides stay in
// cache. Work is split over the pool.
template <int NI, class Row>
void strided_for(int nd, const int64_t* sh, const int64_t (*st)[64], Row&& row) {
  const int64_t T = 32;
  int64_t total = 1;
  for (int d = 0; d < nd; d++) total *= sh[d];
  if (total == 0) return;
  const int last = nd - 1;
  const int64_t inner = sh[last];
  int k = -1;
  for (int i = 0; i < NI && k < 0; i++) {
    int64_t si = st[i][last] < 0 ? -st[i][last] : st[i][last];
    if (si <= 1 || inner < 2) continue;
    for (int d = 0; d < last; d++)
      if ((st[i][d] == 1 || st[i][d] == -1) && sh[d] >= 2) { k = d; break; }
  }
  if (k < 0) {
    parallel_for(total, ops_grain(total, 1), [&](int64_t lo, int64_t hi) {
      int64_t idx[64], off[NI];
      for (int i = 0; i < NI; i++) off[i] = 0;
      int64_t r = lo;
      for (int d = last; d >= 0; d--) {
        idx[d] = r % sh[d]; r /= sh[d];
        for (int i = 0; i < NI; i++) off[i] += idx[d] * st[i][d];
      }
      int64_t pos = lo;
      while (pos < hi) {
        int64_t len = inner - idx[last];
        if (len > hi - pos) len = hi - pos;
        row(len, off, pos);
        pos += len;
        idx[last] += len;
        for (int i = 0; i < NI; i++) off[i] += len * st[i][last];
        if (idx[last] < inner) break;
        idx[last] = 0;
        for (int i = 0; i < NI; i++) off[i] -= inner * st[i][last];
        for (int d = last - 1; d >= 0; d--) {
          idx[d]++;
          for (int i = 0; i < NI; i++) off[i] += st[i][d];
          if (idx[d] < sh[d]) break;
          idx[d] = 0;
          for (int i = 0; i < NI; i++) off[i] -= sh[d] * st[i][d];
        }
      }
    });
    return;
  }
  int64_t ostride[64];
  ostride[last] = 1;
  for (int d = last - 1; d >= 0; d--) ostride[d] = ostride[d + 1] * sh[d + 1];
  const int64_t kblocks = (sh[k] + T - 1) / T;
  const int64_t outer = total / (sh[k] * inner);
  const int64_t tasks = outer * kblocks;
  parallel_for(tasks, ops_grain(tasks, T * inner), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; t++) {
      int64_t o = t / kblocks, k0 = (t % kblocks) * T;
      int64_t k1 = k0 + T < sh[k] ? k0 + T : sh[k];
      int64_t base[NI], pos0 = 0;
      for (int i = 0; i < NI; i++) base[i] = 0;
      for (int d = last - 1; d >= 0; d--) {  // unravel o over the dimensions other than k and last
        if (d == k) continue;
        int64_t id = o % sh[d]; o /= sh[d];
        pos0 += id * ostride[d];
        for (int i = 0; i < NI; i++) base[i] += id * st[i][d];
      }
      for (int64_t j0 = 0; j0 < inner; j0 += T) {
        int64_t len = inner - j0 < T ? inner - j0 : T;
        for (int64_t kk = k0; kk < k1; kk++) {
          int64_t off[NI];
          for (int i = 0; i < NI; i++) off[i] = base[i] + kk * st[i][k] + j0 * st[i][last];
          row(len, off, pos0 + kk * ostride[k] + j0);
        }
      }
    }
  });
}

}  // namespace fathom
