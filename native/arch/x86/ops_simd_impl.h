// Shared body of the SIMD elementwise / reduction / norm kernels. Included (inside a namespace) by
// avx512/ops_avx512.cc and avx2/ops_avx2.cc after they define the vector shims: VF (W floats), VM (mask),
// VI, VD and v_* functions. Plain static functions only: no templates, no std library.
//
// Math: exp / log (Cephes-style, ~1 ulp), tanh (Cephes polynomial below 0.625, else via exp), erfc
// (N. Juffa's single-precision approximation, ~3 ulp), all with special values (±inf, NaN, 0) handled.

// ---------------------------------------------------------------- math
static inline VF v_exp(VF x) {
  VF xc = v_min(v_max(x, v_set1(-104.0f)), v_set1(89.0f));
  VF fx = v_round(v_mul(xc, v_set1(1.44269504088896341f)));
  VF r = v_fnma(fx, v_set1(0.693359375f), xc);
  r = v_fnma(fx, v_set1(-2.12194440e-4f), r);
  VF p = v_set1(1.9875691500e-4f);
  p = v_fma(p, r, v_set1(1.3981999507e-3f));
  p = v_fma(p, r, v_set1(8.3334519073e-3f));
  p = v_fma(p, r, v_set1(4.1665795894e-2f));
  p = v_fma(p, r, v_set1(1.6666665459e-1f));
  p = v_fma(p, r, v_set1(5.0000001201e-1f));
  VF y = v_add(v_fma(p, v_mul(r, r), r), v_set1(1.0f));
  VI n = v_f2i(fx);
  VI n1 = vi_srai1(n);
  VI n2 = vi_sub(n, n1);
  y = v_mul(v_mul(y, v_pow2i(n1)), v_pow2i(n2));
  return v_sel(v_isnan(x), x, y);
}

static inline VF v_log(VF x) {
  VM sub = v_lt(x, v_set1(1.17549435e-38f));
  VF xs = v_sel(sub, v_mul(x, v_set1(8388608.0f)), x);
  VF e = v_i2f(v_exponent(xs));
  e = v_sel(sub, v_sub(e, v_set1(23.0f)), e);
  VF m = v_mantissa_half(xs);
  VM small = v_lt(m, v_set1(0.707106781186547524f));
  e = v_sel(small, v_sub(e, v_set1(1.0f)), e);
  m = v_sub(v_sel(small, v_add(m, m), m), v_set1(1.0f));
  VF z = v_mul(m, m);
  VF p = v_set1(7.0376836292e-2f);
  p = v_fma(p, m, v_set1(-1.1514610310e-1f));
  p = v_fma(p, m, v_set1(1.1676998740e-1f));
  p = v_fma(p, m, v_set1(-1.2420140846e-1f));
  p = v_fma(p, m, v_set1(1.4249322787e-1f));
  p = v_fma(p, m, v_set1(-1.6668057665e-1f));
  p = v_fma(p, m, v_set1(2.0000714765e-1f));
  p = v_fma(p, m, v_set1(-2.4999993993e-1f));
  p = v_fma(p, m, v_set1(3.3333331174e-1f));
  VF y = v_mul(v_mul(p, m), z);
  y = v_fma(e, v_set1(-2.12194440e-4f), y);
  y = v_fma(z, v_set1(-0.5f), y);
  VF r = v_add(m, y);
  r = v_fma(e, v_set1(0.693359375f), r);
  const VF inf = v_set1(__builtin_inff());
  r = v_sel(v_eq(x, v_zero()), v_neg(inf), r);
  r = v_sel(v_lt(x, v_zero()), v_set1(__builtin_nanf("")), r);
  r = v_sel(v_eq(x, inf), inf, r);
  return v_sel(v_isnan(x), x, r);
}

// sigmoid'(x) = s(1-s) = e / (1+e)² with e = exp(-|x|): no cancellation, no overflow.
static inline VF v_sig_deriv(VF x) {
  VF e = v_exp(v_neg(v_abs(x)));
  VF d = v_add(v_set1(1.0f), e);
  return v_div(e, v_mul(d, d));
}

