// The reference backend: plain TypeScript, float64 accumulation, obvious loops. It is the specification
// every native kernel is compared with, and it runs everything when the addon is absent.
import type { AdamWArgs, Backend, BinaryOp, FArr, GemmArgs, ReduceOp, UnaryOp } from "../backend.js";
import type { DType, TypedArray } from "../../dtype.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../dtype.js";
import { unaryDeriv, unaryFn } from "./math.js";
import { FathomError } from "../../errors.js";
import { checkQuantWeight, refQuantMatmul, type QuantKind, type QuantWeightData } from "../../../quant/qmatmul.js";

const binFns: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b, sub: (a, b) => a - b, mul: (a, b) => a * b, div: (a, b) => a / b,
  maximum: (a, b) => (a !== a || b !== b ? NaN : a > b ? a : b),
  minimum: (a, b) => (a !== a || b !== b ? NaN : a < b ? a : b),
  pow: Math.pow,
};

/** Visits every index of `shape` in row-major order, passing the offsets of up to two strided operands. */
export function forEachStrided(shape: readonly number[], offA: number, stA: readonly number[], offB: number, stB: readonly number[],
  fn: (i: number, a: number, b: number) => void): void {
  const nd = shape.length;
  let n = 1;
  for (const d of shape) n *= d;
  if (n === 0) return;
  const idx = new Array<number>(nd).fill(0);
  let a = offA, b = offB;
  for (let i = 0; i < n; i++) {
    fn(i, a, b);
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++; a += stA[d]; b += stB[d];
      if (idx[d] < shape[d]) break;
      a -= stA[d] * shape[d]; b -= stB[d] * shape[d]; idx[d] = 0;
    }
  }
}

function toF64(x: FArr | Uint16Array, bf16: boolean): ArrayLike<number> {
  if (!bf16) return x;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = bf16ToF32(x[i]);
  return out;
}

export class RefBackend implements Backend {
  readonly name: "ref" | "native" = "ref";

  unary(op: UnaryOp, x: FArr, y: FArr): void {
    const f = unaryFn(op);
    for (let i = 0; i < x.length; i++) y[i] = f(x[i]);
  }

  unaryGrad(op: UnaryOp, x: FArr, dy: FArr, dx: FArr): void {
    const f = unaryDeriv(op);
    for (let i = 0; i < x.length; i++) dx[i] = dy[i] * f(x[i]);
  }

  binary(op: BinaryOp, shape: readonly number[], a: FArr, aOff: number, aStrides: readonly number[],
    b: FArr, bOff: number, bStrides: readonly number[], out: FArr): void {
    const f = binFns[op];
    forEachStrided(shape, aOff, aStrides, bOff, bStrides, (i, ia, ib) => { out[i] = f(a[ia], b[ib]); });
  }

  reduce(op: ReduceOp, outer: number, n: number, inner: number, x: FArr, y: FArr): void {
    for (let o = 0; o < outer; o++) for (let j = 0; j < inner; j++) {
      const base = o * n * inner + j;
      let acc = op === "sum" ? 0 : op === "max" ? -Infinity : Infinity;
      for (let i = 0; i < n; i++) {
        const v = x[base + i * inner];
        if (op === "sum") acc += v;
        else if (v !== v) { acc = NaN; break; }
        else if (op === "max" ? v > acc : v < acc) acc = v;
      }
      y[o * inner + j] = acc;
    }
  }

  argmax(outer: number, n: number, inner: number, x: FArr, idx: Int32Array): void {
    for (let o = 0; o < outer; o++) for (let j = 0; j < inner; j++) {
      const base = o * n * inner + j;
      let best = -Infinity, bi = 0;
      for (let i = 0; i < n; i++) {
        const v = x[base + i * inner];
        if (v !== v) { bi = i; break; }          // NaN wins, as in PyTorch
        if (v > best) { best = v; bi = i; }
      }
      idx[o * inner + j] = bi;
    }
  }

