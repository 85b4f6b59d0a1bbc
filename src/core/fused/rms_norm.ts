// RMSNorm over the last axis: y = x * rsqrt(mean(x²) + eps) * w, computed in f32 (or f64) and returned in x's
// dtype, as Hugging Face's LlamaRMSNorm does. `rmsNormReference` is the spec: gradients and backends without a
// kernel use it; the native kernel pair (forward, backward) must match it.
import { ShapeError, fmtShape } from "../errors.js";
import { allocate, isHalf } from "../dtype.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import { add, cast, mul, unary } from "../ops/elementwise.js";
import { mean } from "../ops/reduce.js";

export function rmsNormReference(x: Tensor, w: Tensor | null, eps: number): Tensor {
  const y = mul(x, unary(add(mean(mul(x, x), -1, true), eps), "rsqrt"));
  return w ? mul(y, w) : y;
}

export function rmsNorm(x: Tensor, w: Tensor | null, eps = 1e-6): Tensor {
  const n = x.shape[x.ndim - 1];
  if (x.ndim === 0 || (w && (w.ndim !== 1 || w.shape[0] !== n)))
    throw new ShapeError("rms_norm", `weight ${w ? fmtShape(w.shape) : "null"} does not match the last dim of ${fmtShape(x.shape)}`);
  if (isHalf(x.dtype)) return cast(rmsNorm(cast(x, "f32"), w && cast(w, "f32"), eps), x.dtype);
  const be = getBackend();
  if (!be.rmsNorm || x.dtype !== "f32" || (w && w.dtype !== "f32")) return rmsNormReference(x, w, eps);
  const rows = x.numel / Math.max(n, 1);
  const xb = x.buffer() as Float32Array, wb = w ? (w.buffer() as Float32Array) : null;
  const y = allocate("f32", x.numel) as Float32Array, rstd = allocate("f32", rows) as Float32Array;
  be.rmsNorm(rows, n, xb, wb, eps, y, rstd);
  const inputs = w ? [x, w] : [x];
  return record(new Tensor(y, "f32", x.shape), "rms_norm", inputs, (g) => {
    const dx = new Float32Array(x.numel), dw = w && w.requiresGrad ? new Float32Array(n) : null;
    be.rmsNormBackward!(rows, n, xb, wb, rstd, g.buffer() as Float32Array, dx, dw);
    return [new Tensor(dx, "f32", x.shape), dw ? new Tensor(dw, "f32", [n]) : null];
  });
}
