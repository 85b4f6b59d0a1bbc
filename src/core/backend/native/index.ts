// The native backend: the C++ addon's kernels for float32 data; anything else (float64 gradient checks,
// integer tensors) falls through to the reference backend, which is also the oracle its tests compare against.
import type { AdamWArgs, AttentionArgs, BinaryOp, FArr, GemmArgs, ReduceOp, UnaryOp } from "../backend.js";
import { allocate, type DType, type TypedArray } from "../../dtype.js";
import { RefBackend } from "../ref/index.js";
import { BinaryCode, ReduceCode, UnaryCode, type NativeBinding, type PackedMatrix, type PackedQuant } from "./binding.js";
import { checkQuantWeight, chunkedQuantMatmul, type QuantKind, type QuantWeightData } from "../../../quant/qmatmul.js";

/** A weight packed by the addon's quantPack (when the addon has the quantized kernels). */
interface NativePackedQuant { native: PackedQuant; N: number; K: number }

const isF32 = (x: unknown): x is Float32Array => x instanceof Float32Array;
/** Shape and stride arguments, read by the addon during the call (from the step arena inside a decode step). */
const i32 = (a: readonly number[]): Int32Array => { const r = allocate("i32", a.length) as Int32Array; r.set(a); return r; };

export class NativeBackend extends RefBackend {
  override readonly name = "native" as const;
  constructor(readonly addon: NativeBinding) { super(); }

  override unary(op: UnaryOp, x: FArr, y: FArr): void {
    if (isF32(x) && isF32(y)) this.addon.unaryF32(UnaryCode[op], x.length, x, y);
    else super.unary(op, x, y);
  }

  override unaryGrad(op: UnaryOp, x: FArr, dy: FArr, dx: FArr): void {
    if (isF32(x) && isF32(dy) && isF32(dx)) this.addon.unaryGradF32(UnaryCode[op], x.length, x, dy, dx);
    else super.unaryGrad(op, x, dy, dx);
  }

  override binary(op: BinaryOp, shape: readonly number[], a: FArr, aOff: number, aStrides: readonly number[],
    b: FArr, bOff: number, bStrides: readonly number[], out: FArr): void {
    if (isF32(a) && isF32(b) && isF32(out)) {
      this.addon.binaryF32(BinaryCode[op], i32(shape), a.subarray(aOff), i32(aStrides), b.subarray(bOff), i32(bStrides), out);
    } else super.binary(op, shape, a, aOff, aStrides, b, bOff, bStrides, out);
  }

  override reduce(op: ReduceOp, outer: number, n: number, inner: number, x: FArr, y: FArr): void {
    if (isF32(x) && isF32(y)) this.addon.reduceF32(ReduceCode[op], outer, n, inner, x, y);
    else super.reduce(op, outer, n, inner, x, y);
  }

  override argmax(outer: number, n: number, inner: number, x: FArr, idx: Int32Array): void {
    if (isF32(x)) this.addon.argmaxF32(outer, n, inner, x, idx);
    else super.argmax(outer, n, inner, x, idx);
  }

  override softmax(rows: number, n: number, x: FArr, y: FArr, log: boolean): void {
    if (isF32(x) && isF32(y)) this.addon.softmaxF32(rows, n, x, y, log);
    else super.softmax(rows, n, x, y, log);
  }

  override softmaxBackward(rows: number, n: number, y: FArr, dy: FArr, dx: FArr, log: boolean): void {
    if (isF32(y) && isF32(dy) && isF32(dx)) this.addon.softmaxBackwardF32(rows, n, y, dy, dx, log);
    else super.softmaxBackward(rows, n, y, dy, dx, log);
  }

  override gemm(g: GemmArgs): void {
    const { batch, M, N, K } = g;
    if (g.bf16 && g.A instanceof Uint16Array && g.B instanceof Uint16Array && isF32(g.C)) {
      this.addon.gemmBF16(batch, M, N, K, g.A, g.strideA, g.lda, g.transA, g.B, g.strideB, g.ldb, g.transB,
        g.C, g.strideC, g.ldc, g.alpha, g.beta, g.rowInvariant === true);
    } else if (!g.bf16 && isF32(g.A) && isF32(g.B) && isF32(g.C)) {
      this.addon.gemmF32(batch, M, N, K, g.A, g.strideA, g.lda, g.transA, g.B, g.strideB, g.ldb, g.transB,
        g.C, g.strideC, g.ldc, g.alpha, g.beta, g.rowInvariant === true);
    } else super.gemm(g);
  }

  override copyStrided(shape: readonly number[], src: TypedArray, srcOff: number, srcStrides: readonly number[], dst: TypedArray): void {
    if (src.BYTES_PER_ELEMENT === dst.BYTES_PER_ELEMENT && srcStrides.every((s) => s >= 0)) {
      this.addon.copyStrided(src.BYTES_PER_ELEMENT, i32(shape), src, srcOff, i32(srcStrides), dst);
    } else super.copyStrided(shape, src, srcOff, srcStrides, dst);
  }

