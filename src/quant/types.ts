// The quantized block types as one table (ggml's type_traits): name, ggml type id, block size, bytes per block, and
// reference quantize (f32 → bytes) / dequantize (bytes → f32) routines that follow ggml-quants.c in float32
// arithmetic. Dequantization is bit-exact with ggml; quantization matches ggml's *_ref routines except where a
// compiler's FMA contraction changes a rounding. These are the specification, not fast kernels.
import { f16ToF32, f32ToF16, type BlockDType } from "../core/dtype.js";
import { FathomError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";

export interface QuantType {
  name: BlockDType;
  /** ggml_type id as written in GGUF tensor infos. */
  ggmlType: number;
  /** Elements per block. */
  blockSize: number;
  bytesPerBlock: number;
  /** Quantizes x (length a multiple of blockSize) into blocks; writes into `out` when given. */
  quantizeRef(x: ArrayLike<number>, out?: Uint8Array): Uint8Array;
  /** Dequantizes whole blocks (src.length a multiple of bytesPerBlock); writes into `out` when given. */
  dequantizeRef(src: Uint8Array, out?: Float32Array): Float32Array;
}

const fr = Math.fround;
const QK_K = 256;

function sizes(q: { name: string; blockSize: number; bytesPerBlock: number }, nIn: number, what: "elements" | "bytes"): number {
  const unit = what === "elements" ? q.blockSize : q.bytesPerBlock;
  if (nIn % unit !== 0) throw new FathomError("quant", `${q.name}: ${nIn} ${what} is not a multiple of ${unit}`);
  return nIn / unit;
}

function outBytes(q: QuantType, nb: number, out?: Uint8Array): Uint8Array {
  const n = nb * q.bytesPerBlock;
  if (!out) return new Uint8Array(n);
  if (out.length < n) throw new FathomError("quant", `${q.name}: output holds ${out.length} bytes, need ${n}`);
  return out;
}

function outFloats(q: QuantType, nb: number, out?: Float32Array): Float32Array {
  const n = nb * q.blockSize;
  if (!out) return new Float32Array(n);
  if (out.length < n) throw new FathomError("quant", `${q.name}: output holds ${out.length} floats, need ${n}`);
  return out;
}

const rdF16 = (b: Uint8Array, o: number): number => f16ToF32(b[o] | (b[o + 1] << 8));
function wrF16(b: Uint8Array, o: number, v: number): void {
  const h = f32ToF16(v);
  b[o] = h & 0xff; b[o + 1] = h >> 8;
}

// ggml's nearest_int: (float)(f + 1.5·2^23) read back as bits, i.e. round half to even for |f| ≤ 2^22 (and the
// same bit-level result outside that range, where ggml asserts in debug builds).
const niF = new Float32Array(1), niU = new Int32Array(niF.buffer);
export function nearestInt(f: number): number {
  niF[0] = f + 12582912;
  return (niU[0] & 0x007fffff) - 0x00400000;
}

// C's roundf: half away from zero.
const roundAway = (v: number): number => (v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5));

// ---- Q8_0: d (f16) + 32 × int8; x = d·q
const Q8_0: QuantType = {
  name: "q8_0", ggmlType: 8, blockSize: 32, bytesPerBlock: 34,
  quantizeRef(x, out) {
    const nb = sizes(this, x.length, "elements"), y = outBytes(this, nb, out);
    for (let i = 0; i < nb; i++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(fr(x[i * 32 + j])));
      const d = fr(amax / 127), id = d ? fr(1 / d) : 0, o = i * 34;
      wrF16(y, o, d);
      for (let j = 0; j < 32; j++) y[o + 2 + j] = roundAway(fr(fr(x[i * 32 + j]) * id)) & 0xff;
    }
    return y;
  },
  dequantizeRef(src, out) {
    const nb = sizes(this, src.length, "bytes"), y = outFloats(this, nb, out);
    for (let i = 0; i < nb; i++) {
      const o = i * 34, d = rdF16(src, o);
      for (let j = 0; j < 32; j++) y[i * 32 + j] = ((src[o + 2 + j] << 24) >> 24) * d;
    }
    return y;
  },
};

