// Reductions over one or more axes, softmax / log-softmax, logsumexp and top-k.
import { allocate, isFloat, isHalf, isBlock } from "../dtype.js";
import { DTypeError, ShapeError, fmtShape } from "../errors.js";
import { normDim, numel, sameShape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import type { FArr, ReduceOp } from "../backend/backend.js";
import { cast, compare, div, mul, scalarTensor, sub, add, unary, where } from "./elementwise.js";
import { expand, moveDim, reshape } from "./movement.js";
import { gather } from "./index_ops.js";

function dims(x: Tensor, dim: number | number[] | undefined, op: string): number[] {
  const list = dim === undefined ? x.shape.map((_, i) => i) : Array.isArray(dim) ? dim : [dim];
  const out = [...new Set(list.map((d) => normDim(d, x.ndim, op)))];
  return out.sort((a, b) => b - a);
}

function keptShape(shape: readonly number[], ds: number[], keepdim: boolean): number[] {
  const out: number[] = [];
  shape.forEach((s, i) => { if (!ds.includes(i)) out.push(s); else if (keepdim) out.push(1); });
  return out;
}

/** Reduces float data over dims (descending) with the backend; returns a contiguous keepdim-shaped buffer. */
function reduceRaw(x: Tensor, ds: number[], op: ReduceOp): Tensor {
  let cur = x.contiguous();
  let shape = [...cur.shape];
  let buf = cur.buffer() as FArr;
  for (const d of ds) {
    const outer = numel(shape.slice(0, d)), n = shape[d], inner = numel(shape.slice(d + 1));
    if (n === 0 && op !== "sum") throw new ShapeError(op, `cannot reduce an empty dim ${d} of ${fmtShape(x.shape)}`);
    const y = allocate(x.dtype, outer * inner) as FArr;
    getBackend().reduce(op, outer, n, inner, buf, y);
    buf = y;
    shape[d] = 1;
  }
  return new Tensor(buf, x.dtype, shape);
}

function floatInput(x: Tensor, op: string): Tensor {
  if (isBlock(x.dtype)) throw new DTypeError(op, `${x.dtype} is a packed block type; dequantize it first`);
  return x;
}

export function sum(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  floatInput(x, "sum");
  if (!isFloat(x.dtype)) return cast(sum(cast(x, "f64"), dim, keepdim), x.dtype === "bool" ? "i32" : x.dtype);
  if (isHalf(x.dtype)) return cast(sum(cast(x, "f32"), dim, keepdim), x.dtype);
  const ds = dims(x, dim, "sum");
  const r = reduceRaw(x, ds, "sum");
  const y = keepdim ? r : reshape(r, keptShape(x.shape, ds, false));
  return record(y, "sum", [x], (g) => [expand(reshape(g, r.shape), x.shape)]);
}

export function mean(x: Tensor, dim?: number | number[], keepdim = false): Tensor {
  if (!isFloat(x.dtype)) throw new DTypeError("mean", `needs a floating tensor, got ${x.dtype}`);
  const ds = dims(x, dim, "mean");
  const n = ds.reduce((a, d) => a * x.shape[d], 1);
  return div(sum(x, dim, keepdim), n);
}

function extreme(x: Tensor, dim: number | undefined, keepdim: boolean, op: "max" | "min"): Tensor {
  floatInput(x, op);
  if (!isFloat(x.dtype)) return cast(extreme(cast(x, "f64"), dim, keepdim, op), x.dtype);
  if (isHalf(x.dtype)) return cast(extreme(cast(x, "f32"), dim, keepdim, op), x.dtype);
  const ds = dims(x, dim, op);
  const r = reduceRaw(x, ds, op);
  const y = keepdim ? r : reshape(r, keptShape(x.shape, ds, false));
  return record(y, op, [x], (g) => {
    // The gradient goes to the extreme elements, split equally among ties.
    const hit = cast(compare(x, r, "eq"), x.dtype);
    const count = sum(hit, ds, true);
    return [mul(div(hit, count), reshape(g, r.shape))];
  });
}
export const max = (x: Tensor, dim?: number, keepdim = false) => extreme(x, dim, keepdim, "max");
export const min = (x: Tensor, dim?: number, keepdim = false) => extreme(x, dim, keepdim, "min");

export function argmax(x: Tensor, dim?: number, keepdim = false): Tensor {
  floatInput(x, "argmax");
  const xf = isFloat(x.dtype) && !isHalf(x.dtype) ? x : cast(x, "f32");
  if (dim === undefined) {
    const flat = reshape(xf.contiguous(), [x.numel]);
    const r = argmax(flat, 0);
    return keepdim ? reshape(r, x.shape.map(() => 1)) : r;
  }
  const d = normDim(dim, x.ndim, "argmax");
  const c = xf.contiguous();
  const outer = numel(x.shape.slice(0, d)), n = x.shape[d], inner = numel(x.shape.slice(d + 1));
  if (n === 0) throw new ShapeError("argmax", `cannot reduce an empty dim ${d} of ${fmtShape(x.shape)}`);
  const idx = allocate("i32", outer * inner) as Int32Array;
  getBackend().argmax(outer, n, inner, c.buffer() as FArr, idx);
  return new Tensor(idx, "i32", keptShape(x.shape, [d], keepdim));
}

export function logsumexp(x: Tensor, dim: number, keepdim = false): Tensor {
  const d = normDim(dim, x.ndim, "logsumexp");
  const m = max(x.detach(), d, true);
  const mSafe = where(compare(unary(m, "abs"), Infinity, "eq"), scalarTensor(0, m.dtype), m);   // all -inf rows stay -inf
  const s = unary(sum(unary(sub(x, mSafe), "exp"), d, true), "log");
  const y = add(s, mSafe);
  return keepdim ? y : reshape(y, keptShape(x.shape, [d], false));
}

function softmaxImpl(x: Tensor, dim: number, log: boolean): Tensor {
  const op = log ? "logSoftmax" : "softmax";
  if (!isFloat(x.dtype)) throw new DTypeError(op, `needs a floating tensor, got ${x.dtype}`);
  if (isHalf(x.dtype)) return cast(softmaxImpl(cast(x, "f32"), dim, log), x.dtype);
  const d = normDim(dim, x.ndim, op);
  if (d !== x.ndim - 1) return moveDim(softmaxImpl(moveDim(x, d, -1), -1, log), -1, d);
  const n = x.shape[d] ?? 1, rows = x.numel / Math.max(n, 1);
  const xb = x.buffer() as FArr;
  const yb = allocate(x.dtype, x.numel) as FArr;
  getBackend().softmax(rows, n, xb, yb, log);
  const y = new Tensor(yb, x.dtype, x.shape);
  return record(y, op, [x], (g) => {
    const dx = allocate(x.dtype, x.numel) as FArr;
    getBackend().softmaxBackward(rows, n, yb, g.buffer() as FArr, dx, log);
    return [new Tensor(dx, x.dtype, x.shape)];
  });
}
export const softmax = (x: Tensor, dim = -1) => softmaxImpl(x, dim, false);
export const logSoftmax = (x: Tensor, dim = -1) => softmaxImpl(x, dim, true);

/** The k largest values along dim, sorted descending (ties keep the lower index first), and their indices. */
export function topk(x: Tensor, k: number, dim = -1): { values: Tensor; indices: Tensor } {
  floatInput(x, "topk");
  const d = normDim(dim, x.ndim, "topk");
  const n = x.shape[d];
  if (!Number.isInteger(k) || k < 0 || k > n) throw new ShapeError("topk", `k = ${k} out of range for dim ${d} of size ${n} in ${fmtShape(x.shape)}`);
  const last = moveDim(x, d, -1).contiguous();
  const buf = last.buffer();
  const vals = isHalf(x.dtype) ? cast(last, "f64").buffer() : buf;
  const rows = last.numel / Math.max(n, 1);
  const idx = new Int32Array(rows * k);
  const order = new Array<number>(n);
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    for (let i = 0; i < n; i++) order[i] = i;
    // NaN counts as the largest value, as in PyTorch.
    const key = (i: number) => { const v = vals[o + i]; return v !== v ? Infinity : v; };
    order.sort((a, b) => key(b) - key(a) || a - b);
    for (let i = 0; i < k; i++) idx[r * k + i] = order[i];
  }
  const outShape = [...last.shape.slice(0, -1), k];
  const indices = moveDim(new Tensor(idx, "i32", outShape), -1, d).contiguous();
  return { values: gather(x, d, indices), indices };
}

/** Sums a broadcast gradient back to `shape` (leading axes and size-1 axes), keeping its dtype. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const ds: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) ds.push(i);
  const s = ds.length ? sum(g, ds, true) : g;
  return reshape(s, shape);
}

