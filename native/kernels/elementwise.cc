// Elementwise kernels (unary, unary gradients, broadcasting binary, SwiGLU), the scalar path's chunk
// functions for them, the scalar OpsTable and the per-call table selection.
#include <cmath>
#include <cstring>
#include "cpu.h"
#include "kernels/ops.h"
#include "pool.h"

namespace fathom {

const OpsTable& ops_table() {
#if !defined(FATHOM_NO_X86)
  switch (current_isa()) {
    case ISA_AVX512: return avx512_ops;
    case ISA_AVX2: return avx2_ops;
    default: break;
  }
#endif
  return scalar_ops;
}

namespace ops_scalar {
namespace {

const double kInvSqrt2 = 0.70710678118654752440;
const double kInvSqrt2Pi = 0.39894228040143267794;
const double kSqrt2OverPi = 0.79788456080286535588;
const double kGeluC = 0.044715;

inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float sig_deriv(float x) {  // s(1-s) = e / (1+e)^2, e = exp(-|x|)
  float e = std::exp(-std::fabs(x)), d = 1.0f + e;
  return e / (d * d);
}

inline float unary_one(int op, float x) {
  switch (op) {
    case U_NEG: return -x;
    case U_EXP: return std::exp(x);
    case U_LOG: return std::log(x);
    case U_SQRT: return std::sqrt(x);
    case U_RSQRT: return 1.0f / std::sqrt(x);
    case U_SILU: return x / (1.0f + std::exp(-x));
    case U_GELU: return static_cast<float>(0.5 * x * std::erfc(-x * kInvSqrt2));
    case U_GELU_TANH: {
      double d = x, u = kSqrt2OverPi * (d + kGeluC * d * d * d);
      return static_cast<float>(d / (1.0 + std::exp(-2.0 * u)));
    }
    case U_TANH: return std::tanh(x);
    case U_SIGMOID: return sigmoid(x);
    case U_ABS: return std::fabs(x);
    case U_SQUARE: return x * x;
    case U_RECIP: return 1.0f / x;
    default: return x <= 0.0f ? 0.0f : x;  // relu; NaN stays NaN
  }
}

inline float unary_grad_one(int op, float x, float dy) {
  switch (op) {
    case U_NEG: return -dy;
    case U_EXP: return dy * std::exp(x);
    case U_LOG: return dy / x;
    case U_SQRT: return 0.5f * dy / std::sqrt(x);
    case U_RSQRT: return -0.5f * dy * (1.0f / std::sqrt(x)) / x;
    case U_SILU: return dy * (sigmoid(x) + x * sig_deriv(x));
    case U_GELU: {
      double d = x;
      double g = 0.5 * std::erfc(-d * kInvSqrt2) + d * kInvSqrt2Pi * std::exp(-0.5 * d * d);
      return static_cast<float>(dy * g);
    }
    case U_GELU_TANH: {
      double d = x, u = kSqrt2OverPi * (d + kGeluC * d * d * d);
      double du = 2.0 * kSqrt2OverPi * (1.0 + 3.0 * kGeluC * d * d);
      double s = 1.0 / (1.0 + std::exp(-2.0 * u)), e = std::exp(-2.0 * std::fabs(u));
      return static_cast<float>(dy * (s + d * (e / ((1.0 + e) * (1.0 + e))) * du));
    }
    case U_TANH: {
      float e = std::exp(-2.0f * std::fabs(x)), d = 1.0f + e;
      return dy * (4.0f * e / (d * d));
    }
    case U_SIGMOID: return dy * sig_deriv(x);
    case U_ABS: return x > 0.0f ? dy : x < 0.0f ? -dy : 0.0f;
    case U_SQUARE: return 2.0f * x * dy;
    case U_RECIP: return -(dy / (x * x));
    default: return x > 0.0f ? dy : 0.0f;
  }
}

}  // namespace

void unary(int op, int64_t n, const float* x, float* y) {
  for (int64_t i = 0; i < n; i++) y[i] = unary_one(op, x[i]);
}

void unary_grad(int op, int64_t n, const float* x, const float* dy, float* dx) {
  for (int64_t i = 0; i < n; i++) dx[i] = unary_grad_one(op, x[i], dy[i]);
}

float binary_one(int op, float a, float b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAX: return (a != a || b != b) ? a + b : (a > b ? a : b);
    case B_MIN: return (a != a || b != b) ? a + b : (a < b ? a : b);
    default: return std::pow(a, b);
  }
}

void binary_row(int op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  switch (op) {
#define B_CASE(OP, EXPR) \
  case OP: for (int64_t i = 0; i < n; i++) { float u = a[i * sa], v = b[i * sb]; out[i] = (EXPR); } break;
    B_CASE(B_ADD, u + v)
    B_CASE(B_SUB, u - v)
    B_CASE(B_MUL, u * v)
    B_CASE(B_DIV, u / v)
#undef B_CASE
    default: for (int64_t i = 0; i < n; i++) out[i] = binary_one(op, a[i * sa], b[i * sb]); break;
  }
}

void swiglu(int64_t n, const float* g, const float* u, float* out) {
  for (int64_t i = 0; i < n; i++) out[i] = g[i] * u[i] / (1.0f + std::exp(-g[i]));
}

void swiglu_bwd(int64_t n, const float* g, const float* u, const float* dout, float* dg, float* du) {
  for (int64_t i = 0; i < n; i++) {
    float gv = g[i], uv = u[i], d = dout[i];
    float s = sigmoid(gv);
    du[i] = d * (gv * s);
    dg[i] = d * uv * (s + gv * sig_deriv(gv));
  }
}

}  // namespace ops_scalar