// sigmoid(x) and sigmoid'(x) from one exp and one division.
static inline void v_sig_both(VF x, VF* s, VF* sd) {
  VF e = v_exp(v_neg(v_abs(x)));
  VF r = v_div(v_set1(1.0f), v_add(v_set1(1.0f), e));
  VF er = v_mul(e, r);
  *s = v_sel(v_lt(x, v_zero()), er, r);
  *sd = v_mul(er, r);
}

static inline VF v_sigmoid(VF x) { return v_div(v_set1(1.0f), v_add(v_set1(1.0f), v_exp(v_neg(x)))); }

static inline VF v_tanh(VF x) {
  VF a = v_abs(x);
  VF z = v_mul(x, x);
  VF p = v_set1(-5.70498872745e-3f);
  p = v_fma(p, z, v_set1(2.06390887954e-2f));
  p = v_fma(p, z, v_set1(-5.37397155531e-2f));
  p = v_fma(p, z, v_set1(1.33314422036e-1f));
  p = v_fma(p, z, v_set1(-3.33332819422e-1f));
  VF small = v_fma(v_mul(p, z), x, x);
  VF e = v_exp(v_add(a, a));
  VF big = v_sub(v_set1(1.0f), v_div(v_set1(2.0f), v_add(e, v_set1(1.0f))));
  big = v_or(big, v_signbit(x));
  return v_sel(v_lt(a, v_set1(0.625f)), small, big);
}

// erfc(a) for a >= 0 (NaN -> NaN), given a² = sq - res exactly (sq the rounded square, res the residual).
static inline VF v_erfc_pos(VF a, VF sq, VF res) {
  const VF one = v_set1(1.0f), two = v_set1(2.0f);
  VF m = v_sub(a, two), p = v_add(a, two);
  VF r = v_div(one, p);
  VF q = v_mul(m, r);
  VF t = v_fma(v_add(q, one), v_set1(-2.0f), a);
  VF e = v_fma(q, v_neg(a), t);
  q = v_fma(r, e, q);
  p = v_set1(-0x1.a4a000p-12f);
  p = v_fma(p, q, v_set1(-0x1.42a260p-10f));
  p = v_fma(p, q, v_set1(0x1.585714p-10f));
  p = v_fma(p, q, v_set1(0x1.1adcc4p-07f));
  p = v_fma(p, q, v_set1(-0x1.081b82p-07f));
  p = v_fma(p, q, v_set1(-0x1.bc0b6ap-05f));
  p = v_fma(p, q, v_set1(0x1.4ffc46p-03f));
  p = v_fma(p, q, v_set1(-0x1.540840p-03f));
  p = v_fma(p, q, v_set1(-0x1.7bf616p-04f));
  p = v_fma(p, q, v_set1(0x1.1ba03ap-02f));
  VF d = v_fma(two, a, one);
  r = v_div(one, d);
  q = v_fma(p, r, r);
  e = v_fma(v_fma(q, v_neg(a), v_set1(0.5f)), two, v_sub(p, q));
  r = v_fma(e, r, q);
  e = v_exp(v_neg(sq));
  r = v_fma(r, e, v_mul(v_mul(r, e), res));
  r = v_sel(v_gt(a, v_set1(10.0546875f)), v_zero(), r);
  return v_sel(v_isnan(a), a, r);
}

// x²/2 = sq - res exactly (barring underflow).
static inline void v_half_square(VF x, VF* sq, VF* res) {
  VF p = v_mul(x, x);
  *sq = v_mul(v_set1(0.5f), p);
  *res = v_mul(v_set1(-0.5f), v_fms(x, x, p));
}

// Standard normal CDF Φ(x) = 0.5 erfc(-x/√2), accurate in both tails.
static inline VF v_phi(VF x, VF sq, VF res) {
  VF c = v_mul(v_set1(0.5f), v_erfc_pos(v_mul(v_abs(x), v_set1(0.70710678118654752f)), sq, res));
  return v_sel(v_lt(x, v_zero()), c, v_sub(v_set1(1.0f), c));
}