  softmax(rows: number, n: number, x: FArr, y: FArr, log: boolean): void {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let mx = -Infinity;
      for (let i = 0; i < n; i++) if (x[o + i] > mx) mx = x[o + i];
      if (mx === -Infinity) mx = 0;
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(x[o + i] - mx);
      const lse = mx + Math.log(s);
      for (let i = 0; i < n; i++) y[o + i] = log ? x[o + i] - lse : Math.exp(x[o + i] - lse);
    }
  }

  softmaxBackward(rows: number, n: number, y: FArr, dy: FArr, dx: FArr, log: boolean): void {
    for (let r = 0; r < rows; r++) {
      const o = r * n;
      let s = 0;
      for (let i = 0; i < n; i++) s += log ? dy[o + i] : dy[o + i] * y[o + i];
      for (let i = 0; i < n; i++) dx[o + i] = log ? dy[o + i] - Math.exp(y[o + i]) * s : y[o + i] * (dy[o + i] - s);
    }
  }

  gemm(g: GemmArgs): void {
    const A = toF64(g.A, g.bf16), B = toF64(g.B, g.bf16), C = g.C;
    const { M, N, K } = g;
    for (let b = 0; b < g.batch; b++) {
      const a0 = b * g.strideA, b0 = b * g.strideB, c0 = b * g.strideC;
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = A[a0 + (g.transA ? k * g.lda + i : i * g.lda + k)];
          const bv = B[b0 + (g.transB ? j * g.ldb + k : k * g.ldb + j)];
          acc += av * bv;
        }
        const ci = c0 + i * g.ldc + j;
        C[ci] = g.beta === 0 ? g.alpha * acc : g.alpha * acc + g.beta * C[ci];
      }
    }
  }

  copyStrided(shape: readonly number[], src: TypedArray, srcOff: number, srcStrides: readonly number[], dst: TypedArray): void {
    forEachStrided(shape, srcOff, srcStrides, 0, srcStrides, (i, ia) => { dst[i] = src[ia]; });
  }

  cast(from: DType, x: TypedArray, to: DType, y: TypedArray): void {
    const dec = from === "bf16" ? bf16ToF32 : from === "f16" ? f16ToF32 : null;
    const enc = to === "bf16" ? f32ToBf16 : to === "f16" ? f32ToF16 : to === "bool" ? (v: number) => (v ? 1 : 0)
      : to === "i32" || to === "i8" || to === "u8" ? (v: number) => Math.trunc(v) : null;
    for (let i = 0; i < x.length; i++) {
      const v = dec ? dec(x[i]) : x[i];
      y[i] = enc ? enc(v) : v;
    }
  }

  dequantQ8Rows(groups: number, T: number, cap: number, d: number, src: Uint8Array, dst: Float32Array): void {
    const nb = Math.ceil(d / 32), rb = nb * 34;
    if (cap < T || src.length < groups * cap * rb || dst.length < groups * T * d)
      throw new FathomError("dequantQ8Rows", `src of ${src.length} bytes / dst of ${dst.length} floats too small for ${groups}×${T} rows (cap ${cap}) of ${d}`);
    for (let g = 0; g < groups; g++) for (let t = 0; t < T; t++) {
      const s = (g * cap + t) * rb, o = (g * T + t) * d;
      for (let b = 0; b < nb; b++) {
        const sc = f16ToF32(src[s + b * 34] | (src[s + b * 34 + 1] << 8)), n = Math.min(32, d - b * 32);
        for (let j = 0; j < n; j++) dst[o + b * 32 + j] = ((src[s + b * 34 + 2 + j] << 24) >> 24) * sc;
      }
    }
  }

  adamw(p: FArr, g: FArr, m: FArr, v: FArr, o: AdamWArgs): void {
    const bc1 = 1 - Math.pow(o.beta1, o.step), bc2 = 1 - Math.pow(o.beta2, o.step);
    for (let i = 0; i < p.length; i++) {
      let pi = p[i] * (1 - o.lr * o.weightDecay);
      const mi = o.beta1 * m[i] + (1 - o.beta1) * g[i];
      const vi = o.beta2 * v[i] + (1 - o.beta2) * g[i] * g[i];
      pi -= (o.lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + o.eps);
      p[i] = pi; m[i] = mi; v[i] = vi;
    }
  }

  // ---- quantized products: the weight kept as given; each product dequantizes rows (QUANT_TYPES) and sums in f64.
  /** The handle refers to `data` and `scales` (no copy). */
  get quantPackCopies(): boolean { return false; }
  quantPack(type: QuantKind, N: number, K: number, data: Uint8Array, scales: Float32Array | null): object {
    const w: QuantWeightData = { type, N, K, data, scales };
    checkQuantWeight(w, "quantPack");
    return w;
  }
  quantMatmul(M: number, x: Float32Array, packed: object, out: Float32Array): void {
    refQuantMatmul(M, x, packed as QuantWeightData, out);
  }
}
