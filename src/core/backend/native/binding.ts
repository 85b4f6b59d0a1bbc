// The native addon's whole surface, typed in one place (tfjs-node's tfjs_binding.ts pattern).
// Kernels are synchronous, read and write typed arrays in place, and check every length against the
// dimensions given (they throw TypeError "[name] ..." otherwise). Matrices are row-major; strides and
// leading dimensions are in elements. bf16 and f16 data travel as Uint16Array bit patterns.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type IsaName = "avx512" | "avx2" | "scalar";

/** Unary op codes shared by unaryF32 / unaryGradF32 (gelu is the exact erf form, geluTanh the tanh approximation). */
export const UnaryCode = { neg: 0, exp: 1, log: 2, sqrt: 3, rsqrt: 4, silu: 5, gelu: 6, geluTanh: 7, tanh: 8, sigmoid: 9,
  abs: 10, square: 11, recip: 12, relu: 13 } as const;
export type UnaryCode = (typeof UnaryCode)[keyof typeof UnaryCode];
/** Binary op codes for binaryF32. */
export const BinaryCode = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5, pow: 6 } as const;
export type BinaryCode = (typeof BinaryCode)[keyof typeof BinaryCode];
/** Reduction op codes for reduceF32. */
export const ReduceCode = { sum: 0, max: 1, min: 2 } as const;
export type ReduceCode = (typeof ReduceCode)[keyof typeof ReduceCode];

export interface NativeBinding {
  // ---- core (native/bind/core.cc)
  cpuInfo(): { avx2: boolean; fma: boolean; f16c: boolean; avx512f: boolean; avx512bw: boolean; avx512vl: boolean;
    avx512dq: boolean; avx512bf16: boolean; avx512vnni: boolean; best: IsaName };
  getIsa(): IsaName;
  /** Forces a code path (for tests); false if the CPU lacks it. */
  setIsa(isa: IsaName): boolean;
  getThreads(): number;
  /** 0 restores the default (FATHOM_THREADS, else the cores available). */
  setThreads(n: number): void;

  /** Maps a whole file copy-on-write (native/bind/mmap.cc); released when the ArrayBuffer is collected. */
  mapFile(path: string): ArrayBuffer;

  // ---- GEMM (native/bind/gemm.cc)
  /**
   * For b in [0, batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b, with op(A_b) M×K and op(B_b) K×N.
   * A_b(i,k) = A[b*strideA + (transA ? k*lda + i : i*lda + k)]; B_b(k,n) = B[b*strideB + (transB ? n*ldb + k : k*ldb + n)];
   * C_b(i,n) = C[b*strideC + i*ldc + n]. strideA/strideB may be 0 (broadcast). beta = 0 never reads C.
   * rowInvariant: each row of C gets the same bits whatever M (see GemmArgs.rowInvariant).
   */
  gemmF32(batch: number, M: number, N: number, K: number,
    A: Float32Array, strideA: number, lda: number, transA: boolean,
    B: Float32Array, strideB: number, ldb: number, transB: boolean,
    C: Float32Array, strideC: number, ldc: number, alpha: number, beta: number, rowInvariant?: boolean): void;
  /** As gemmF32 with bf16 A and B (Uint16Array bit patterns), f32 accumulation and f32 C. */
  gemmBF16(batch: number, M: number, N: number, K: number,
    A: Uint16Array, strideA: number, lda: number, transA: boolean,
    B: Uint16Array, strideB: number, ldb: number, transB: boolean,
    C: Float32Array, strideC: number, ldc: number, alpha: number, beta: number, rowInvariant?: boolean): void;
  /** Packs op(B) (K×N) once for reuse as the right-hand side; the result is opaque and tied to the current code path. */
  packB(dtype: "f32" | "bf16", K: number, N: number, B: Float32Array | Uint16Array, ldb: number, transB: boolean): PackedMatrix;
  /** C = alpha * op(A) @ packed + beta * C; A is Float32Array for f32-packed, Uint16Array for bf16-packed. */
  gemmPacked(M: number, A: Float32Array | Uint16Array, lda: number, transA: boolean, packed: PackedMatrix,
    C: Float32Array, ldc: number, alpha: number, beta: number): void;