// exp(-x²/2) / √(2π)
static inline VF v_normal_pdf(VF sq, VF res) {
  VF e = v_exp(v_neg(sq));
  return v_mul(v_set1(0.39894228040143268f), v_fma(e, res, e));
}

static const float kSqrt2OverPi = 0.79788456080286536f;
static const float kGeluC = 0.044715f;

// x * sigmoid(2u), u = √(2/π)(x + 0.044715x³): equals 0.5x(1 + tanh u) without cancellation for x < 0.
static inline VF v_gelu_tanh(VF x) {
  VF u = v_mul(v_set1(kSqrt2OverPi), v_fma(v_mul(v_set1(kGeluC), x), v_mul(x, x), x));
  return v_div(x, v_add(v_set1(1.0f), v_exp(v_mul(v_set1(-2.0f), u))));
}

static inline VF v_unary(int op, VF x) {
  switch (op) {
    case U_NEG: return v_neg(x);
    case U_EXP: return v_exp(x);
    case U_LOG: return v_log(x);
    case U_SQRT: return v_sqrt(x);
    case U_RSQRT: return v_div(v_set1(1.0f), v_sqrt(x));
    case U_SILU: return v_div(x, v_add(v_set1(1.0f), v_exp(v_neg(x))));
    case U_GELU: {
      VF sq, res;
      v_half_square(x, &sq, &res);
      return v_mul(x, v_phi(x, sq, res));
    }
    case U_GELU_TANH: return v_gelu_tanh(x);
    case U_TANH: return v_tanh(x);
    case U_SIGMOID: return v_sigmoid(x);
    case U_ABS: return v_abs(x);
    case U_SQUARE: return v_mul(x, x);
    case U_RECIP: return v_div(v_set1(1.0f), x);
    default: return v_sel(v_le(x, v_zero()), v_zero(), x);  // relu (NaN stays NaN)
  }
}

static inline VF v_unary_grad(int op, VF x, VF dy) {
  const VF one = v_set1(1.0f);
  switch (op) {
    case U_NEG: return v_neg(dy);
    case U_EXP: return v_mul(dy, v_exp(x));
    case U_LOG: return v_div(dy, x);
    case U_SQRT: return v_div(v_mul(v_set1(0.5f), dy), v_sqrt(x));
    case U_RSQRT: {  // -0.5 x^-1.5
      VF r = v_div(one, v_sqrt(x));
      return v_mul(v_mul(v_set1(-0.5f), dy), v_div(r, x));
    }
    case U_SILU: {  // s + x s(1-s)
      VF sg, sd;
      v_sig_both(x, &sg, &sd);
      return v_mul(dy, v_fma(x, sd, sg));
    }
    case U_GELU: {  // Φ(x) + x φ(x)
      VF sq, res;
      v_half_square(x, &sq, &res);
      return v_mul(dy, v_fma(x, v_normal_pdf(sq, res), v_phi(x, sq, res)));
    }
    case U_GELU_TANH: {  // s + x s (1-s) 2u', s = sigmoid(2u)
      VF x2 = v_mul(x, x);
      VF u = v_mul(v_set1(kSqrt2OverPi), v_fma(v_mul(v_set1(kGeluC), x), x2, x));
      VF du = v_mul(v_set1(2.0f * kSqrt2OverPi), v_fma(v_set1(3.0f * kGeluC), x2, one));
      VF sg, sd;
      v_sig_both(v_add(u, u), &sg, &sd);
      return v_mul(dy, v_fma(v_mul(x, sd), du, sg));
    }
    case U_TANH: {  // sech² x = 4e / (1+e)², e = exp(-2|x|)
      VF a = v_abs(x);
      VF e = v_exp(v_mul(v_set1(-2.0f), a));
      VF d = v_add(one, e);
      return v_mul(dy, v_div(v_mul(v_set1(4.0f), e), v_mul(d, d)));
    }
    case U_SIGMOID: return v_mul(dy, v_sig_deriv(x));
    case U_ABS:
      return v_sel(v_gt(x, v_zero()), dy, v_sel(v_lt(x, v_zero()), v_neg(dy), v_zero()));
    case U_SQUARE: return v_mul(v_add(x, x), dy);
    case U_RECIP: return v_neg(v_div(dy, v_mul(x, x)));
    default: return v_sel(v_gt(x, v_zero()), dy, v_zero());  // relu
  }
}

