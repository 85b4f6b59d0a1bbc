// Tensor: a typed-array storage viewed through shape, strides and offset. Views (reshape of contiguous data,
// permute, slice, expand) share storage; contiguous() copies only when needed. Memory belongs to JS typed
// arrays, so the garbage collector frees it, and V8 counts it (ArrayBuffers report their size). External
// memory (a mapped file, another library's Float32Array) is wrapped without copying with Tensor.from.
import { DTYPES, isBlock, readAt, type DType, type TypedArray } from "./dtype.js";
import { FathomError, ShapeError, DTypeError, fmtShape } from "./errors.js";
import { numel, rowMajorStrides, type Shape } from "./shape.js";
import { Node, runBackward } from "./autograd.js";
import * as E from "./ops/elementwise.js";
import * as R from "./ops/reduce.js";
import * as M from "./ops/movement.js";
import * as I from "./ops/index_ops.js";
import * as L from "./ops/linalg.js";

export type Scalar = number;
export type TensorLike = Tensor | number;

export class Tensor {
  requiresGrad = false;
  /** Accumulated gradient (leaves), set by backward(). */
  grad: Tensor | null = null;
  /** The node that produced this tensor, when recorded for autograd. */
  gradFn: Node | null = null;
  readonly shape: readonly number[];
  readonly strides: readonly number[];

