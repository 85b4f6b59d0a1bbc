// Quantized products out [M, N] = x [M, K] @ Wᵀ without a native kernel, shared by the backends:
//  - refQuantMatmul: the specification: each weight row dequantized with QUANT_TYPES (ggml-exact), float64 sums.
//    int8 is dynamic int8: x is quantized per token (row) symmetrically, amax/127, round half away from zero, and the
//    integer dot products are scaled by the token's and the weight row's scales.
//  - chunkedQuantMatmul: the same products through an f32 GEMM on chunks of dequantized rows (memory O(chunk·K));
//    what the native backend does while the addon has no quantMatmul.
import { FathomError } from "../core/errors.js";
import { QUANT_TYPES } from "./types.js";

export type QuantKind = "q8_0" | "q4_0" | "q4_K" | "int8";

/** A quantized weight as plain memory: N rows of K values. */
export interface QuantWeightData { type: QuantKind; N: number; K: number; data: Uint8Array; scales: Float32Array | null }

export const QUANT_KINDS: readonly QuantKind[] = ["q8_0", "q4_0", "q4_K", "int8"];

/** Bytes one row of K values takes in `type`. */
export function rowBytes(type: QuantKind, K: number): number {
  if (type === "int8") return K;
  const q = QUANT_TYPES[type];
  if (K % q.blockSize !== 0) throw new FathomError("quant", `${type}: row length ${K} is not a multiple of ${q.blockSize}`);
  return (K / q.blockSize) * q.bytesPerBlock;
}

export function checkQuantWeight(w: QuantWeightData, what = "quantMatmul"): void {
  if (!QUANT_KINDS.includes(w.type)) throw new FathomError(what, `unknown quantized type '${w.type}'`);
  const need = w.N * rowBytes(w.type, w.K);
  if (w.data.length !== need) throw new FathomError(what, `${w.type} weight [${w.N}, ${w.K}] needs ${need} bytes, got ${w.data.length}`);
  if (w.type === "int8" && (!w.scales || w.scales.length !== w.N)) throw new FathomError(what, `int8 weight [${w.N}, ${w.K}] needs ${w.N} row scales`);
}

/** Rows [r0, r1) of W dequantized into out ((r1 − r0)·K floats). */
export function dequantizeRows(w: QuantWeightData, r0: number, r1: number, out: Float32Array): Float32Array {
  const rb = rowBytes(w.type, w.K), src = w.data.subarray(r0 * rb, r1 * rb);
  if (w.type !== "int8") return QUANT_TYPES[w.type].dequantizeRef(src, out);
  const q = new Int8Array(src.buffer, src.byteOffset, src.length);
  for (let r = r0; r < r1; r++) {
    const s = w.scales![r], o = (r - r0) * w.K;
    for (let k = 0; k < w.K; k++) out[o + k] = q[o + k] * s;
  }
  return out;
}

const roundAway = (v: number): number => (v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));

/** Dynamic int8 activations: per row of x [M, K], scale = amax/127 and q = round(x/scale). */
export function quantizeActInt8(M: number, K: number, x: Float32Array): { q: Int8Array; scales: Float32Array } {
  const q = new Int8Array(M * K), scales = new Float32Array(M);
  for (let m = 0; m < M; m++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[m * K + k]));
    const s = Math.fround(amax / 127), inv = s ? 1 / s : 0;
    scales[m] = s;
    for (let k = 0; k < K; k++) q[m * K + k] = roundAway(x[m * K + k] * inv);
  }
  return { q, scales };
}

/** The specification: out = x @ Wᵀ with float64 sums (int8: integer sums of dynamically quantized activations). */
export function refQuantMatmul(M: number, x: Float32Array, w: QuantWeightData, out: Float32Array): void {
  const { N, K } = w;
  if (x.length < M * K || out.length < M * N) throw new FathomError("quantMatmul", `x holds ${x.length} values, out ${out.length}; need ${M * K} and ${M * N}`);
  const row = new Float32Array(K);
  if (w.type === "int8") {
    const a = quantizeActInt8(M, K, x), qw = new Int8Array(w.data.buffer, w.data.byteOffset, w.data.length);
    for (let n = 0; n < N; n++)
      for (let m = 0; m < M; m++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += a.q[m * K + k] * qw[n * K + k];
        out[m * N + n] = acc * a.scales[m] * w.scales![n];
      }
    return;
  }
  for (let n = 0; n < N; n++) {
    dequantizeRows(w, n, n + 1, row);
    for (let m = 0; m < M; m++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[m * K + k] * row[k];
      out[m * N + n] = acc;
    }
  }
}

/** f32 GEMM C[M, n] (ldc) = A[M, K] @ B[n, K]ᵀ, as the native addon's gemmF32 provides. */
export type GemmNT = (M: number, n: number, K: number, A: Float32Array, B: Float32Array, C: Float32Array, ldc: number) => void;

/** out = x @ Wᵀ through an f32 GEMM over chunks of dequantized rows (int8: x is quantized per token first). */
export function chunkedQuantMatmul(M: number, x: Float32Array, w: QuantWeightData, out: Float32Array, gemm: GemmNT, chunkRows = 256): void {
  const { N, K } = w;
  let xs = x;
  if (w.type === "int8") {                      // x̂ = q·s per token: the same products as the integer path (up to f32 rounding)
    const a = quantizeActInt8(M, K, x);
    xs = new Float32Array(M * K);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) xs[m * K + k] = a.q[m * K + k] * a.scales[m];
  }
  const buf = new Float32Array(Math.min(chunkRows, N) * K);
  for (let r0 = 0; r0 < N; r0 += chunkRows) {
    const r1 = Math.min(N, r0 + chunkRows), wb = buf.subarray(0, (r1 - r0) * K);
    dequantizeRows(w, r0, r1, wb);
    gemm(M, r1 - r0, K, xs, wb, out.subarray(r0), N);
  }
}