// ---------------------------------------------------------------- elementwise
#define OPS_LOOP1(N, ...)                                                    \
  do {                                                                       \
    int64_t i_ = 0;                                                          \
    for (; i_ + W <= (N); i_ += W) { const int64_t cnt_ = W; __VA_ARGS__; }  \
    if (i_ < (N)) { const int64_t cnt_ = (N) - i_; __VA_ARGS__; }            \
  } while (0)
// Inside BODY: LD(p) loads W (or the tail) floats at p + i_, STV(p, v) stores.
#define LD(p) (cnt_ == W ? v_ld((p) + i_) : v_ldm((p) + i_, cnt_))
#define STV(p, v) (cnt_ == W ? v_st((p) + i_, (v)) : v_stm((p) + i_, (v), cnt_))

void unary(int op, int64_t n, const float* x, float* y) {
  switch (op) {
#define U_CASE(OP) case OP: OPS_LOOP1(n, { VF v = LD(x); STV(y, v_unary(OP, v)); }); break;
    U_CASE(U_NEG) U_CASE(U_EXP) U_CASE(U_LOG) U_CASE(U_SQRT) U_CASE(U_RSQRT) U_CASE(U_SILU) U_CASE(U_GELU)
    U_CASE(U_GELU_TANH) U_CASE(U_TANH) U_CASE(U_SIGMOID) U_CASE(U_ABS) U_CASE(U_SQUARE) U_CASE(U_RECIP)
    U_CASE(U_RELU)
#undef U_CASE
    default: break;
  }
}

void unary_grad(int op, int64_t n, const float* x, const float* dy, float* dx) {
  switch (op) {
#define U_CASE(OP) case OP: OPS_LOOP1(n, { VF v = LD(x); VF g = LD(dy); STV(dx, v_unary_grad(OP, v, g)); }); break;
    U_CASE(U_NEG) U_CASE(U_EXP) U_CASE(U_LOG) U_CASE(U_SQRT) U_CASE(U_RSQRT) U_CASE(U_SILU) U_CASE(U_GELU)
    U_CASE(U_GELU_TANH) U_CASE(U_TANH) U_CASE(U_SIGMOID) U_CASE(U_ABS) U_CASE(U_SQUARE) U_CASE(U_RECIP)
    U_CASE(U_RELU)
#undef U_CASE
    default: break;
  }
}

static inline VF v_binary(int op, VF a, VF b) {
  switch (op) {
    case B_ADD: return v_add(a, b);
    case B_SUB: return v_sub(a, b);
    case B_MUL: return v_mul(a, b);
    case B_DIV: return v_div(a, b);
    case B_MAX: return v_sel(m_or(v_isnan(a), v_isnan(b)), v_add(a, b), v_max(a, b));
    default: return v_sel(m_or(v_isnan(a), v_isnan(b)), v_add(a, b), v_min(a, b));
  }
}

