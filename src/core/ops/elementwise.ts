// Elementwise ops with broadcasting, casts, comparisons and where. bf16/f16 operands compute in f32 and round
// back (the cast ops carry the gradient); float64 and float32 run the backend's kernels directly.
import { allocate, encode, isFloat, isHalf, isBlock, promote, readAt, type DType } from "../dtype.js";
import { DTypeError, fmtShape, ShapeError } from "../errors.js";
import { broadcastShapes, broadcastStrides, numel, sameShape } from "../shape.js";
import { Tensor, type TensorLike } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import type { BinaryOp, FArr, UnaryOp } from "../backend/backend.js";
import { forEachStrided } from "../backend/ref/index.js";
import { full } from "./create.js";
import { sumTo } from "./reduce.js";

export { full };

function noBlock(t: Tensor, op: string): void {
  if (isBlock(t.dtype)) throw new DTypeError(op, `${t.dtype} is a packed block type; dequantize it first`);
}

/** Wraps a JS number as a 0-d tensor of the given dtype. */
export function scalarTensor(v: number, dtype: DType): Tensor {
  const d = allocate(dtype, 1);
  d[0] = encode(dtype, v);
  return new Tensor(d, dtype, []);
}

const asT = (o: TensorLike, like: Tensor): Tensor =>
  o instanceof Tensor ? o : scalarTensor(o, isFloat(like.dtype) ? like.dtype : Number.isInteger(o) ? like.dtype : "f32");

// ---- casts
export function cast(x: Tensor, dtype: DType): Tensor {
  noBlock(x, "to");
  if (isBlock(dtype)) throw new DTypeError("to", `cannot cast to the packed block type ${dtype}; use quantization`);
  if (x.dtype === dtype) return x;
  const src = x.buffer();
  const out = allocate(dtype, x.numel);
  getBackend().cast(x.dtype, src, dtype, out);
  const y = new Tensor(out, dtype, x.shape);
  if (isFloat(x.dtype) && isFloat(dtype)) record(y, "cast", [x], (g) => [cast(g, x.dtype)]);
  return y;
}

// ---- unary
export function unary(x: Tensor, op: UnaryOp): Tensor {
  noBlock(x, op);
  if (!isFloat(x.dtype)) x = cast(x, "f32");
  if (isHalf(x.dtype)) return cast(unary(cast(x, "f32"), op), x.dtype);
  const xb = x.buffer() as FArr;
  const out = allocate(x.dtype, x.numel) as FArr;
  getBackend().unary(op, xb, out);
  const y = new Tensor(out, x.dtype, x.shape);
  return record(y, op, [x], (g) => {
    const gb = g.buffer() as FArr;
    const dx = allocate(x.dtype, x.numel) as FArr;
    getBackend().unaryGrad(op, xb, gb, dx);
    return [new Tensor(dx, x.dtype, x.shape)];
  });
}

// ---- binary
function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, dtype: DType): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = allocate(dtype, numel(shape)) as FArr;
  getBackend().binary(op, shape, a.data as FArr, a.offset, broadcastStrides(a.shape, a.strides, shape),
    b.data as FArr, b.offset, broadcastStrides(b.shape, b.strides, shape), out);
  return new Tensor(out, dtype, shape);
}

export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  noBlock(a, op); noBlock(b, op);
  let dtype = promote(a.dtype, b.dtype, op);
  if (!isFloat(dtype)) {
    if (op === "div" || op === "pow") dtype = "f32";
    else {
      // Integer arithmetic on the reference loops, wrapping like the storage type.
      const shape = broadcastShapes(a.shape, b.shape, op);
      const out = allocate(dtype, numel(shape));
      const sa = broadcastStrides(a.shape, a.strides, shape), sb = broadcastStrides(b.shape, b.strides, shape);
      const f = op === "add" ? (x: number, y: number) => x + y : op === "sub" ? (x: number, y: number) => x - y
        : op === "mul" ? (x: number, y: number) => Math.imul(x, y) : op === "maximum" ? Math.max : Math.min;
      forEachStrided(shape, a.offset, sa, b.offset, sb, (i, ia, ib) => { out[i] = f(readAt(a.dtype, a.data, ia), readAt(b.dtype, b.data, ib)); });
      return new Tensor(out, dtype, shape);
    }
  }
  if (isHalf(dtype)) return cast(binary(op, cast(a, "f32"), cast(b, "f32")), dtype);
  const ac = a.dtype === dtype ? a : cast(a, dtype), bc = b.dtype === dtype ? b : cast(b, dtype);
  const y = binaryRaw(op, ac, bc, dtype);
  return record(y, op, [ac, bc], (g) => {
    switch (op) {
      case "add": return [sumTo(g, ac.shape), sumTo(g, bc.shape)];
      case "sub": return [sumTo(g, ac.shape), sumTo(unary(g, "neg"), bc.shape)];
      case "mul": return [ac.requiresGrad ? sumTo(mul(g, bc), ac.shape) : null, bc.requiresGrad ? sumTo(mul(g, ac), bc.shape) : null];
      case "div": return [ac.requiresGrad ? sumTo(div(g, bc), ac.shape) : null,
        bc.requiresGrad ? sumTo(unary(div(mul(g, y), bc), "neg"), bc.shape) : null];            // d(a/b)/db = -a/b² = -y/b
      case "pow": return [ac.requiresGrad ? sumTo(mul(g, mul(bc, binaryRaw("pow", ac, sub(bc, 1), dtype))), ac.shape) : null,
        bc.requiresGrad ? sumTo(mul(g, mul(y, unary(ac, "log"))), bc.shape) : null];             // d a^b = b a^(b-1) da + a^b ln a db
      case "maximum":
      case "minimum": {
        // Ties split the gradient equally, as PyTorch does.
        const wa = tieWeights(ac, bc, op === "maximum");
        return [sumTo(mul(g, wa), ac.shape), sumTo(mul(g, sub(1, wa)), bc.shape)];
      }
    }
  });
}

