// Indexing: index_select, gather, scatter-add, index-add and embedding lookup. Index tensors are i32 and
// bounds-checked; scatters accumulate (duplicate indices add up).
import { allocate, isBlock, isHalf, type DType } from "../dtype.js";
import { DTypeError, FathomError, ShapeError, fmtShape } from "../errors.js";
import { normDim, numel } from "../shape.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { forEachStrided } from "../backend/ref/index.js";
import { cast } from "./elementwise.js";
import { contiguous, reshape } from "./movement.js";
import { full } from "./create.js";

function checkIndex(index: Tensor, op: string): Int32Array {
  if (index.dtype !== "i32") throw new DTypeError(op, `index must be i32, got ${index.dtype}`);
  return index.buffer() as Int32Array;
}

function bound(v: number, n: number, op: string, dim: number): number {
  const i = v < 0 ? v + n : v;
  if (i < 0 || i >= n) throw new FathomError(op, `index ${v} out of range for dim ${dim} of size ${n}`);
  return i;
}

/** The indices with negatives wrapped, each checked against n. */
function boundAll(idx: Int32Array, n: number, op: string, dim: number): Int32Array {
  const rows = allocate("i32", idx.length) as Int32Array;
  for (let j = 0; j < idx.length; j++) rows[j] = bound(idx[j], n, op, dim);
  return rows;
}

function noBlock(x: Tensor, op: string) {
  if (isBlock(x.dtype)) throw new DTypeError(op, `${x.dtype} is a packed block type; dequantize it first`);
}

export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  noBlock(x, "indexSelect");
  const d = normDim(dim, x.ndim, "indexSelect");
  if (index.ndim !== 1) throw new ShapeError("indexSelect", `index must be 1-D, got ${fmtShape(index.shape)}`);
  const idx = checkIndex(index, "indexSelect");
  const xc = contiguous(x), xb = xc.buffer();
  const n = x.shape[d], outer = numel(x.shape.slice(0, d)), inner = numel(x.shape.slice(d + 1));
  const shape = [...x.shape];
  shape[d] = idx.length;
  const out = allocate(x.dtype, numel(shape));
  const rows = boundAll(idx, n, "indexSelect", d);
  for (let o = 0; o < outer; o++) for (let j = 0; j < rows.length; j++) {
    const src = (o * n + rows[j]) * inner, dst = (o * rows.length + j) * inner;
    out.set(xb.subarray(src, src + inner) as never, dst);
  }
  const y = new Tensor(out, x.dtype, shape);
  return record(y, "indexSelect", [x], (g) => [indexAdd(full(x.shape, 0, g.dtype), d, index, g)]);
}

/** out = x with src added at positions index along dim (x is not modified). */
export function indexAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const d = normDim(dim, x.ndim, "indexAdd");
  const idx = checkIndex(index, "indexAdd");
  const n = x.shape[d], outer = numel(x.shape.slice(0, d)), inner = numel(x.shape.slice(d + 1));
  const want = [...x.shape];
  want[d] = idx.length;
  if (src.shape.length !== want.length || src.shape.some((s, i) => s !== want[i]))
    throw new ShapeError("indexAdd", `source ${fmtShape(src.shape)} does not match ${fmtShape(want)}`);
  const s = (src.dtype === x.dtype ? src : cast(src, x.dtype));
  const sb = accBuffer(s), ob = accBuffer(contiguous(x), true);
  const rows = boundAll(idx, n, "indexAdd", d);
  for (let o = 0; o < outer; o++) for (let j = 0; j < rows.length; j++) {
    const a = (o * n + rows[j]) * inner, b = (o * rows.length + j) * inner;
    for (let k = 0; k < inner; k++) ob[a + k] += sb[b + k];
  }
  const y = fromAcc(ob, x.dtype, x.shape);
  return record(y, "indexAdd", [x, s], (g) => [g, indexSelect(g, d, index)]);
}