#define BIN_ROW(OP)                                                                       \
  if (sa && sb) {                                                                         \
    int64_t i = 0;                                                                        \
    for (; i + 2 * W <= n; i += 2 * W) {                                                  \
      VF r0 = v_binary(OP, v_ld(a + i), v_ld(b + i));                                     \
      VF r1 = v_binary(OP, v_ld(a + i + W), v_ld(b + i + W));                             \
      v_st(out + i, r0); v_st(out + i + W, r1);                                           \
    }                                                                                     \
    for (; i < n; i += W) {                                                               \
      int64_t c = n - i < W ? n - i : W;                                                  \
      v_stm(out + i, v_binary(OP, v_ldm(a + i, c), v_ldm(b + i, c)), c);                  \
    }                                                                                     \
  } else if (sa) {                                                                        \
    VF bv = v_set1(b[0]);                                                                 \
    OPS_LOOP1(n, { VF v = LD(a); STV(out, v_binary(OP, v, bv)); });                       \
  } else {                                                                                \
    VF av = v_set1(a[0]);                                                                 \
    OPS_LOOP1(n, { VF v = LD(b); STV(out, v_binary(OP, av, v)); });                       \
  }

void binary_row(int op, int64_t n, const float* a, int64_t sa, const float* b, int64_t sb, float* out) {
  switch (op) {
    case B_ADD: BIN_ROW(B_ADD) break;
    case B_SUB: BIN_ROW(B_SUB) break;
    case B_MUL: BIN_ROW(B_MUL) break;
    case B_DIV: BIN_ROW(B_DIV) break;
    case B_MAX: BIN_ROW(B_MAX) break;
    default: BIN_ROW(B_MIN) break;
  }
}
#undef BIN_ROW

// ---------------------------------------------------------------- reductions
double sum_row(int64_t n, const float* x) {
  VD a0 = vd_zero(), a1 = vd_zero(), a2 = vd_zero(), a3 = vd_zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    VF u = v_ld(x + i), w = v_ld(x + i + W);
    a0 = vd_add(a0, vd_lo(u)); a1 = vd_add(a1, vd_hi(u));
    a2 = vd_add(a2, vd_lo(w)); a3 = vd_add(a3, vd_hi(w));
  }
  for (; i < n; i += W) {
    int64_t c = n - i < W ? n - i : W;
    VF u = v_ldm(x + i, c);
    a0 = vd_add(a0, vd_lo(u)); a1 = vd_add(a1, vd_hi(u));
  }
  return vd_hsum(vd_add(vd_add(a0, a1), vd_add(a2, a3)));
}

float minmax_row(int is_max, int64_t n, const float* x) {
  VF a0 = v_set1(x[0]), a1 = a0;
  VM nan = m_none();
  float t = x[0];
  bool tnan = false;
  int64_t i = 0;
  if (is_max) {
    for (; i + 2 * W <= n; i += 2 * W) {
      VF u = v_ld(x + i), w = v_ld(x + i + W);
      nan = m_or(nan, m_or(v_isnan(u), v_isnan(w)));
      a0 = v_max(a0, u); a1 = v_max(a1, w);
    }
    for (; i < n; i++) { tnan |= x[i] != x[i]; t = x[i] > t ? x[i] : t; }
    if (m_any(nan) || tnan) return __builtin_nanf("");
    float r = v_hmax(v_max(a0, a1));
    return t > r ? t : r;
  }
  for (; i + 2 * W <= n; i += 2 * W) {
    VF u = v_ld(x + i), w = v_ld(x + i + W);
    nan = m_or(nan, m_or(v_isnan(u), v_isnan(w)));
    a0 = v_min(a0, u); a1 = v_min(a1, w);
  }
  for (; i < n; i++) { tnan |= x[i] != x[i]; t = x[i] < t ? x[i] : t; }
  if (m_any(nan) || tnan) return __builtin_nanf("");
  float r = v_hmin(v_min(a0, a1));
  return t < r ? t : r;
}

