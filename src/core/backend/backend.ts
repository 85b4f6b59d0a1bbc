// The private interface every compute backend implements. Kernels take plain typed arrays (contiguous unless
// strides are given) and dimensions; they know nothing of tensors or autograd. Float kernels accept Float64Array
// (the reference backend's gradient-check precision) and Float32Array. Fused kernels are optional: without one,
// the fused op runs its reference composition (src/core/fused/*.ts).
import type { DType, TypedArray } from "../dtype.js";

export type FArr = Float32Array | Float64Array;
export type UnaryOp = "neg" | "exp" | "log" | "sqrt" | "rsqrt" | "silu" | "gelu" | "geluTanh" | "tanh" | "sigmoid" | "abs" | "square" | "recip" | "relu";
export type BinaryOp = "add" | "sub" | "mul" | "div" | "maximum" | "minimum" | "pow";
export type ReduceOp = "sum" | "max" | "min";
/** Quantized weight formats a backend may multiply by: ggml blocks, or per-row symmetric int8 (dynamic int8 activations). */
export type { QuantKind } from "../../quant/qmatmul.js";
import type { QuantKind } from "../../quant/qmatmul.js";

export interface GemmArgs {
  batch: number; M: number; N: number; K: number;
  /** f32/f64 arrays, or bf16 bit patterns (Uint16Array) when bf16 is true. */
  A: FArr | Uint16Array; strideA: number; lda: number; transA: boolean;
  B: FArr | Uint16Array; strideB: number; ldb: number; transB: boolean;
  C: FArr; strideC: number; ldc: number;
  alpha: number; beta: number;
  bf16: boolean;
  /**
   * Each row of C must come out the same bits whatever M (and whatever other rows come with it): decode and prefill
   * of a router agree exactly. Backends whose sums never depend on M (the reference backend) may ignore it.
   */
  rowInvariant?: boolean;
}

export interface AttentionArgs {
  B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; Dv: number;
  q: Float32Array; k: Float32Array; v: Float32Array; out: Float32Array; lse: Float32Array | null;
  scale: number; causal: boolean; qOffset: number;
  mask: Float32Array | Uint8Array | null; maskStrides: Int32Array | null;
  /** Forward only: k / v element strides [batch, head, row] (the last axis contiguous) into k / v; absent or null = contiguous. */
  kStrides?: Float64Array | null; vStrides?: Float64Array | null;
}

export interface AdamWArgs {
  lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number;
}

export interface Backend {
  readonly name: "ref" | "native";
  unary(op: UnaryOp, x: FArr, y: FArr): void;
  /** dx = dy * f'(x). */
  unaryGrad(op: UnaryOp, x: FArr, dy: FArr, dx: FArr): void;
  /** out (contiguous, `shape`) = a op b; a and b are read at offset + Σ idx·stride. */
  binary(op: BinaryOp, shape: readonly number[], a: FArr, aOff: number, aStrides: readonly number[],
    b: FArr, bOff: number, bStrides: readonly number[], out: FArr): void;
  /** x as [outer, n, inner] → y [outer, inner]. */
  reduce(op: ReduceOp, outer: number, n: number, inner: number, x: FArr, y: FArr): void;
  argmax(outer: number, n: number, inner: number, x: FArr, idx: Int32Array): void;
  softmax(rows: number, n: number, x: FArr, y: FArr, log: boolean): void;
  softmaxBackward(rows: number, n: number, y: FArr, dy: FArr, dx: FArr, log: boolean): void;
  gemm(a: GemmArgs): void;
  /** dst (contiguous) = src read through strides; any element type. */
  copyStrided(shape: readonly number[], src: TypedArray, srcOff: number, srcStrides: readonly number[], dst: TypedArray): void;
  /** y = x converted between dtypes (same element count, contiguous). */
  cast(from: DType, x: TypedArray, to: DType, y: TypedArray): void;
  /**
   * q8_0 rows to f32: src holds `groups` runs of `cap` rows, each row ceil(d/32) q8_0 blocks (34 bytes: f16 scale,
   * 32 int8); dst [groups, T, d] (contiguous) = the first T rows of each run, the first d values of each row.
   * (A q8_0 KV cache read before attention.)
   */
  dequantQ8Rows(groups: number, T: number, cap: number, d: number, src: Uint8Array, dst: Float32Array): void;
  /** One AdamW step in place on p, m, v. */
  adamw(p: FArr, g: FArr, m: FArr, v: FArr, o: AdamWArgs): void;

  // ---- optional: a right-hand side packed once for repeated GEMMs (weights); opaque to callers.
  packB?(bf16: boolean, K: number, N: number, B: Float32Array | Uint16Array, ldb: number, transB: boolean): object;
  gemmPacked?(M: number, A: Float32Array | Uint16Array, lda: number, packed: object, C: Float32Array): void;

  // ---- optional: quantized weights W [N, K] (ggml blocks row by row, or int8 + per-row f32 scales) packed once, then
  // out [M, N] = x [M, K] @ Wᵀ with f32 activations (src/quant/qlinear.ts). The packed handle is opaque.
  quantPack?(type: QuantKind, N: number, K: number, data: Uint8Array, scales: Float32Array | null): object;
  quantMatmul?(M: number, x: Float32Array, packed: object, out: Float32Array): void;
  /**
   * Several packed weights of one type and K in one call, against one shared x (quantized once: q, k and v) or x[i] for
   * weight i (MLA's per-head k_b / v_b): out[i] must equal what quantMatmul(M, x or x[i], packed[i], out[i]) gives.
   * Absent: callers multiply one weight at a time.
   */
  quantMatmulMany?(M: number, x: Float32Array | Float32Array[], packed: object[], out: Float32Array[]): void;
  /**
   * True when quantPack copies `data` and `scales` into the packed handle, so the caller may reuse or drop them once it
   * returns (e.g. one read buffer for every tensor of a file); false or absent: the handle keeps referring to them.
   */
  readonly quantPackCopies?: boolean;

  // ---- optional fused kernels (f32); see src/core/fused/.
  rmsNorm?(rows: number, n: number, x: Float32Array, w: Float32Array | null, eps: number, y: Float32Array, rstd: Float32Array): void;
  rmsNormBackward?(rows: number, n: number, x: Float32Array, w: Float32Array | null, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array, dw: Float32Array | null): void;
  rope?(rows: number, D: number, rotDim: number, x: Float32Array, y: Float32Array, cos: Float32Array, sin: Float32Array,
    P: number, pos: Int32Array, interleaved: boolean, inverse: boolean): void;
  swiglu?(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  swigluBackward?(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array): void;
  attention?(a: AttentionArgs): void;
  attentionBackward?(a: AttentionArgs & { lse: Float32Array; dout: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array }): void;
}
