// Views and copies: reshape, permute, slice, expand, squeeze/unsqueeze, split, concat, contiguous.
// Views share storage; gradients of views are views or scatters of the incoming gradient.
import { allocate, isBlock } from "../dtype.js";
import { FathomError, ShapeError, fmtShape } from "../errors.js";
import { normDim, numel, rowMajorStrides, sameShape } from "../shape.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import { forEachStrided } from "../backend/ref/index.js";
import { sumTo } from "./reduce.js";
import { full } from "./create.js";

export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return x;
  if (isBlock(x.dtype)) throw new FathomError("contiguous", `${x.dtype} block tensors cannot be strided`);
  const out = allocate(x.dtype, x.numel);
  getBackend().copyStrided(x.shape, x.data, x.offset, x.strides, out);
  const y = new Tensor(out, x.dtype, x.shape);
  return record(y, "contiguous", [x], (g) => [g]);
}

export function clone(x: Tensor): Tensor {
  const out = allocate(x.dtype, x.numel);
  getBackend().copyStrided(x.shape, x.data, x.offset, x.strides, out);
  return record(new Tensor(out, x.dtype, x.shape), "clone", [x], (g) => [g]);
}

function inferShape(x: Tensor, shape: readonly number[], op: string): number[] {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0 && s.indexOf(-1, neg + 1) >= 0) throw new ShapeError(op, `only one dimension can be -1, got ${fmtShape(shape)}`);
  for (const d of s) if (d !== -1 && (!Number.isInteger(d) || d < 0)) throw new ShapeError(op, `invalid size in ${fmtShape(shape)}`);
  if (neg >= 0) {
    const rest = numel(s.filter((_, i) => i !== neg));
    if (rest === 0 || x.numel % rest !== 0) throw new ShapeError(op, `cannot reshape ${fmtShape(x.shape)} into ${fmtShape(shape)}`);
    s[neg] = x.numel / rest;
  }
  if (numel(s) !== x.numel) throw new ShapeError(op, `cannot reshape ${fmtShape(x.shape)} (${x.numel} elements) into ${fmtShape(shape)}`);
  return s;
}

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = inferShape(x, shape, "reshape");
  if (sameShape(s, x.shape)) return x;
  const c = contiguous(x);
  const y = new Tensor(c.data, c.dtype, s, rowMajorStrides(s), c.offset);
  return record(y, "reshape", [c], (g) => [reshape(g, c.shape)]);
}

export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim(start, x.ndim, "flatten"), e = normDim(end, x.ndim, "flatten");
  if (e < s) throw new ShapeError("flatten", `end dim ${end} before start dim ${start}`);
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

export function permute(x: Tensor, dims: number[]): Tensor {
  if (dims.length !== x.ndim) throw new ShapeError("permute", `expected ${x.ndim} dims, got ${fmtShape(dims)} for ${fmtShape(x.shape)}`);
  const p = dims.map((d) => normDim(d, x.ndim, "permute"));
  if (new Set(p).size !== p.length) throw new ShapeError("permute", `repeated dim in ${fmtShape(dims)}`);
  const y = new Tensor(x.data, x.dtype, p.map((d) => x.shape[d]), p.map((d) => x.strides[d]), x.offset);
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => { inv[d] = i; });
  return record(y, "permute", [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  if (x.ndim < 2 && d0 === -2 && d1 === -1) return x;
  const a = normDim(d0, x.ndim, "transpose"), b = normDim(d1, x.ndim, "transpose");
  const p = x.shape.map((_, i) => i);
  p[a] = b; p[b] = a;
  return permute(x, p);
}

/** Moves axis `from` to position `to` (the others keep their order). */
export function moveDim(x: Tensor, from: number, to: number): Tensor {
  const f = normDim(from, x.ndim, "moveDim"), t = normDim(to, x.ndim, "moveDim");
  if (f === t) return x;
  const p = x.shape.map((_, i) => i).filter((i) => i !== f);
  p.splice(t, 0, f);
  return permute(x, p);
}

export function slice(x: Tensor, dim: number, start: number, end?: number, step = 1): Tensor {
  const d = normDim(dim, x.ndim, "slice");
  const n = x.shape[d];
  if (!Number.isInteger(step) || step < 1) throw new ShapeError("slice", `step must be a positive integer, got ${step}`);
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const s = clamp(start), e = Math.max(clamp(end ?? n), s);
  const len = Math.ceil((e - s) / step);
  const shape = [...x.shape], strides = [...x.strides];
  shape[d] = len; strides[d] *= step;
  const y = new Tensor(x.data, x.dtype, shape, strides, x.offset + s * x.strides[d]);
  return record(y, "slice", [x], (g) => {
    const out = full(x.shape, 0, g.dtype);
    const dst = [...out.strides];
    dst[d] *= step;
    const gc = g.contiguous();
    forEachStrided(g.shape, s * out.strides[d], dst, gc.offset, gc.strides, (_, io, ig) => { out.data[io] = gc.data[ig]; });
    return [out];
  });
}

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) throw new ShapeError("expand", `cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const lead = shape.length - x.ndim;
  const out = shape.map((s, i) => (s === -1 ? (i < lead ? -1 : x.shape[i - lead]) : s));
  const strides = out.map((s, i) => {
    if (i < lead) return 0;
    const xs = x.shape[i - lead];
    if (xs === s) return x.strides[i - lead];
    if (xs === 1) return 0;
    throw new ShapeError("expand", `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  });
  if (out.some((s) => s < 0)) throw new ShapeError("expand", `-1 is not allowed for new leading dims in ${fmtShape(shape)}`);
  if (sameShape(out, x.shape)) return x;
  const y = new Tensor(x.data, x.dtype, out, strides, x.offset);
  return record(y, "expand", [x], (g) => [sumTo(g, x.shape)]);
}