function tieWeights(a: Tensor, b: Tensor, max: boolean): Tensor {
  const shape = broadcastShapes(a.shape, b.shape, "maximum");
  const out = allocate(a.dtype, numel(shape));
  forEachStrided(shape, a.offset, broadcastStrides(a.shape, a.strides, shape), b.offset, broadcastStrides(b.shape, b.strides, shape),
    (i, ia, ib) => { const x = a.data[ia], y = b.data[ib]; out[i] = x === y ? 0.5 : (max ? x > y : x < y) ? 1 : 0; });
  return new Tensor(out, a.dtype, shape);
}

const bin = (op: BinaryOp) => (a: TensorLike, b: TensorLike): Tensor => {
  const at = a instanceof Tensor ? a : null, bt = b instanceof Tensor ? b : null;
  const like = at ?? bt;
  if (!like) throw new DTypeError(op, "needs at least one tensor operand");
  return binary(op, asT(a, like), asT(b, like));
};
export const add = bin("add");
export const sub = bin("sub");
export const mul = bin("mul");
export const div = bin("div");
export const pow = bin("pow");
export const maximum = bin("maximum");
export const minimum = bin("minimum");

// ---- comparisons (bool results, no gradient)
export type CompareOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge";
const cmpFns: Record<CompareOp, (a: number, b: number) => boolean> = {
  eq: (a, b) => a === b, ne: (a, b) => a !== b, lt: (a, b) => a < b, le: (a, b) => a <= b, gt: (a, b) => a > b, ge: (a, b) => a >= b,
};
export function compare(a: Tensor, o: TensorLike, op: CompareOp): Tensor {
  const b = asT(o, a);
  noBlock(a, op); noBlock(b, op);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = allocate("bool", numel(shape));
  const f = cmpFns[op];
  forEachStrided(shape, a.offset, broadcastStrides(a.shape, a.strides, shape), b.offset, broadcastStrides(b.shape, b.strides, shape),
    (i, ia, ib) => { out[i] = f(readAt(a.dtype, a.data, ia), readAt(b.dtype, b.data, ib)) ? 1 : 0; });
  return new Tensor(out, "bool", shape);
}

/** where(cond, a, b): a where cond is true, else b; all three broadcast. */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  if (cond.dtype !== "bool") throw new DTypeError("where", `condition must be bool, got ${cond.dtype}`);
  const at0 = a instanceof Tensor ? a : null, bt0 = b instanceof Tensor ? b : null;
  const like = at0 ?? bt0 ?? scalarTensor(0, "f32");
  let at = asT(a, like), bt = asT(b, like);
  noBlock(at, "where"); noBlock(bt, "where");
  const dtype = promote(at.dtype, bt.dtype, "where");
  at = cast(at, dtype); bt = cast(bt, dtype);
  const shape = broadcastShapes(broadcastShapes(cond.shape, at.shape, "where"), bt.shape, "where");
  const out = allocate(dtype, numel(shape));
  const sc = broadcastStrides(cond.shape, cond.strides, shape), sa = broadcastStrides(at.shape, at.strides, shape);
  const sb = broadcastStrides(bt.shape, bt.strides, shape);
  // Two passes over strided operands: first fill from b, then overwrite where cond holds.
  forEachStrided(shape, bt.offset, sb, cond.offset, sc, (i, ib, ic) => { out[i] = cond.data[ic] ? 0 : bt.data[ib]; });
  forEachStrided(shape, at.offset, sa, cond.offset, sc, (i, ia, ic) => { if (cond.data[ic]) out[i] = at.data[ia]; });
  const y = new Tensor(out, dtype, shape);
  return record(y, "where", [at, bt], (g) => [
    at.requiresGrad ? sumTo(where(cond, g, 0), at.shape) : null,
    bt.requiresGrad ? sumTo(where(cond, 0, g), bt.shape) : null,
  ]);
}

export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  if (mask.dtype !== "bool") throw new DTypeError("maskedFill", `mask must be bool, got ${mask.dtype}`);
  const s = broadcastShapes(x.shape, mask.shape, "maskedFill");
  if (!sameShape(s, x.shape)) throw new ShapeError("maskedFill", `mask ${fmtShape(mask.shape)} does not broadcast to ${fmtShape(x.shape)}`);
  return where(mask, scalarTensor(value, x.dtype), x);
}