  // ---- elementwise, reductions, norms (native/bind/ops.cc). Contiguous unless strides are given.
  /** y[i] = f(x[i]); x may be y. */
  unaryF32(op: UnaryCode, n: number, x: Float32Array, y: Float32Array): void;
  /** dx[i] = dy[i] * f'(x[i]). */
  unaryGradF32(op: UnaryCode, n: number, x: Float32Array, dy: Float32Array, dx: Float32Array): void;
  /** out (contiguous, `shape`) = a op b, a and b read through element strides (0 = broadcast). */
  binaryF32(op: BinaryCode, shape: Int32Array, a: Float32Array, aStrides: Int32Array, b: Float32Array, bStrides: Int32Array, out: Float32Array): void;
  /** x viewed as [outer, n, inner] → y [outer, inner]. */
  reduceF32(op: ReduceCode, outer: number, n: number, inner: number, x: Float32Array, y: Float32Array): void;
  /** Index of the first maximum along the middle axis of [outer, n, inner]. */
  argmaxF32(outer: number, n: number, inner: number, x: Float32Array, idx: Int32Array): void;
  /** Softmax (or log-softmax) over the last axis of [rows, n]. */
  softmaxF32(rows: number, n: number, x: Float32Array, y: Float32Array, log: boolean): void;
  /** softmax: dx = y*(dy - Σ dy*y); log-softmax: dx = dy - exp(y)*Σ dy. */
  softmaxBackwardF32(rows: number, n: number, y: Float32Array, dy: Float32Array, dx: Float32Array, log: boolean): void;
  /** y = x * rstd * w (w may be null); rstd[r] = 1/sqrt(mean(x_r²) + eps). */
  rmsNormF32(rows: number, n: number, x: Float32Array, w: Float32Array | null, eps: number, y: Float32Array, rstd: Float32Array): void;
  /** dx written; dw (if not null) accumulated (+=). */
  rmsNormBackwardF32(rows: number, n: number, x: Float32Array, w: Float32Array | null, rstd: Float32Array, dy: Float32Array,
    dx: Float32Array, dw: Float32Array | null): void;
  /**
   * Rotary embedding on rows of length D: the first rotDim values of row r rotate by the angles of position pos[r]
   * (cos/sin tables are [P, rotDim/2]); the rest are copied. interleaved: pairs (2i, 2i+1); else (i, i + rotDim/2).
   * inverse rotates by -θ (the backward pass). x may be y.
   */
  ropeF32(rows: number, D: number, rotDim: number, x: Float32Array, y: Float32Array, cos: Float32Array, sin: Float32Array,
    P: number, pos: Int32Array, interleaved: boolean, inverse: boolean): void;
  /** out = silu(gate) * up. */
  swigluF32(n: number, gate: Float32Array, up: Float32Array, out: Float32Array): void;
  swigluBackwardF32(n: number, gate: Float32Array, up: Float32Array, dout: Float32Array, dgate: Float32Array, dup: Float32Array): void;
  /** PyTorch AdamW (decoupled weight decay, bias correction at `step` ≥ 1), in place on p, m, v. */
  adamwF32(n: number, p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lr: number, beta1: number,
    beta2: number, eps: number, weightDecay: number, step: number): void;
  castF32ToBF16(n: number, x: Float32Array, y: Uint16Array): void;
  castBF16ToF32(n: number, x: Uint16Array, y: Float32Array): void;
  castF32ToF16(n: number, x: Float32Array, y: Uint16Array): void;
  castF16ToF32(n: number, x: Uint16Array, y: Float32Array): void;
  /** See Backend.dequantQ8Rows (native/bind/ops.cc; absent from addons built before it). */
  dequantQ8Rows?(groups: number, T: number, cap: number, d: number, src: Uint8Array, dst: Float32Array): void;
  /** dst (contiguous, `shape`) = src read at srcOffset + Σ idx·srcStrides; elements of 1, 2, 4 or 8 bytes. */
  copyStrided(elemBytes: number, shape: Int32Array, src: ArrayBufferView, srcOffset: number, srcStrides: Int32Array, dst: ArrayBufferView): void;