  override cast(from: DType, x: TypedArray, to: DType, y: TypedArray): void {
    const n = x.length;
    if (from === "f32" && to === "bf16") this.addon.castF32ToBF16(n, x as Float32Array, y as Uint16Array);
    else if (from === "bf16" && to === "f32") this.addon.castBF16ToF32(n, x as Uint16Array, y as Float32Array);
    else if (from === "f32" && to === "f16") this.addon.castF32ToF16(n, x as Float32Array, y as Uint16Array);
    else if (from === "f16" && to === "f32") this.addon.castF16ToF32(n, x as Uint16Array, y as Float32Array);
    else super.cast(from, x, to, y);
  }

  override dequantQ8Rows(groups: number, T: number, cap: number, d: number, src: Uint8Array, dst: Float32Array): void {
    if (this.addon.dequantQ8Rows) this.addon.dequantQ8Rows(groups, T, cap, d, src, dst);
    else super.dequantQ8Rows(groups, T, cap, d, src, dst);
  }

  override adamw(p: FArr, g: FArr, m: FArr, v: FArr, o: AdamWArgs): void {
    if (isF32(p) && isF32(g) && isF32(m) && isF32(v)) {
      this.addon.adamwF32(p.length, p, g, m, v, o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.step);
    } else super.adamw(p, g, m, v, o);
  }

  packB(bf16: boolean, K: number, N: number, B: Float32Array | Uint16Array, ldb: number, transB: boolean): object {
    return this.addon.packB(bf16 ? "bf16" : "f32", K, N, B, ldb, transB);
  }
  gemmPacked(M: number, A: Float32Array | Uint16Array, lda: number, packed: object, C: Float32Array): void {
    const N = C.length / Math.max(M, 1);
    this.addon.gemmPacked(M, A, lda, false, packed as PackedMatrix, C, N, 1, 0);
  }

  // ---- quantized products: the addon's kernels when it has them (native/bind/quant.cc), else f32 GEMMs over chunks of
  // dequantized rows (same products, memory O(256·K)).
  /** The addon's kernels pack into memory of their own; the chunked fallback keeps referring to the bytes. */
  override get quantPackCopies(): boolean { return this.hasQuantKernels(); }
  private hasQuantKernels(): boolean { return typeof this.addon.quantPack === "function" && typeof this.addon.quantMatmul === "function"; }
  override quantPack(type: QuantKind, N: number, K: number, data: Uint8Array, scales: Float32Array | null): object {
    const w: QuantWeightData = { type, N, K, data, scales };
    checkQuantWeight(w, "quantPack");
    if (this.hasQuantKernels()) return { native: this.addon.quantPack(type, N, K, data, scales), N, K } satisfies NativePackedQuant;
    return w;
  }
  quantMatmulMany(M: number, x: Float32Array | Float32Array[], packed: object[], out: Float32Array[]): void {
    if (packed.every((p) => "native" in p)) {
      this.addon.quantMatmulMany(M, x, packed.map((p) => (p as NativePackedQuant).native), out);
    } else packed.forEach((p, i) => this.quantMatmul(M, Array.isArray(x) ? x[i] : x, p, out[i]));
  }
  override quantMatmul(M: number, x: Float32Array, packed: object, out: Float32Array): void {
    if ("native" in packed) { this.addon.quantMatmul(M, x, (packed as NativePackedQuant).native, out); return; }
    chunkedQuantMatmul(M, x, packed as QuantWeightData, out, (m, n, k, A, B, C, ldc) =>
      this.addon.gemmF32(1, m, n, k, A, 0, k, false, B, 0, k, true, C, 0, ldc, 1, 0));
  }

  // ---- fused kernels (f32 only; callers check dtypes)
  rmsNorm(rows: number, n: number, x: Float32Array, w: Float32Array | null, eps: number, y: Float32Array, rstd: Float32Array): void {
    this.addon.rmsNormF32(rows, n, x, w, eps, y, rstd);
  }
  rmsNormBackward(rows: number, n: number, x: Float32Array, w: Float32Array | null, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array, dw: Float32Array | null): void {
    this.addon.rmsNormBackwardF32(rows, n, x, w, rstd, dy, dx, dw);
  }
  rope(rows: number, D: number, rotDim: number, x: Float32Array, y: Float32Array, cos: Float32Array, sin: Float32Array,
    P: number, pos: Int32Array, interleaved: boolean, inverse: boolean): void {
    this.addon.ropeF32(rows, D, rotDim, x, y, cos, sin, P, pos, interleaved, inverse);
  }
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void { this.addon.swigluF32(gate.length, gate, up, out); }
  swigluBackward(gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array): void {
    this.addon.swigluBackwardF32(gate.length, gate, up, dout, dgate, dup);
  }
  attention(a: AttentionArgs): void {
    this.addon.attentionF32(a.B, a.Hq, a.Hkv, a.Tq, a.Tk, a.D, a.Dv, a.q, a.k, a.v, a.out, a.lse, a.scale, a.causal, a.qOffset,
      a.mask, a.maskStrides, a.kStrides ?? null, a.vStrides ?? null);
  }
  attentionBackward(a: AttentionArgs & { lse: Float32Array; dout: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array }): void {
    this.addon.attentionBackwardF32(a.B, a.Hq, a.Hkv, a.Tq, a.Tk, a.D, a.Dv, a.q, a.k, a.v, a.out, a.lse, a.dout, a.dq, a.dk, a.dv,
      a.scale, a.causal, a.qOffset, a.mask, a.maskStrides);
  }
}
