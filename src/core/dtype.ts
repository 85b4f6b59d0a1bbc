// Element types and their storage. bf16 and f16 live as 16-bit patterns in Uint16Array; packed quantized
// block types (q8_0, q4_0, q4_K) live as bytes, one block per `blockSize` elements (kernels come with quantization).
import { DTypeError } from "./errors.js";
import { arenaAlloc } from "./arena.js";

export type FloatDType = "f64" | "f32" | "f16" | "bf16";
export type IntDType = "i32" | "i8" | "u8";
export type BlockDType = "q8_0" | "q4_0" | "q4_K";
export type DType = FloatDType | IntDType | "bool" | BlockDType;

export type TypedArray = Float64Array | Float32Array | Uint16Array | Int32Array | Int8Array | Uint8Array;

interface DTypeInfo {
  /** Bytes per element, or per block for block types. */
  bytes: number;
  /** Elements per block (1 for plain types). */
  blockSize: number;
  kind: "float" | "int" | "bool" | "block";
  array: { new (n: number): TypedArray; new (buf: ArrayBufferLike, byteOffset: number, length: number): TypedArray };
}

// q8_0: f16 scale + 32 int8; q4_0: f16 scale + 16 bytes of nibbles; q4_K: 256-element super-block of 144 bytes (ggml layout).
export const DTYPES: Record<DType, DTypeInfo> = {
  f64: { bytes: 8, blockSize: 1, kind: "float", array: Float64Array },
  f32: { bytes: 4, blockSize: 1, kind: "float", array: Float32Array },
  f16: { bytes: 2, blockSize: 1, kind: "float", array: Uint16Array },
  bf16: { bytes: 2, blockSize: 1, kind: "float", array: Uint16Array },
  i32: { bytes: 4, blockSize: 1, kind: "int", array: Int32Array },
  i8: { bytes: 1, blockSize: 1, kind: "int", array: Int8Array },
  u8: { bytes: 1, blockSize: 1, kind: "int", array: Uint8Array },
  bool: { bytes: 1, blockSize: 1, kind: "bool", array: Uint8Array },
  q8_0: { bytes: 34, blockSize: 32, kind: "block", array: Uint8Array },
  q4_0: { bytes: 18, blockSize: 32, kind: "block", array: Uint8Array },
  q4_K: { bytes: 144, blockSize: 256, kind: "block", array: Uint8Array },
};

export const isFloat = (d: DType): d is FloatDType => DTYPES[d].kind === "float";
export const isHalf = (d: DType): boolean => d === "f16" || d === "bf16";
export const isBlock = (d: DType): d is BlockDType => DTYPES[d].kind === "block";

export function checkDType(d: string, op: string): DType {
  if (!(d in DTYPES)) throw new DTypeError(op, `unknown dtype '${d}' (expected one of ${Object.keys(DTYPES).join(", ")})`);
  return d as DType;
}

/**
 * Storage for `numel` elements of dtype d (block types: numel must be a multiple of the block size), zeroed. Inside a
 * step arena's run (core/arena.ts) it comes from the arena and is reused by the next step.
 */
export function allocate(d: DType, numel: number): TypedArray {
  const info = DTYPES[d];
  if (info.blockSize > 1 && numel % info.blockSize !== 0) throw new DTypeError("allocate", `${d} needs a multiple of ${info.blockSize} elements, got ${numel}`);
  const units = info.blockSize > 1 ? (numel / info.blockSize) * info.bytes : numel;
  return arenaAlloc(d, units, info.array);
}

/** The dtype two operands compute in (PyTorch-style promotion for the types we have). */
export function promote(a: DType, b: DType, op: string): DType {
  if (a === b) return a;
  if (isBlock(a) || isBlock(b)) throw new DTypeError(op, `packed block types (${a}, ${b}) must be dequantized first`);
  const rank = (d: DType) => (d === "f64" ? 5 : d === "f32" ? 4 : d === "bf16" || d === "f16" ? 3 : d === "i32" ? 2 : d === "i8" || d === "u8" ? 1 : 0);
  if (isHalf(a) && isHalf(b)) return "f32";
  if ((a === "i8" && b === "u8") || (a === "u8" && b === "i8")) return "i32";
  return rank(a) >= rank(b) ? a : b;
}

// ---- 16-bit float conversions (round to nearest even; NaN stays NaN). Bit-exact with native/common.h.
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function bf16ToF32(h: number): number {
  u32buf[0] = h << 16;
  return f32buf[0];
}

export function f32ToBf16(f: number): number {
  f32buf[0] = f;
  let u = u32buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  u = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
  return u >>> 16;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

export function f32ToF16(f: number): number {
  f32buf[0] = f;
  const u = u32buf[0];
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  if (a > 0x7f800000) return sign | 0x7e00;
  if (a >= 0x477ff000) return sign | 0x7c00;
  if (a < 0x38800000) {
    if (a < 0x33000000) return sign;
    const e = a >>> 23, m = (a & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  const r = (a + 0xfff + ((a >>> 13) & 1) - 0x38000000) >>> 0;
  return sign | (r >>> 13);
}

/** Reads element i of a storage as a JS number (16-bit floats decoded). */
export function readAt(d: DType, data: TypedArray, i: number): number {
  if (d === "bf16") return bf16ToF32(data[i]);
  if (d === "f16") return f16ToF32(data[i]);
  return data[i];
}

/** Encodes a JS number for storage (rounding to the dtype). */
export function encode(d: DType, v: number): number {
  if (d === "bf16") return f32ToBf16(v);
  if (d === "f16") return f32ToF16(v);
  if (d === "bool") return v ? 1 : 0;
  if (d === "i32") return v | 0;
  return v;
}