export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshapeView(x, x.shape.filter((s) => s !== 1), x.strides.filter((_, i) => x.shape[i] !== 1));
  const d = normDim(dim, x.ndim, "squeeze");
  if (x.shape[d] !== 1) return x;
  return reshapeView(x, x.shape.filter((_, i) => i !== d), x.strides.filter((_, i) => i !== d));
}

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim(dim, x.ndim + 1, "unsqueeze");
  const shape = [...x.shape], strides = [...x.strides];
  shape.splice(d, 0, 1);
  strides.splice(d, 0, d < x.ndim ? x.strides[d] * x.shape[d] : 1);
  return reshapeView(x, shape, strides);
}

function reshapeView(x: Tensor, shape: number[], strides: number[]): Tensor {
  const y = new Tensor(x.data, x.dtype, shape, strides, x.offset);
  return record(y, "view", [x], (g) => [reshape(g, [...x.shape])]);
}

export function split(x: Tensor, sizes: number | number[], dim = 0): Tensor[] {
  const d = normDim(dim, x.ndim, "split");
  const n = x.shape[d];
  let parts: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes < 1) throw new ShapeError("split", `split size must be a positive integer, got ${sizes}`);
    parts = [];
    for (let s = 0; s < n; s += sizes) parts.push(Math.min(sizes, n - s));
  } else {
    parts = sizes;
    if (parts.reduce((a, b) => a + b, 0) !== n) throw new ShapeError("split", `sizes ${fmtShape(parts)} do not sum to dim ${d} of ${fmtShape(x.shape)}`);
  }
  let s = 0;
  return parts.map((p) => { const t = slice(x, d, s, s + p); s += p; return t; });
}

export function concat(ts: Tensor[], dim = 0): Tensor {
  if (ts.length === 0) throw new ShapeError("concat", "needs at least one tensor");
  const first = ts[0];
  const d = normDim(dim, first.ndim, "concat");
  for (const t of ts) {
    if (t.dtype !== first.dtype) throw new ShapeError("concat", `dtypes differ: ${first.dtype} and ${t.dtype}`);
    if (t.ndim !== first.ndim || t.shape.some((s, i) => i !== d && s !== first.shape[i]))
      throw new ShapeError("concat", `shapes differ outside dim ${d}: ${ts.map((u) => fmtShape(u.shape)).join(", ")}`);
  }
  const shape = [...first.shape];
  shape[d] = ts.reduce((a, t) => a + t.shape[d], 0);
  const outer = numel(shape.slice(0, d)), inner = numel(shape.slice(d + 1));
  const out = allocate(first.dtype, numel(shape));
  const row = shape[d] * inner;
  let off = 0;
  for (const t of ts) {
    const b = t.buffer(), chunk = t.shape[d] * inner;
    for (let o = 0; o < outer; o++) out.set(b.subarray(o * chunk, (o + 1) * chunk) as never, o * row + off);
    off += chunk;
  }
  const y = new Tensor(out, first.dtype, shape);
  return record(y, "concat", ts, (g) => {
    let s = 0;
    return ts.map((t) => { const p = slice(g, d, s, s + t.shape[d]); s += t.shape[d]; return p; });
  });
}