// Columns go in slabs of up to 256 with the accumulators in an L1-resident buffer; every column still sums
// its rows in order (f64), as the scalar path does.
void reduce_cols(int op, int64_t n, int64_t width, int64_t stride, const float* x, float* y) {
  const int64_t S = 256;
  for (int64_t j0 = 0; j0 < width; j0 += S) {
    const int64_t w = width - j0 < S ? width - j0 : S;
    if (op == R_SUM) {
      double acc[S];
      for (int64_t j = 0; j < w; j++) acc[j] = 0.0;
      const float* p = x + j0;
      for (int64_t k = 0; k < n; k++, p += stride) {
        for (int64_t j = 0; j < w; j += W) {
          int64_t c = w - j < W ? w - j : W;
          if (c == W) {
            VF u = v_ld(p + j);
            vd_st(acc + j, vd_add(vd_ld(acc + j), vd_lo(u)));
            vd_st(acc + j + W / 2, vd_add(vd_ld(acc + j + W / 2), vd_hi(u)));
          } else {
            for (int64_t l = 0; l < c; l++) acc[j + l] += p[j + l];
          }
        }
      }
      for (int64_t j = 0; j < w; j++) y[j0 + j] = static_cast<float>(acc[j]);
      continue;
    }
    const bool is_max = op == R_MAX;
    float acc[S];
    VM nan[S / W];
    for (int64_t j = 0; j < w; j++) acc[j] = is_max ? -__builtin_inff() : __builtin_inff();
    for (int64_t q = 0; q < S / W; q++) nan[q] = m_none();
    const float* p = x + j0;
    for (int64_t k = 0; k < n; k++, p += stride) {
      for (int64_t j = 0; j < w; j += W) {
        int64_t c = w - j < W ? w - j : W;
        VF u = c == W ? v_ld(p + j) : v_ldm(p + j, c);
        VF a = c == W ? v_ld(acc + j) : v_ldm(acc + j, c);
        nan[j / W] = m_or(nan[j / W], v_isnan(u));
        a = is_max ? v_max(a, u) : v_min(a, u);
        if (c == W) v_st(acc + j, a); else v_stm(acc + j, a, c);
      }
    }
    for (int64_t j = 0; j < w; j += W) {
      int64_t c = w - j < W ? w - j : W;
      VF a = v_sel(nan[j / W], v_set1(__builtin_nanf("")), c == W ? v_ld(acc + j) : v_ldm(acc + j, c));
      if (c == W) v_st(y + j0 + j, a); else v_stm(y + j0 + j, a, c);
    }
  }
}

// ---------------------------------------------------------------- softmax
void softmax_row(int64_t n, const float* x, float* y, int log) {
  if (n <= 0) return;
  // row max (a NaN anywhere makes the whole row NaN through the sum)
  VF a0 = v_set1(-__builtin_inff()), a1 = a0;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) { a0 = v_max(a0, v_ld(x + i)); a1 = v_max(a1, v_ld(x + i + W)); }
  float mx = v_hmax(v_max(a0, a1));
  for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  const VF m = v_set1(mx);
  VF s0 = v_zero(), s1 = v_zero();
  i = 0;
  if (log) {
    for (; i + 2 * W <= n; i += 2 * W) {
      s0 = v_add(s0, v_exp(v_sub(v_ld(x + i), m)));
      s1 = v_add(s1, v_exp(v_sub(v_ld(x + i + W), m)));
    }
    for (; i < n; i += W) {
      int64_t c = n - i < W ? n - i : W;
      s0 = v_add(s0, v_keep(v_exp(v_sub(v_ldm(x + i, c), m)), c));
    }
    const VF l = v_set1(logf(v_hsum(v_add(s0, s1))));
    OPS_LOOP1(n, { STV(y, v_sub(v_sub(LD(x), m), l)); });
    return;
  }
  for (; i + 2 * W <= n; i += 2 * W) {
    VF e0 = v_exp(v_sub(v_ld(x + i), m)), e1 = v_exp(v_sub(v_ld(x + i + W), m));
    v_st(y + i, e0); v_st(y + i + W, e1);
    s0 = v_add(s0, e0); s1 = v_add(s1, e1);
  }
  for (; i < n; i += W) {
    int64_t c = n - i < W ? n - i : W;
    VF e = v_keep(v_exp(v_sub(v_ldm(x + i, c), m)), c);
    v_stm(y + i, e, c);
    s0 = v_add(s0, e);
  }
  const VF inv = v_set1(1.0f / v_hsum(v_add(s0, s1)));
  OPS_LOOP1(n, { STV(y, v_mul(LD(y), inv)); });
}