extern const OpsTable scalar_ops = {
    ops_scalar::unary, ops_scalar::unary_grad, ops_scalar::binary_row, ops_scalar::sum_row, ops_scalar::minmax_row,
    ops_scalar::reduce_cols, ops_scalar::softmax_row, ops_scalar::softmax_bwd_row, ops_scalar::rmsnorm_row,
    ops_scalar::rmsnorm_bwd_row, ops_scalar::rope_row, ops_scalar::swiglu, ops_scalar::swiglu_bwd, ops_scalar::adamw,
    ops_scalar::f32_to_bf16, ops_scalar::bf16_to_f32, ops_scalar::f32_to_f16, ops_scalar::f16_to_f32};

// ---------------------------------------------------------------- threaded entry points

void unary_f32(int op, int64_t n, const float* x, float* y) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.unary(op, e - b, x + b, y + b); });
}

void unary_grad_f32(int op, int64_t n, const float* x, const float* dy, float* dx) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.unary_grad(op, e - b, x + b, dy + b, dx + b); });
}

void swiglu_f32(int64_t n, const float* g, const float* u, float* out) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1), [&](int64_t b, int64_t e) { T.swiglu(e - b, g + b, u + b, out + b); });
}

void swiglu_backward_f32(int64_t n, const float* g, const float* u, const float* dout, float* dg, float* du) {
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 1),
               [&](int64_t b, int64_t e) { T.swiglu_bwd(e - b, g + b, u + b, dout + b, dg + b, du + b); });
}

namespace {
const int kMaxDims = 64;
}  // namespace

void binary_f32(int op, int ndim, const int64_t* shape, const float* a, const int64_t* as, const float* b,
                const int64_t* bs, float* out) {
  if (ndim > kMaxDims) return;  // rejected by the binding
  // Drop size-1 dimensions, merge dimensions contiguous in both inputs.
  int64_t sh[kMaxDims], st[2][kMaxDims];
  int nd = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    if (nd > 0 && st[0][nd - 1] == as[d] * shape[d] && st[1][nd - 1] == bs[d] * shape[d]) {
      sh[nd - 1] *= shape[d]; st[0][nd - 1] = as[d]; st[1][nd - 1] = bs[d];
    } else {
      sh[nd] = shape[d]; st[0][nd] = as[d]; st[1][nd] = bs[d]; nd++;
    }
  }
  if (nd == 0) { sh[0] = 1; st[0][0] = 0; st[1][0] = 0; nd = 1; }
  const OpsTable& T = ops_table();
  const int64_t ia = st[0][nd - 1], ib = st[1][nd - 1];
  const bool vec = op != B_POW && (ia == 0 || ia == 1) && (ib == 0 || ib == 1) && (ia | ib);
  strided_for<2>(nd, sh, st, [&](int64_t len, const int64_t* off, int64_t pos) {
    if (vec) T.binary_row(op, len, a + off[0], ia, b + off[1], ib, out + pos);
    else ops_scalar::binary_row(op, len, a + off[0], ia, b + off[1], ib, out + pos);
  });
}

}  // namespace fathom