/** out[i][j][k] = x[i][index[i][j][k]][k] for dim = 1 (torch.gather). */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  noBlock(x, "gather");
  const d = normDim(dim, x.ndim, "gather");
  if (index.ndim !== x.ndim) throw new ShapeError("gather", `index ${fmtShape(index.shape)} must have as many dims as input ${fmtShape(x.shape)}`);
  for (let i = 0; i < x.ndim; i++) if (i !== d && index.shape[i] > x.shape[i])
    throw new ShapeError("gather", `index ${fmtShape(index.shape)} is larger than input ${fmtShape(x.shape)} in dim ${i}`);
  checkIndex(index, "gather");
  const out = allocate(x.dtype, index.numel);
  const st = [...x.strides];
  st[d] = 0;
  const n = x.shape[d], sd = x.strides[d];
  forEachStrided(index.shape, x.offset, st, index.offset, index.strides, (i, ix, ii) => {
    out[i] = x.data[ix + bound(index.data[ii], n, "gather", d) * sd];
  });
  const y = new Tensor(out, x.dtype, index.shape);
  return record(y, "gather", [x], (g) => [scatterAdd(full(x.shape, 0, g.dtype), d, index, g)]);
}

/** out = x with src[i][j][k] added at out[i][index[i][j][k]][k] for dim = 1 (torch.scatter_add). */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  const d = normDim(dim, x.ndim, "scatterAdd");
  if (index.ndim !== x.ndim || src.ndim !== x.ndim || index.shape.some((s, i) => s > src.shape[i] || (i !== d && s > x.shape[i])))
    throw new ShapeError("scatterAdd", `index ${fmtShape(index.shape)} must fit src ${fmtShape(src.shape)} and input ${fmtShape(x.shape)}`);
  checkIndex(index, "scatterAdd");
  const s = src.dtype === x.dtype ? src : cast(src, x.dtype);
  const ob = accBuffer(contiguous(x), true);
  const sAcc = accBuffer(s);
  const ost = [...x.shape.map((_, i) => numel(x.shape.slice(i + 1)))];
  const sd = ost[d];
  ost[d] = 0;
  const sst = s.shape.map((_, i) => numel(s.shape.slice(i + 1)));
  const n = x.shape[d];
  const idx = index.contiguous();
  forEachStrided(index.shape, 0, ost, 0, sst, (i, io, is) => {
    ob[io + bound(idx.data[idx.offset + i], n, "scatterAdd", d) * sd] += sAcc[is];
  });
  const y = fromAcc(ob, x.dtype, x.shape);
  return record(y, "scatterAdd", [x, s], (g) => [g, gather(g, d, index)]);
}

/** Rows of `weight` [V, D] picked by integer ids of any shape → [...ids.shape, D]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (weight.ndim !== 2) throw new ShapeError("embedding", `weight must be 2-D [vocab, dim], got ${fmtShape(weight.shape)}`);
  const flat = reshape(ids.contiguous(), [ids.numel]);
  return reshape(indexSelect(weight, 0, flat), [...ids.shape, weight.shape[1]]);
}

// Scatter accumulation happens in float64 (or the integer type) and is rounded once at the end.
function accBuffer(t: Tensor, copy = false): Float64Array | Int32Array | Float32Array {
  const b = t.contiguous().buffer();
  const widen = (src: ArrayLike<number>, dt: "f64" | "i32") => { const a = allocate(dt, src.length) as Float64Array | Int32Array; a.set(src); return a; };
  if (isHalf(t.dtype)) return widen(cast(t, "f32").buffer() as Float32Array, "f64");
  if (t.dtype === "f32") return widen(b as Float32Array, "f64");
  if (t.dtype === "f64") return copy ? widen(b as Float64Array, "f64") : (b as Float64Array);
  return widen(b as ArrayLike<number>, "i32");
}

function fromAcc(acc: ArrayLike<number>, dtype: DType, shape: readonly number[]): Tensor {
  if (isHalf(dtype)) return cast(fromAcc(acc, "f32", shape), dtype);
  const out = allocate(dtype, acc.length);
  for (let i = 0; i < acc.length; i++) out[i] = acc[i];
  return new Tensor(out, dtype, shape);
}
