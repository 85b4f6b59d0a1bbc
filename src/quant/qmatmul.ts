// Quantized products out [M, N] = x [M, K] @ Wᵀ without a native kernel, shared by the backends. As ggml's CPU
// kernels (and the native contract) do, activations are quantized first, by the weight's type: q8_0 blocks of 32 for
// q8_0/q4_0 weights, q8_K blocks of 256 (f32 scale, −127/max) for q4_K, per token (row) symmetric int8 for int8 (dynamic
// int8: amax/127, round half away from zero). The product is then Σ x̂·ŵ, which equals ggml's integer block sums times
// their scales; llama.cpp's logits on the same file agree with ours to rounding.
//  - refQuantMatmul: the specification: q8_0/q4_0 as ggml sums them (integer block dots, f32 scale products and sums);
//    q4_K and int8 as x̂ and each weight row ŵ dequantized with QUANT_TYPES (ggml-exact) with f64 sums.
//  - chunkedQuantMatmul: the same products through an f32 GEMM on chunks of dequantized rows (memory O(chunk·K));
//    what the native backend does while the addon has no quantMatmul.
import { FathomError } from "../core/errors.js";
import { f16ToF32, f32ToF16 } from "../core/dtype.js";
import { QUANT_TYPES, nearestInt } from "./types.js";

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

/** ggml quantize_row_q8_K_ref then dequantized: per 256 values, d = 1/(−127/max) with max the signed largest |x|. */
function q8KRoundTrip(x: Float32Array, out: Float32Array): void {
  const fr = Math.fround;
  for (let b = 0; b < x.length; b += 256) {
    let amax = 0, max = 0;
    for (let j = 0; j < 256; j++) { const a = Math.abs(x[b + j]); if (a > amax) { amax = a; max = x[b + j]; } }
    if (!amax) { out.fill(0, b, b + 256); continue; }
    const iscale = fr(-127 / max), d = fr(1 / iscale);
    for (let j = 0; j < 256; j++) out[b + j] = Math.min(127, nearestInt(fr(iscale * x[b + j]))) * d;
  }
}

/**
 * ggml's x86 quantize_row_q8_0 then dequantized: per 32 values d = amax/127 stored as f16, q = round-half-even(x·id)
 * with id = 127/amax (the SIMD path; the scalar _ref rounds half away from zero with 1/d). The same for every product,
 * q8_0 or q4_0 weight, repacked or not: the x86 ggml_quantize_mat_q8_0_4x8 that quantizes 4 rows at a time for
 * llama.cpp's repacked q4_0 weights also uses 127/amax "to mirror quantize_row_q8_0" (its generic C version uses 1/d,
 * as ARM's NEON quantizers do: there results would differ at rounding ties). test/quantize.test.ts checks this rule on
 * planted rounding ties against llama.cpp.
 */
function q8_0RoundTrip(x: Float32Array, out: Float32Array, qOut?: Int8Array, dOut?: Float32Array): void {
  const fr = Math.fround;
  for (let b = 0; b < x.length; b += 32) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
    const d32 = fr(amax / 127), d = f16ToF32(f32ToF16(d32)), id = !amax ? 0 : fr(127 / amax);
    if (dOut) dOut[b / 32] = d;
    for (let j = 0; j < 32; j++) { const q = nearestInt(fr(x[b + j] * id)); out[b + j] = q * d; if (qOut) qOut[b + j] = q; }
  }
}

/** q8_0 / q4_0 as ggml sums them: per block an integer dot product, scaled by f32(d_w·d_x), accumulated in f32. */
function blockQuantMatmul(M: number, x: Float32Array, w: QuantWeightData, out: Float32Array): void {
  const { N, K } = w, nb = K / 32, bpb = w.type === "q8_0" ? 34 : 18, fr = Math.fround;
  const qx = new Int8Array(M * K), dx = new Float32Array(M * nb), scratch = new Float32Array(M * K);
  q8_0RoundTrip(x.subarray(0, M * K), scratch, qx, dx);
  const qw = new Int8Array(K), dw = new Float32Array(nb);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const o = (n * nb + b) * bpb;
      dw[b] = f16ToF32(w.data[o] | (w.data[o + 1] << 8));
      if (w.type === "q8_0") for (let j = 0; j < 32; j++) qw[b * 32 + j] = (w.data[o + 2 + j] << 24) >> 24;
      else for (let j = 0; j < 16; j++) { const v = w.data[o + 2 + j]; qw[b * 32 + j] = (v & 15) - 8; qw[b * 32 + 16 + j] = (v >> 4) - 8; }
    }
    for (let m = 0; m < M; m++) {
      let acc = 0;
      for (let b = 0; b < nb; b++) {
        let isum = 0;
        for (let j = b * 32; j < b * 32 + 32; j++) isum += qx[m * K + j] * qw[j];
        acc = fr(acc + fr(fr(dw[b] * dx[m * nb + b]) * isum));
      }
      out[m * N + n] = acc;
    }
  }
}

/** x̂: the activations [M, K] as the kernels see them for a weight of `type` (see the header). */
export function quantizeActs(type: QuantKind, M: number, K: number, x: Float32Array): Float32Array {
  const out = new Float32Array(M * K), xs = x.subarray(0, M * K);
  if (type === "int8") {
    const a = quantizeActInt8(M, K, xs);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) out[m * K + k] = a.q[m * K + k] * a.scales[m];
  } else if (type === "q4_K") q8KRoundTrip(xs, out);
  else q8_0RoundTrip(xs, out);
  return out;
}

/** The specification: out = x̂ @ Ŵᵀ with float64 sums. */
export function refQuantMatmul(M: number, x: Float32Array, w: QuantWeightData, out: Float32Array): void {
  const { N, K } = w;
  if (x.length < M * K || out.length < M * N) throw new FathomError("quantMatmul", `x holds ${x.length} values, out ${out.length}; need ${M * K} and ${M * N}`);
  if (w.type === "q8_0" || w.type === "q4_0") { blockQuantMatmul(M, x, w, out); return; }
  const row = new Float32Array(K);
  x = quantizeActs(w.type, M, K, x);
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
  const xs = quantizeActs(w.type, M, K, x);
  const buf = new Float32Array(Math.min(chunkRows, N) * K);
  for (let r0 = 0; r0 < N; r0 += chunkRows) {
    const r1 = Math.min(N, r0 + chunkRows), wb = buf.subarray(0, (r1 - r0) * K);
    dequantizeRows(w, r0, r1, wb);
    gemm(M, r1 - r0, K, xs, wb, out.subarray(r0), N);
  }
}