  constructor(readonly data: TypedArray, readonly dtype: DType, shape: readonly number[], strides?: readonly number[], readonly offset = 0) {
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : rowMajorStrides(shape));
  }

  /**
   * Wraps existing memory without copying: a typed array of the dtype's storage type (Uint16Array for bf16/f16,
   * Uint8Array for bool and block types), or an ArrayBuffer (e.g. a memory-mapped file) with a byte offset.
   */
  static from(data: TypedArray | ArrayBufferLike, dtype: DType, shape: readonly number[], byteOffset = 0): Tensor {
    const info = DTYPES[dtype];
    const n = numel(shape);
    const units = info.blockSize > 1 ? (n / info.blockSize) * info.bytes : n;
    if (info.blockSize > 1 && n % info.blockSize !== 0) throw new ShapeError("Tensor.from", `${dtype} needs a multiple of ${info.blockSize} elements, got ${fmtShape(shape)}`);
    let arr: TypedArray;
    if (ArrayBuffer.isView(data)) {
      if (!(data instanceof info.array)) throw new DTypeError("Tensor.from", `${dtype} data must be a ${info.array.name}, got ${data.constructor.name}`);
      arr = data as TypedArray;
    } else {
      const elem = info.blockSize > 1 ? 1 : info.bytes;
      if (byteOffset % elem !== 0) throw new FathomError("Tensor.from", `byte offset ${byteOffset} is not a multiple of ${elem} for ${dtype}`);
      if (byteOffset + units * elem > data.byteLength) throw new FathomError("Tensor.from", `buffer of ${data.byteLength} bytes is too small for ${dtype} ${fmtShape(shape)} at offset ${byteOffset}`);
      arr = new info.array(data, byteOffset, units);
    }
    if (arr.length < units) throw new ShapeError("Tensor.from", `data has ${arr.length} elements, shape ${fmtShape(shape)} needs ${units}`);
    return new Tensor(arr, dtype, shape);
  }

  get ndim(): number { return this.shape.length; }
  get numel(): number { return numel(this.shape); }

  get isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i];
    }
    return true;
  }

  /** The contiguous storage of this tensor (a subarray view, no copy, when already contiguous). */
  buffer(): TypedArray {
    const t = this.contiguous();
    const info = DTYPES[t.dtype];
    const units = info.blockSize > 1 ? (t.numel / info.blockSize) * info.bytes : t.numel;
    return t.data.subarray(t.offset, t.offset + units) as TypedArray;
  }

  /** Elements as JS numbers in row-major order (bf16/f16 decoded). */
  toArray(): number[] {
    if (isBlock(this.dtype)) throw new DTypeError("toArray", `${this.dtype} is a packed block type; dequantize first`);
    const b = this.buffer();
    const out = new Array<number>(b.length);
    for (let i = 0; i < b.length; i++) out[i] = readAt(this.dtype, b, i);
    return out;
  }

  /** Nested arrays in the tensor's shape. */
  tolist(): unknown {
    const flat = this.toArray();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.ndim) return flat[off];
      const step = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * step));
    };
    return build(0, 0);
  }

  item(): number {
    if (this.numel !== 1) throw new ShapeError("item", `only one-element tensors convert to a number, got ${fmtShape(this.shape)}`);
    return this.toArray()[0];
  }

  toString(): string { return `Tensor(${this.dtype}, ${fmtShape(this.shape)})`; }

  // ---- autograd
  requiresGrad_(on = true): this {
    if (on && !(this.dtype === "f32" || this.dtype === "f64" || this.dtype === "bf16" || this.dtype === "f16"))
      throw new DTypeError("requiresGrad", `only floating tensors can require grad, got ${this.dtype}`);
    this.requiresGrad = on;
    return this;
  }
  /** A tensor sharing storage, cut from the graph. */
  detach(): Tensor { return new Tensor(this.data, this.dtype, this.shape, this.strides, this.offset); }
  backward(grad?: Tensor): void {
    runBackward(this, grad, (t) => E.full(t.shape, 1, t.dtype), (a, b) => E.add(a, b));
  }

  // ---- conversion and movement
  contiguous(): Tensor { return M.contiguous(this); }
  to(dtype: DType): Tensor { return E.cast(this, dtype); }
  float(): Tensor { return E.cast(this, "f32"); }
  clone(): Tensor { return M.clone(this); }
  reshape(...shape: number[] | [number[]]): Tensor { return M.reshape(this, flatArgs(shape)); }
  view(...shape: number[] | [number[]]): Tensor { return M.reshape(this, flatArgs(shape)); }
  flatten(start = 0, end = -1): Tensor { return M.flatten(this, start, end); }
  permute(...dims: number[] | [number[]]): Tensor { return M.permute(this, flatArgs(dims)); }
  transpose(d0 = -2, d1 = -1): Tensor { return M.transpose(this, d0, d1); }
  get T(): Tensor { return M.transpose(this, -2, -1); }
  slice(dim: number, start: number, end?: number, step = 1): Tensor { return M.slice(this, dim, start, end, step); }
  narrow(dim: number, start: number, length: number): Tensor { return M.slice(this, dim, start, start + length); }
  expand(...shape: number[] | [number[]]): Tensor { return M.expand(this, flatArgs(shape)); }
  squeeze(dim?: number): Tensor { return M.squeeze(this, dim); }
  unsqueeze(dim: number): Tensor { return M.unsqueeze(this, dim); }
  split(sizes: number | number[], dim = 0): Tensor[] { return M.split(this, sizes, dim); }

  // ---- elementwise
  add(o: TensorLike): Tensor { return E.add(this, o); }
  sub(o: TensorLike): Tensor { return E.sub(this, o); }
  mul(o: TensorLike): Tensor { return E.mul(this, o); }
  div(o: TensorLike): Tensor { return E.div(this, o); }
  pow(o: TensorLike): Tensor { return E.pow(this, o); }
  maximum(o: TensorLike): Tensor { return E.maximum(this, o); }
  minimum(o: TensorLike): Tensor { return E.minimum(this, o); }
  neg(): Tensor { return E.unary(this, "neg"); }
  exp(): Tensor { return E.unary(this, "exp"); }
  log(): Tensor { return E.unary(this, "log"); }
  sqrt(): Tensor { return E.unary(this, "sqrt"); }
  rsqrt(): Tensor { return E.unary(this, "rsqrt"); }
  silu(): Tensor { return E.unary(this, "silu"); }
  gelu(approximate: "none" | "tanh" = "none"): Tensor { return E.unary(this, approximate === "tanh" ? "geluTanh" : "gelu"); }
  tanh(): Tensor { return E.unary(this, "tanh"); }
  sigmoid(): Tensor { return E.unary(this, "sigmoid"); }
  abs(): Tensor { return E.unary(this, "abs"); }
  square(): Tensor { return E.unary(this, "square"); }
  reciprocal(): Tensor { return E.unary(this, "recip"); }
  relu(): Tensor { return E.unary(this, "relu"); }
  eq(o: TensorLike): Tensor { return E.compare(this, o, "eq"); }
  ne(o: TensorLike): Tensor { return E.compare(this, o, "ne"); }
  lt(o: TensorLike): Tensor { return E.compare(this, o, "lt"); }
  le(o: TensorLike): Tensor { return E.compare(this, o, "le"); }
  gt(o: TensorLike): Tensor { return E.compare(this, o, "gt"); }
  ge(o: TensorLike): Tensor { return E.compare(this, o, "ge"); }
  maskedFill(mask: Tensor, value: number): Tensor { return E.maskedFill(this, mask, value); }

  // ---- reductions
  sum(dim?: number | number[], keepdim = false): Tensor { return R.sum(this, dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return R.mean(this, dim, keepdim); }
  max(dim?: number, keepdim = false): Tensor { return R.max(this, dim, keepdim); }
  min(dim?: number, keepdim = false): Tensor { return R.min(this, dim, keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return R.argmax(this, dim, keepdim); }
  logsumexp(dim: number, keepdim = false): Tensor { return R.logsumexp(this, dim, keepdim); }
  softmax(dim = -1): Tensor { return R.softmax(this, dim); }
  logSoftmax(dim = -1): Tensor { return R.logSoftmax(this, dim); }
  topk(k: number, dim = -1): { values: Tensor; indices: Tensor } { return R.topk(this, k, dim); }

  // ---- indexing and linear algebra
  indexSelect(dim: number, index: Tensor): Tensor { return I.indexSelect(this, dim, index); }
  gather(dim: number, index: Tensor): Tensor { return I.gather(this, dim, index); }
  matmul(o: Tensor): Tensor { return L.matmul(this, o); }
}

function flatArgs(a: number[] | [number[]]): number[] {
  return Array.isArray(a[0]) ? (a[0] as number[]) : (a as number[]);
}

/** Checks a shape for Tensor construction from a flat JS array. */
export function shapeOf(values: ArrayLike<number>, shape: Shape | undefined, op: string): number[] {
  const s = shape ? [...shape] : [values.length];
  if (numel(s) !== values.length) throw new ShapeError(op, `${values.length} values do not fill shape ${fmtShape(s)}`);
  return s;
}

