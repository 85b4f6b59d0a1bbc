// SwiGLU's gate: silu(gate) * up, elementwise (the MLP's projections stay separate matmuls).
import { ShapeError, fmtShape } from "../errors.js";
import { allocate, isHalf } from "../dtype.js";
import { sameShape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import { cast, mul, unary } from "../ops/elementwise.js";

export function swigluReference(gate: Tensor, up: Tensor): Tensor {
  return mul(unary(gate, "silu"), up);
}

export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!sameShape(gate.shape, up.shape)) throw new ShapeError("swiglu", `gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} differ`);
  if (isHalf(gate.dtype) && gate.dtype === up.dtype) return cast(swiglu(cast(gate, "f32"), cast(up, "f32")), gate.dtype);
  const be = getBackend();
  if (!be.swiglu || gate.dtype !== "f32" || up.dtype !== "f32") return swigluReference(gate, up);
  const gb = gate.buffer() as Float32Array, ub = up.buffer() as Float32Array;
  const out = allocate("f32", gate.numel) as Float32Array;
  be.swiglu(gb, ub, out);
  return record(new Tensor(out, "f32", gate.shape), "swiglu", [gate, up], (g) => {
    const dg = new Float32Array(gate.numel), du = new Float32Array(gate.numel);
    be.swigluBackward!(gb, ub, g.buffer() as Float32Array, dg, du);
    return [new Tensor(dg, "f32", gate.shape), new Tensor(du, "f32", up.shape)];
  });
}