// ---- Q4_0: d (f16) + 16 bytes; byte j = element j (low nibble) | element j+16 (high nibble); x = d·(q − 8)
const Q4_0: QuantType = {
  name: "q4_0", ggmlType: 2, blockSize: 32, bytesPerBlock: 18,
  quantizeRef(x, out) {
    const nb = sizes(this, x.length, "elements"), y = outBytes(this, nb, out);
    for (let i = 0; i < nb; i++) {
      let amax = 0, max = 0;
      for (let j = 0; j < 32; j++) {
        const v = fr(x[i * 32 + j]);
        if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
      }
      const d = fr(max / -8), id = d ? fr(1 / d) : 0, o = i * 18;
      wrF16(y, o, d);
      for (let j = 0; j < 16; j++) {
        // (int8_t)(x·id + 8.5f): truncation toward zero, then min(15, ·)
        const q0 = Math.min(15, Math.trunc(fr(fr(fr(x[i * 32 + j]) * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(fr(fr(fr(x[i * 32 + 16 + j]) * id) + 8.5)));
        y[o + 2 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
      }
    }
    return y;
  },
  dequantizeRef(src, out) {
    const nb = sizes(this, src.length, "bytes"), y = outFloats(this, nb, out);
    for (let i = 0; i < nb; i++) {
      const o = i * 18, d = rdF16(src, o);
      for (let j = 0; j < 16; j++) {
        const b = src[o + 2 + j];
        y[i * 32 + j] = ((b & 0x0f) - 8) * d;
        y[i * 32 + j + 16] = ((b >> 4) - 8) * d;
      }
    }
    return y;
  },
};

// ---- Q4_K: 256-element super-block = d (f16), dmin (f16), 12 bytes of 6-bit (scale, min) × 8, 128 bytes of nibbles.

/** Reads sub-block j's 6-bit (scale, min) from the 12 packed bytes at q[o..o+12) (ggml get_scale_min_k4). */
export function getScaleMinK4(j: number, q: Uint8Array, o = 0): [number, number] {
  if (j < 4) return [q[o + j] & 63, q[o + j + 4] & 63];
  return [(q[o + j + 4] & 0x0f) | ((q[o + j - 4] >> 6) << 4), (q[o + j + 4] >> 4) | ((q[o + j] >> 6) << 4)];
}

/** Packs eight 6-bit scales and eight 6-bit mins into 12 bytes (the inverse of getScaleMinK4). */
export function packScaleMinK4(scales: ArrayLike<number>, mins: ArrayLike<number>, out: Uint8Array = new Uint8Array(12), o = 0): Uint8Array {
  for (let k = 0; k < 12; k++) out[o + k] = 0;
  for (let j = 0; j < 8; j++) {
    const ls = scales[j] & 63, lm = mins[j] & 63;
    if (j < 4) { out[o + j] = ls; out[o + j + 4] = lm; }
    else {
      out[o + j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
      out[o + j - 4] |= (ls >> 4) << 6;
      out[o + j] |= (lm >> 4) << 6;
    }
  }
  return out;
}

/**
 * ggml make_qkx2_quants for one 32-element sub-block: fits x ≈ scale·L − theMin with L in [0, nmax] by a weighted
 * least-squares search over nstep+1 candidate inverse scales. Returns [scale, theMin]; fills L. float32 throughout.
 */
function makeQkx2Quants(x: Float32Array, xo: number, n: number, nmax: number, w: Float32Array, L: Uint8Array, lo: number,
  Laux: Uint8Array, rmin: number, rdelta: number, nstep: number): [number, number] {
  let min = x[xo], max = x[xo], sumW = w[0], sumX = fr(sumW * x[xo]);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = fr(sumW + w[i]);
    sumX = fr(sumX + fr(w[i] * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return [0, -min];
  }
  let iscale = fr(nmax / fr(max - min)), scale = fr(1 / iscale), bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[xo + i] - min)))));
    L[lo + i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[xo + i]);
    bestError = fr(bestError + fr(w[i] * fr(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[xo + i] - min)))));
      Laux[i] = l;
      const wl = fr(w[i] * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[xo + i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) { thisMin = 0; thisScale = fr(sumXL / sumL2); }
      let cur = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[xo + i]);
        cur = fr(cur + fr(w[i] * fr(diff * diff)));
      }
      if (cur < bestError) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i];
        bestError = cur; scale = thisScale; min = thisMin;
      }
    }
  }
  return [scale, -min];
}

