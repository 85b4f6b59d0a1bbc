// AdamW (PyTorch semantics: decoupled weight decay, bias-corrected moments), in place on p, m, v.
#include <cmath>
#include "kernels/ops.h"
#include "pool.h"

namespace fathom {
namespace ops_scalar {

void adamw(int64_t n, float* p, const float* g, float* m, float* v, const AdamCoef* c) {
  for (int64_t i = 0; i < n; i++) {
    float gv = g[i];
    float mv = c->beta1 * m[i] + c->one_minus_beta1 * gv;
    float vv = c->beta2 * v[i] + c->one_minus_beta2 * (gv * gv);
    float denom = std::sqrt(vv) / c->sqrt_bc2 + c->eps;
    m[i] = mv;
    v[i] = vv;
    p[i] = p[i] * c->decay - c->step_size * (mv / denom);
  }
}

}  // namespace ops_scalar

void adamw_f32(int64_t n, float* p, const float* g, float* m, float* v, double lr, double beta1, double beta2,
               double eps, double weight_decay, int64_t step) {
  AdamCoef c;
  c.beta1 = static_cast<float>(beta1);
  c.one_minus_beta1 = static_cast<float>(1.0 - beta1);
  c.beta2 = static_cast<float>(beta2);
  c.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  c.decay = static_cast<float>(1.0 - lr * weight_decay);
  c.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, static_cast<double>(step))));
  c.sqrt_bc2 = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, static_cast<double>(step))));
  c.eps = static_cast<float>(eps);
  const OpsTable& T = ops_table();
  parallel_for(n, ops_grain(n, 4), [&](int64_t b, int64_t e) { T.adamw(e - b, p + b, g + b, m + b, v + b, &c); });
}

}  // namespace fathom