void softmax_bwd_row(int64_t n, const float* y, const float* dy, float* dx, int log) {
  // Σ dy (log) or Σ dy*y, accumulated in f64.
  VD a0 = vd_zero(), a1 = vd_zero(), a2 = vd_zero(), a3 = vd_zero();
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    VF u = v_ld(dy + i), w = v_ld(dy + i + W);
    if (!log) { u = v_mul(u, v_ld(y + i)); w = v_mul(w, v_ld(y + i + W)); }
    a0 = vd_add(a0, vd_lo(u)); a1 = vd_add(a1, vd_hi(u));
    a2 = vd_add(a2, vd_lo(w)); a3 = vd_add(a3, vd_hi(w));
  }
  for (; i < n; i += W) {
    int64_t c = n - i < W ? n - i : W;
    VF u = v_ldm(dy + i, c);
    if (!log) u = v_mul(u, v_ldm(y + i, c));
    a0 = vd_add(a0, vd_lo(u)); a1 = vd_add(a1, vd_hi(u));
  }
  const VF s = v_set1(static_cast<float>(vd_hsum(vd_add(vd_add(a0, a1), vd_add(a2, a3)))));
  if (log) OPS_LOOP1(n, { VF e = v_exp(LD(y)); STV(dx, v_fnma(e, s, LD(dy))); });
  else OPS_LOOP1(n, { VF yv = LD(y); STV(dx, v_mul(yv, v_sub(LD(dy), s))); });
}

// ---------------------------------------------------------------- RMSNorm
float rmsnorm_row(int64_t n, const float* x, const float* w, float eps, float* y) {
  VD a0 = vd_zero(), a1 = vd_zero(), a2 = vd_zero(), a3 = vd_zero();
  int64_t i = 0;
  // As ggml's rms_norm: f32 squares summed in f64, then mean, + eps, sqrt and 1/x in f32 (bit-compatible with llama.cpp).
  for (; i + 2 * W <= n; i += 2 * W) {
    VF u = v_ld(x + i), t = v_ld(x + i + W);
    u = v_mul(u, u); t = v_mul(t, t);
    a0 = vd_add(a0, vd_lo(u)); a1 = vd_add(a1, vd_hi(u));
    a2 = vd_add(a2, vd_lo(t)); a3 = vd_add(a3, vd_hi(t));
  }
  for (; i < n; i += W) {
    int64_t c = n - i < W ? n - i : W;
    VF u = v_ldm(x + i, c);
    u = v_mul(u, u);
    a0 = vd_add(a0, vd_lo(u)); a1 = vd_add(a1, vd_hi(u));
  }
  double ss = vd_hsum(vd_add(vd_add(a0, a1), vd_add(a2, a3)));
  const float mean = static_cast<float>(ss / static_cast<double>(n));
  float rstd = 1.0f / __builtin_sqrtf(mean + eps);
  const VF r = v_set1(rstd);
  if (w) OPS_LOOP1(n, { VF v = v_mul(LD(x), r); STV(y, v_mul(v, LD(w))); });
  else OPS_LOOP1(n, { STV(y, v_mul(LD(x), r)); });
  return rstd;
}

void rmsnorm_bwd_row(int64_t n, const float* x, const float* w, float rstd, const float* dy, float* dx, float* dwacc) {
  VD a0 = vd_zero(), a1 = vd_zero();
  OPS_LOOP1(n, {
    VF g = LD(dy);
    if (w) g = v_mul(g, LD(w));
    VF gx = v_mul(g, LD(x));
    a0 = vd_add(a0, vd_lo(gx)); a1 = vd_add(a1, vd_hi(gx));
  });
  double dot = vd_hsum(vd_add(a0, a1));
  double rd = rstd;
  const VF k = v_set1(static_cast<float>(rd * rd * rd * dot / static_cast<double>(n)));
  const VF r = v_set1(rstd);
  OPS_LOOP1(n, {
    VF d = LD(dy), xv = LD(x);
    VF g = w ? v_mul(d, LD(w)) : d;
    STV(dx, v_fnma(k, xv, v_mul(r, g)));
    if (dwacc) STV(dwacc, v_fma(d, v_mul(xv, r), LD(dwacc)));
  });
}