const Q4_K: QuantType = {
  name: "q4_K", ggmlType: 12, blockSize: 256, bytesPerBlock: 144,
  quantizeRef(xIn, out) {
    const nb = sizes(this, xIn.length, "elements"), y = outBytes(this, nb, out);
    const x = xIn instanceof Float32Array ? xIn : Float32Array.from(xIn);
    const L = new Uint8Array(QK_K), Laux = new Uint8Array(32), w = new Float32Array(32);
    const scales = new Float32Array(8), mins = new Float32Array(8), ls = new Uint8Array(8), lm = new Uint8Array(8);
    for (let i = 0; i < nb; i++) {
      const xo = i * QK_K, o = i * 144;
      let maxScale = 0, maxMin = 0;
      for (let j = 0; j < 8; j++) {
        let sumX2 = 0;
        for (let l = 0; l < 32; l++) { const v = x[xo + 32 * j + l]; sumX2 = fr(sumX2 + fr(v * v)); }
        const avX = fr(Math.sqrt(fr(sumX2 / 32)));
        for (let l = 0; l < 32; l++) w[l] = fr(avX + Math.abs(x[xo + 32 * j + l]));
        const [s, m] = makeQkx2Quants(x, xo + 32 * j, 32, 15, w, L, 32 * j, Laux, -1, fr(0.1), 20);
        scales[j] = s; mins[j] = m;
        if (s > maxScale) maxScale = s;
        if (m > maxMin) maxMin = m;
      }
      const invScale = maxScale > 0 ? fr(63 / maxScale) : 0, invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
      for (let j = 0; j < 8; j++) {
        // uint8_t ls = nearest_int(...); ls = MIN(63, ls)
        ls[j] = Math.min(63, nearestInt(fr(invScale * scales[j])) & 0xff);
        lm[j] = Math.min(63, nearestInt(fr(invMin * mins[j])) & 0xff);
      }
      packScaleMinK4(ls, lm, y, o + 4);
      wrF16(y, o, fr(maxScale / 63));
      wrF16(y, o + 2, fr(maxMin / 63));
      const d = rdF16(y, o), dmin = rdF16(y, o + 2);
      for (let j = 0; j < 8; j++) {
        const [sc, m] = getScaleMinK4(j, y, o + 4);
        const dj = fr(d * sc);
        if (!dj) continue;
        const dm = fr(dmin * m);
        for (let ii = 0; ii < 32; ii++) {
          const l = nearestInt(fr(fr(x[xo + 32 * j + ii] + dm) / dj));
          L[32 * j + ii] = Math.max(0, Math.min(15, l));
        }
      }
      for (let g = 0; g < 4; g++)
        for (let l = 0; l < 32; l++) y[o + 16 + 32 * g + l] = L[64 * g + l] | (L[64 * g + 32 + l] << 4);
    }
    return y;
  },
  dequantizeRef(src, out) {
    const nb = sizes(this, src.length, "bytes"), y = outFloats(this, nb, out);
    for (let i = 0; i < nb; i++) {
      const o = i * 144, d = rdF16(src, o), dmin = rdF16(src, o + 2);
      for (let g = 0; g < 4; g++) {
        const [s1, m1] = getScaleMinK4(2 * g, src, o + 4), [s2, m2] = getScaleMinK4(2 * g + 1, src, o + 4);
        // NOTE: d·sc, (d·sc)·q and dmin·m are exact in float32, so one rounding of the difference is ggml's result.
        const d1 = fr(d * s1), mm1 = fr(dmin * m1), d2 = fr(d * s2), mm2 = fr(dmin * m2);
        const base = i * QK_K + 64 * g, qo = o + 16 + 32 * g;
        for (let l = 0; l < 32; l++) {
          const b = src[qo + l];
          y[base + l] = d1 * (b & 0x0f) - mm1;
          y[base + 32 + l] = d2 * (b >> 4) - mm2;
        }
      }
    }
    return y;
  },
};

export const QUANT_TYPES: Readonly<Record<BlockDType, QuantType>> = Object.freeze({ q8_0: Q8_0, q4_0: Q4_0, q4_K: Q4_K });

/** Quantizes a float tensor whose last dimension is a multiple of the block size into a block tensor (same shape). */
export function quantizeTensor(x: Tensor, dtype: BlockDType): Tensor {
  const q = QUANT_TYPES[dtype];
  if (!q) throw new FathomError("quantize", `unknown block type '${dtype}' (expected q8_0, q4_0 or q4_K)`);
  const last = x.shape.length ? x.shape[x.shape.length - 1] : 1;
  if (last % q.blockSize !== 0) throw new FathomError("quantize", `${dtype} needs the last dimension to be a multiple of ${q.blockSize}, got [${x.shape.join(", ")}]`);
  const data = x.float().buffer() as Float32Array;
  return Tensor.from(q.quantizeRef(data), dtype, x.shape);
}

/** Dequantizes a block tensor (q8_0, q4_0, q4_K) to f32 with the same shape. */
export function dequantizeTensor(x: Tensor): Tensor {
  const q = QUANT_TYPES[x.dtype as BlockDType];
  if (!q) throw new FathomError("dequantize", `expected a block tensor (q8_0, q4_0, q4_K), got ${x.dtype}`);
  return Tensor.from(q.dequantizeRef(x.buffer() as Uint8Array), "f32", x.shape);
}