  // ---- quantized products (native/bind/quant.cc)
  /**
   * Re-lays out a quantized weight W [N, K] once for fast products on the current code path (e.g. rows interleaved so
   * a matrix-vector product streams memory). q8_0 / q4_0 / q4_K: `data` holds the ggml blocks row by row (N rows of
   * K/blockSize blocks). int8: `data` is the int8 weights [N, K] (as bytes) and `scales` the per-row f32 scales [N].
   * The result is opaque, tied to the code path, and frees its memory when collected; `data` and `scales` are copied
   * (the caller may reuse them once it returns).
   */
  quantPack(type: "q8_0" | "q4_0" | "q4_K" | "int8", N: number, K: number, data: Uint8Array, scales: Float32Array | null): PackedQuant;
  /**
   * out [M, N] = x [M, K] @ Wᵀ for a packed quantized W (f32 activations, quantized per block or per token inside the
   * kernel as the type needs: q8_0 blocks for q8_0/q4_0, q8_K for q4_K, per-token int8 for int8). beta = 0 (out is written).
   */
  quantMatmul(M: number, x: Float32Array, packed: PackedQuant, out: Float32Array): void;
  /**
   * Weights of one type and K in one parallel pass, against one shared x (quantized once) or x[i] for weight i:
   * out[i] as quantMatmul(M, x or x[i], packed[i], out[i]).
   */
  quantMatmulMany(M: number, x: Float32Array | Float32Array[], packed: PackedQuant[], out: Float32Array[]): void;

  // ---- attention (native/bind/attention.cc)
  /**
   * Tiled scaled-dot-product attention; memory O(T·block). q [B,Hq,Tq,D], k [B,Hkv,Tk,D], v [B,Hkv,Tk,Dv],
   * out [B,Hq,Tq,Dv], lse [B,Hq,Tq] (natural-log logsumexp of the scaled, masked scores; may be null).
   * Query head h reads kv head floor(h / (Hq/Hkv)). causal: query i sees keys j ≤ i + qOffset. mask: additive
   * (Float32Array) or boolean (Uint8Array, 1 = attend) read at b*ms[0] + h*ms[1] + i*ms[2] + j*ms[3].
   * A query that sees no key gets out = 0 and lse = -Infinity. kStrides / vStrides (optional, [batch, head, row] in
   * elements, last axis contiguous): k[b,h,j,d] = k[b*s[0] + h*s[1] + j*s[2] + d], so a view into a larger cache
   * buffer is read in place; null = contiguous.
   */
  attentionF32(B: number, Hq: number, Hkv: number, Tq: number, Tk: number, D: number, Dv: number,
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array | null,
    scale: number, causal: boolean, qOffset: number, mask: Float32Array | Uint8Array | null, maskStrides: Int32Array | null,
    kStrides?: Float64Array | null, vStrides?: Float64Array | null): void;
  /** Gradients of attentionF32 from its out and lse; dq, dk, dv are written (not accumulated). */
  attentionBackwardF32(B: number, Hq: number, Hkv: number, Tq: number, Tk: number, D: number, Dv: number,
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, dout: Float32Array,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
    scale: number, causal: boolean, qOffset: number, mask: Float32Array | Uint8Array | null, maskStrides: Int32Array | null): void;
}

/** An opaque packed right-hand side made by packB. */
export interface PackedMatrix { readonly __packed: unique symbol }
/** An opaque packed quantized weight made by quantPack. */
export interface PackedQuant { readonly __packedQuant: unique symbol }

let cached: { binding: NativeBinding | null; error: string | null } | undefined;

function addonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, "build", "Release", "fathom.node");
    if (existsSync(p)) return p;
    dir = dirname(dir);
  }
  return null;
}

/** Loads the addon once (FATHOM_ADDON overrides its path); null (with the reason in nativeLoadError()) if it is missing or fails to load. */
export function loadNative(): NativeBinding | null {
  if (cached) return cached.binding;
  if (process.env.FATHOM_BACKEND === "ref") { cached = { binding: null, error: "FATHOM_BACKEND=ref" }; return null; }
  const p = process.env.FATHOM_ADDON || addonPath();
  if (!p || !existsSync(p)) { cached = { binding: null, error: `${p ?? "build/Release/fathom.node"} not found (run npm run build:native)` }; return null; }
  try {
    const require = createRequire(import.meta.url);
    cached = { binding: require(p) as NativeBinding, error: null };
  } catch (e) {
    cached = { binding: null, error: (e as Error).message };
  }
  return cached.binding;
}

export function nativeLoadError(): string | null {
  loadNative();
  return cached!.error;
}