// ---------------------------------------------------------------- RoPE
void rope_row(int64_t half, const float* x, float* y, const float* c, const float* s, int interleaved, int inverse) {
  int64_t i = 0;
  if (!interleaved) {
    const float* x2 = x + half;
    float* y2 = y + half;
    if (inverse) {
      OPS_LOOP1(half, {
        VF a = LD(x), b = LD(x2), cv = LD(c), sv = LD(s);
        VF r1 = v_fma(a, cv, v_mul(b, sv));
        VF r2 = v_fms(b, cv, v_mul(a, sv));
        STV(y, r1); STV(y2, r2);
      });
    } else {
      OPS_LOOP1(half, {
        VF a = LD(x), b = LD(x2), cv = LD(c), sv = LD(s);
        VF r1 = v_fms(a, cv, v_mul(b, sv));
        VF r2 = v_fma(b, cv, v_mul(a, sv));
        STV(y, r1); STV(y2, r2);
      });
    }
    return;
  }
  // interleaved: W/2 pairs per vector
  for (; i + W / 2 <= half; i += W / 2) {
    VF v = v_ld(x + 2 * i);
    VF cv = v_ld_dup_pairs(c + i), sv = v_ld_dup_pairs(s + i);
    if (inverse) sv = v_neg(sv);
    v_st(y + 2 * i, v_fmaddsub(v, cv, v_mul(v_swap_pairs(v), sv)));
  }
  for (; i < half; i++) {   // as the vector lanes (fmaddsub): the same bits whatever the width
    float a = x[2 * i], b = x[2 * i + 1], cv = c[i], sv = inverse ? -s[i] : s[i];
    y[2 * i] = __builtin_fmaf(a, cv, -(b * sv));
    y[2 * i + 1] = __builtin_fmaf(b, cv, a * sv);
  }
}

// ---------------------------------------------------------------- SwiGLU, AdamW
void swiglu(int64_t n, const float* g, const float* u, float* out) {
  OPS_LOOP1(n, {
    VF gv = LD(g), uv = LD(u);
    STV(out, v_div(v_mul(gv, uv), v_add(v_set1(1.0f), v_exp(v_neg(gv)))));
  });
}

void swiglu_bwd(int64_t n, const float* g, const float* u, const float* dout, float* dg, float* du) {
  OPS_LOOP1(n, {
    VF gv = LD(g), uv = LD(u), d = LD(dout);
    VF s, sd;
    v_sig_both(gv, &s, &sd);
    VF gs = v_mul(gv, s);
    VF dgv = v_mul(v_mul(d, uv), v_fma(gv, sd, s));
    STV(du, v_mul(d, gs));
    STV(dg, dgv);
  });
}

void adamw(int64_t n, float* p, const float* g, float* m, float* v, const AdamCoef* c) {
  const VF b1 = v_set1(c->beta1), ob1 = v_set1(c->one_minus_beta1), b2 = v_set1(c->beta2),
           ob2 = v_set1(c->one_minus_beta2), decay = v_set1(c->decay), step = v_set1(c->step_size),
           sbc2 = v_set1(c->sqrt_bc2), eps = v_set1(c->eps);
  OPS_LOOP1(n, {
    VF gv = LD(g);
    VF mv = v_fma(b1, LD(m), v_mul(ob1, gv));
    VF vv = v_fma(b2, LD(v), v_mul(ob2, v_mul(gv, gv)));
    VF denom = v_add(v_div(v_sqrt(vv), sbc2), eps);
    VF pv = v_mul(LD(p), decay);
    pv = v_fnma(step, v_div(mv, denom), pv);
    STV(m, mv); STV(v, vv); STV(p, pv);
  });
}

#undef LD
#undef STV
#undef OPS_LOOP1
