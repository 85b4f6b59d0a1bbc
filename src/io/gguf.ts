// GGUF (llama.cpp's model container, version 3; version 2 read too): a reader that maps the file and wraps tensor
// data without copying, and an atomic writer. Layout: magic, version, counts, metadata key/values, tensor infos
// (dims ne0 first, i.e. reversed PyTorch shape), padding, then the tensor data, each tensor aligned. Every length
// and count read from the file is checked against the bytes that remain, so bad input raises FormatError only.
// Quantized blocks are decoded by src/quant/types.ts; this file knows only their sizes.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { bf16ToF32, f16ToF32, type DType } from "../core/dtype.js";
import { FathomError, FormatError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { QUANT_TYPES } from "../quant/types.js";
import { mapFile } from "./mapped_file.js";

// ---- value types
export type GGUFScalarType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "bool" | "string" | "u64" | "i64" | "f64";
export type GGUFType = GGUFScalarType | "array";
type NumArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array | BigUint64Array | BigInt64Array;
/** An array value: numeric items as a typed array, strings/bools as plain arrays, nested arrays as GGUFArray[]. */
export interface GGUFArray { itemType: GGUFType; items: NumArray | string[] | boolean[] | GGUFArray[] }
export type GGUFValue = number | bigint | boolean | string | GGUFArray;
export interface GGUFEntry { type: GGUFType; value: GGUFValue }

/** Writer input for an array: numeric items may be a plain array of numbers (or bigints for 64-bit types). */
export interface GGUFArrayInput { itemType: GGUFType; items: ArrayLike<number | bigint> | readonly string[] | readonly boolean[] | readonly GGUFArrayInput[] }
type ScalarValue = { u8: number; i8: number; u16: number; i16: number; u32: number; i32: number; f32: number; f64: number; u64: number | bigint; i64: number | bigint; bool: boolean; string: string };
/** One metadata entry for the writer, typed by `type`: `{ key: "llama.block_count", type: "u32", value: 2 }`. */
export type GGUFMetadataEntry = { [T in GGUFScalarType]: { key: string; type: T; value: ScalarValue[T] } }[GGUFScalarType] | { key: string; type: "array"; value: GGUFArrayInput };

// id order is the file's value_type enum
const VALUE_TYPES: GGUFType[] = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
const NUM: Record<string, { size: number; arr: { new (b: ArrayBuffer, o: number, n: number): NumArray; new (n: number): NumArray } }> = {
  u8: { size: 1, arr: Uint8Array }, i8: { size: 1, arr: Int8Array }, u16: { size: 2, arr: Uint16Array }, i16: { size: 2, arr: Int16Array },
  u32: { size: 4, arr: Uint32Array }, i32: { size: 4, arr: Int32Array }, f32: { size: 4, arr: Float32Array }, f64: { size: 8, arr: Float64Array },
  u64: { size: 8, arr: BigUint64Array }, i64: { size: 8, arr: BigInt64Array },
};
const INT_RANGE: Record<string, [number, number]> = { u8: [0, 0xff], i8: [-0x80, 0x7f], u16: [0, 0xffff], i16: [-0x8000, 0x7fff], u32: [0, 0xffffffff], i32: [-0x80000000, 0x7fffffff] };
const isIntType = (t: GGUFType): boolean => t in INT_RANGE || t === "u64" || t === "i64";
/** Minimum encoded size of one value of each type (bounds counts read from the file). */
const minSize = (t: GGUFType): number => (t === "string" ? 8 : t === "array" ? 12 : t === "bool" ? 1 : NUM[t].size);
export const MAX_ARRAY_DEPTH = 8;

// ---- ggml tensor types: id → [name, elements per block, bytes per block]
const GGML_TYPES: Record<number, [string, number, number]> = {
  0: ["F32", 1, 4], 1: ["F16", 1, 2], 2: ["Q4_0", 32, 18], 3: ["Q4_1", 32, 20], 6: ["Q5_0", 32, 22], 7: ["Q5_1", 32, 24],
  8: ["Q8_0", 32, 34], 9: ["Q8_1", 32, 36], 10: ["Q2_K", 256, 84], 11: ["Q3_K", 256, 110], 12: ["Q4_K", 256, 144],
  13: ["Q5_K", 256, 176], 14: ["Q6_K", 256, 210], 15: ["Q8_K", 256, 292], 16: ["IQ2_XXS", 256, 66], 17: ["IQ2_XS", 256, 74],
  18: ["IQ3_XXS", 256, 98], 19: ["IQ1_S", 256, 50], 20: ["IQ4_NL", 32, 18], 21: ["IQ3_S", 256, 110], 22: ["IQ2_S", 256, 82],
  23: ["IQ4_XS", 256, 136], 24: ["I8", 1, 1], 25: ["I16", 1, 2], 26: ["I32", 1, 4], 27: ["I64", 1, 8], 28: ["F64", 1, 8],
  29: ["IQ1_M", 256, 56], 30: ["BF16", 1, 2], 34: ["TQ1_0", 256, 54], 35: ["TQ2_0", 256, 66], 39: ["MXFP4", 32, 17],
};
/** ggml type id → Fathom dtype, for the types get() wraps directly. */
const DTYPE_OF: Record<number, DType> = { 0: "f32", 1: "f16", 30: "bf16", 28: "f64", 24: "i8", 26: "i32", 8: "q8_0", 2: "q4_0", 12: "q4_K" };
const GGML_OF: Partial<Record<DType, number>> = { f32: 0, f16: 1, bf16: 30, f64: 28, i8: 24, i32: 26, q8_0: 8, q4_0: 2, q4_K: 12 };
export const ggmlTypeName = (t: number): string => GGML_TYPES[t]?.[0] ?? `unknown(${t})`;

export interface GGUFTensorInfo {
  name: string;
  /** ggml_type id and its name ("Q4_K"). */
  type: number;
  typeName: string;
  /** ggml dims, ne0 (innermost) first. */
  ne: number[];
  /** PyTorch order: reversed ne. */
  shape: number[];
  /** Byte offset relative to the data section (as stored), and absolute in the file. */
  offset: number;
  fileOffset: number;
  byteSize: number;
}

const MAGIC = 0x46554747, DEFAULT_ALIGNMENT = 32;
const utf8 = new TextDecoder("utf-8"), utf8enc = new TextEncoder();
const isPow2 = (a: number): boolean => Number.isInteger(a) && a >= 1 && a <= 2 ** 30 && (a & (a - 1)) === 0;
const alignUp = (o: number, a: number): number => o + ((a - (o % a)) % a);

// ---------------------------------------------------------------- reader
class Cursor {
  pos = 0;
  private readonly dv: DataView;
  constructor(readonly bytes: Uint8Array, private readonly fail: (msg: string) => never) { this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
  get left(): number { return this.bytes.length - this.pos; }
  need(n: number, what: string): void { if (n > this.left) this.fail(`${what} needs ${n} bytes at offset ${this.pos}, only ${this.left} remain`); }
  u32(what: string): number { this.need(4, what); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
  /** A u64 as a number; fails when it is above `max` (the caller's bound, at most 2^53). */
  u64(what: string, max = Number.MAX_SAFE_INTEGER): number {
    this.need(8, what);
    const v = this.dv.getBigUint64(this.pos, true); this.pos += 8;
    if (v > BigInt(Math.max(0, max))) this.fail(`${what} is ${v}, more than ${Math.max(0, max)}`);
    return Number(v);
  }
  string(what: string): string {
    const n = this.u64(`${what} length`, this.left - 8);
    const b = this.bytes.subarray(this.pos, this.pos + n); this.pos += n;
    let ascii = n <= 64;
    for (let i = 0; ascii && i < n; i++) if (b[i] >= 0x80) ascii = false;
    return ascii ? String.fromCharCode(...b) : utf8.decode(b);
  }
  scalar(t: GGUFType, what: string): GGUFValue {
    if (t === "string") return this.string(what);
    if (t === "array") return this.array(what, 1);
    const size = minSize(t), p = this.pos, dv = this.dv;
    this.need(size, what);
    this.pos += size;
    switch (t) {
      case "u8": return dv.getUint8(p); case "i8": return dv.getInt8(p);
      case "u16": return dv.getUint16(p, true); case "i16": return dv.getInt16(p, true);
      case "u32": return dv.getUint32(p, true); case "i32": return dv.getInt32(p, true);
      case "f32": return dv.getFloat32(p, true); case "f64": return dv.getFloat64(p, true);
      case "bool": return dv.getUint8(p) !== 0;
      case "u64": { const v = dv.getBigUint64(p, true); return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
      default: { const v = dv.getBigInt64(p, true); return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v; }
    }
  }
  valueType(what: string): GGUFType {
    const id = this.u32(`${what} type`);
    const t = VALUE_TYPES[id];
    if (t === undefined) this.fail(`${what} has unknown value type ${id} (expected 0..12)`);
    return t;
  }
  array(what: string, depth: number): GGUFArray {
    if (depth > MAX_ARRAY_DEPTH) this.fail(`${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
    const itemType = this.valueType(`${what} item`);
    const n = this.u64(`${what} count`, Math.floor((this.left - 8) / minSize(itemType)));
    const num = NUM[itemType];
    if (num) {
      const copy = this.bytes.slice(this.pos, this.pos + n * num.size); // aligned copy for the typed view
      this.pos += n * num.size;
      return { itemType, items: new num.arr(copy.buffer, 0, n) };
    }
    if (itemType === "bool") {
      const items = Array.from(this.bytes.subarray(this.pos, this.pos + n), (b) => b !== 0);
      this.pos += n;
      return { itemType, items };
    }
    if (itemType === "string") {
      const items: string[] = new Array(n);
      for (let i = 0; i < n; i++) items[i] = this.string(`${what}[${i}]`);
      return { itemType, items };
    }
    const items: GGUFArray[] = new Array(n);
    for (let i = 0; i < n; i++) items[i] = this.array(`${what}[${i}]`, depth + 1);
    return { itemType, items };
  }
}

export class GGUFFile {
  readonly metadata = new Map<string, GGUFEntry>();
  readonly tensors: GGUFTensorInfo[] = [];
  readonly version: number;
  readonly alignment: number;
  /** Absolute byte offset of the tensor data section. */
  readonly dataOffset: number;
  private readonly byName = new Map<string, GGUFTensorInfo>();

  /** `mapped`: the buffer is a memory map of the file (open() with the native addon loaded). */
  private constructor(readonly name: string, readonly buffer: ArrayBuffer, readonly mapped = false) {
    const fail = (msg: string): never => { throw new FormatError("gguf", `${name}: ${msg}`); };
    const c = new Cursor(new Uint8Array(buffer), fail);
    if (c.left < 4 || c.u32("magic") !== MAGIC) fail("bad magic (not a GGUF file; expected 'GGUF')");
    this.version = c.u32("version");
    if (this.version === 0x03000000 || this.version === 0x02000000) fail("big-endian GGUF is not supported");
    if (this.version !== 3 && this.version !== 2) fail(`unsupported GGUF version ${this.version} (expected 2 or 3)`);
    const nTensors = c.u64("tensor count", Math.floor((c.left - 16) / 32)); // smallest tensor info: 32 bytes
    const nKv = c.u64("metadata count", Math.floor((c.left - 8) / 13)); // smallest key/value: 13 bytes
    for (let i = 0; i < nKv; i++) {
      const key = c.string(`metadata key #${i}`);
      if (this.metadata.has(key)) fail(`duplicate metadata key '${key}'`);
      const type = c.valueType(`metadata '${key}'`);
      this.metadata.set(key, { type, value: c.scalar(type, `metadata '${key}'`) });
    }
    const al = this.metadata.get("general.alignment");
    let alignment = DEFAULT_ALIGNMENT;
    if (al) {
      if (!isIntType(al.type) || typeof al.value !== "number" || !isPow2(al.value)) fail(`general.alignment must be an integer power of two, got ${al.type} ${String(al.value)}`);
      alignment = al.value as number;
    }
    this.alignment = alignment;
    for (let i = 0; i < nTensors; i++) {
      const tname = c.string(`tensor name #${i}`);
      const what = `tensor '${tname}'`;
      if (this.byName.has(tname)) fail(`duplicate tensor name '${tname}'`);
      const nDims = c.u32(`${what} n_dims`);
      if (nDims < 1 || nDims > 4) fail(`${what} has n_dims ${nDims} (expected 1..4)`);
      const ne: number[] = [];
      let numel = 1;
      for (let d = 0; d < nDims; d++) {
        const v = c.u64(`${what} dim ${d}`, Number.MAX_SAFE_INTEGER);
        if (v < 1) fail(`${what} dim ${d} is ${v} (expected ≥ 1)`);
        ne.push(v);
        numel *= v;
        if (numel > buffer.byteLength * 256) fail(`${what} has ${numel}+ elements, more than the file can hold`);
      }
      const type = c.u32(`${what} type`);
      const tt = GGML_TYPES[type];
      if (!tt) fail(`${what} has unknown ggml type ${type}`);
      const [typeName, bs, bb] = tt;
      if (ne[0] % bs !== 0) fail(`${what} of type ${typeName} has ne0 = ${ne[0]}, not a multiple of the block size ${bs}`);
      const offset = c.u64(`${what} offset`, buffer.byteLength);
      if (offset % alignment !== 0) fail(`${what} offset ${offset} is not a multiple of the alignment ${alignment}`);
      const info: GGUFTensorInfo = { name: tname, type, typeName, ne, shape: [...ne].reverse(), offset, fileOffset: 0, byteSize: (numel / bs) * bb };
      this.tensors.push(info);
      this.byName.set(tname, info);
    }
    this.dataOffset = alignUp(c.pos, alignment);
    if (this.tensors.length && this.dataOffset > buffer.byteLength) fail(`data section at ${this.dataOffset} starts past the end of the file (${buffer.byteLength} bytes)`);
    for (const t of this.tensors) {
      t.fileOffset = this.dataOffset + t.offset;
      if (t.fileOffset + t.byteSize > buffer.byteLength)
        fail(`tensor '${t.name}' data [${t.fileOffset}, ${t.fileOffset + t.byteSize}) runs past the end of the file (${buffer.byteLength} bytes)`);
    }
    const sorted = [...this.tensors].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++)
      if (sorted[i - 1].offset + sorted[i - 1].byteSize > sorted[i].offset) fail(`tensors '${sorted[i - 1].name}' and '${sorted[i].name}' overlap`);
  }

  /** Memory-maps a file (no copy of tensor data). */
  static open(path: string): GGUFFile {
    const m = mapFile(path);
    return new GGUFFile(path, m.buffer, m.mapped);
  }
  /** Parses a GGUF image held in memory; `name` appears in error messages. */
  static fromBuffer(buf: ArrayBuffer | Uint8Array, name = "<buffer>"): GGUFFile {
    if (buf instanceof Uint8Array) buf = buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength && buf.buffer instanceof ArrayBuffer ? buf.buffer : buf.slice().buffer;
    return new GGUFFile(name, buf);
  }

  private fail(msg: string): never { throw new FormatError("gguf", `${this.name}: ${msg}`); }
  private entry(key: string, expected: string): GGUFEntry {
    const e = this.metadata.get(key);
    if (!e) this.fail(`missing metadata key '${key}' (expected ${expected})`);
    return e;
  }
  private wrong(key: string, e: GGUFEntry, expected: string): never {
    this.fail(`metadata '${key}' is ${e.type === "array" ? `an array of ${(e.value as GGUFArray).itemType}` : `${e.type} ${String(e.value)}`}, expected ${expected}`);
  }

  has(key: string): boolean { return this.metadata.has(key); }
  getString(key: string, fallback?: string): string {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const e = this.entry(key, "a string");
    return e.type === "string" ? (e.value as string) : this.wrong(key, e, "a string");
  }
  /** Any integer type, as a safe integer. */
  getInt(key: string, fallback?: number): number {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const e = this.entry(key, "an integer");
    return isIntType(e.type) && typeof e.value === "number" ? e.value : this.wrong(key, e, "an integer");
  }
  /** Any integer type whose value fits a u32. */
  getU32(key: string, fallback?: number): number {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const e = this.entry(key, "a u32");
    return isIntType(e.type) && typeof e.value === "number" && e.value >= 0 && e.value <= 0xffffffff ? e.value : this.wrong(key, e, "a u32 (any integer type in range)");
  }
  getF32(key: string, fallback?: number): number {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const e = this.entry(key, "an f32");
    return e.type === "f32" || e.type === "f64" ? (e.value as number) : this.wrong(key, e, "an f32");
  }
  getBool(key: string, fallback?: boolean): boolean {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const e = this.entry(key, "a bool");
    return e.type === "bool" ? (e.value as boolean) : this.wrong(key, e, "a bool");
  }
  /** The items of an array value; with `itemType`, checks the element type too. */
  getArray(key: string, itemType?: GGUFType): GGUFArray["items"] {
    const e = this.entry(key, `an array${itemType ? ` of ${itemType}` : ""}`);
    if (e.type !== "array") this.wrong(key, e, `an array${itemType ? ` of ${itemType}` : ""}`);
    const a = e.value as GGUFArray;
    if (itemType && a.itemType !== itemType) this.fail(`metadata '${key}' is an array of ${a.itemType}, expected an array of ${itemType}`);
    return a.items;
  }

  tensorInfo(name: string): GGUFTensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new FathomError("gguf", `${this.name}: no tensor named '${name}'`);
    return t;
  }

  /** The tensor in its stored type, shape in PyTorch order; zero-copy when its offset suits the element type. */
  get(name: string): Tensor {
    const t = this.tensorInfo(name);
    if (t.type === 25) { // I16: no i16 dtype, widen
      const dv = new DataView(this.buffer, t.fileOffset, t.byteSize), out = new Int32Array(t.byteSize / 2);
      for (let i = 0; i < out.length; i++) out[i] = dv.getInt16(2 * i, true);
      return Tensor.from(out, "i32", t.shape);
    }
    const dtype = DTYPE_OF[t.type];
    if (!dtype) this.fail(`tensor '${name}' has type ${t.typeName}, which Fathom cannot load (supported: F32, F16, BF16, F64, I8, I16, I32, Q8_0, Q4_0, Q4_K)`);
    const elem = dtype.startsWith("q") ? 1 : t.byteSize / t.shape.reduce((a, b) => a * b, 1);
    if (t.fileOffset % elem === 0) return Tensor.from(this.buffer, dtype, t.shape, t.fileOffset);
    const copy = new Uint8Array(this.buffer, t.fileOffset, t.byteSize).slice();
    return Tensor.from(copy.buffer, dtype, t.shape, 0);
  }

  /** The tensor as a new f32 tensor (dequantizing block types). */
  dequantize(name: string): Tensor {
    const t = this.tensorInfo(name);
    const q = Object.values(QUANT_TYPES).find((qt) => qt.ggmlType === t.type);
    if (q) return Tensor.from(q.dequantizeRef(new Uint8Array(this.buffer, t.fileOffset, t.byteSize)), "f32", t.shape);
    if (!DTYPE_OF[t.type] && t.type !== 25)
      this.fail(`cannot dequantize tensor '${name}' of type ${t.typeName} (supported: F32, F16, BF16, F64, I8, I16, I32, Q8_0, Q4_0, Q4_K)`);
    const src = this.get(name), b = src.buffer(), out = new Float32Array(b.length);
    const conv = src.dtype === "f16" ? f16ToF32 : src.dtype === "bf16" ? bf16ToF32 : null;
    for (let i = 0; i < b.length; i++) out[i] = conv ? conv(b[i]) : b[i];
    return Tensor.from(out, "f32", t.shape);
  }
}

// ---------------------------------------------------------------- writer
export interface GGUFWriteOptions {
  metadata: readonly GGUFMetadataEntry[] | GGUFMetadata;
  tensors?: readonly { name: string; tensor: Tensor }[];
  /** Power of two; written as general.alignment when not 32. Default: general.alignment from metadata, else 32. */
  alignment?: number;
}

/** An ordered metadata builder: `new GGUFMetadata().string("general.architecture", "llama").u32("llama.block_count", 2)`. */
export class GGUFMetadata {
  readonly entries: GGUFMetadataEntry[] = [];
  /** Adds an entry, or replaces the value of an existing key in place. */
  add(e: GGUFMetadataEntry): this {
    const i = this.entries.findIndex((x) => x.key === e.key);
    if (i >= 0) this.entries[i] = e; else this.entries.push(e);
    return this;
  }
  u8(key: string, value: number): this { return this.add({ key, type: "u8", value }); }
  i8(key: string, value: number): this { return this.add({ key, type: "i8", value }); }
  u16(key: string, value: number): this { return this.add({ key, type: "u16", value }); }
  i16(key: string, value: number): this { return this.add({ key, type: "i16", value }); }
  u32(key: string, value: number): this { return this.add({ key, type: "u32", value }); }
  i32(key: string, value: number): this { return this.add({ key, type: "i32", value }); }
  u64(key: string, value: number | bigint): this { return this.add({ key, type: "u64", value }); }
  i64(key: string, value: number | bigint): this { return this.add({ key, type: "i64", value }); }
  f32(key: string, value: number): this { return this.add({ key, type: "f32", value }); }
  f64(key: string, value: number): this { return this.add({ key, type: "f64", value }); }
  bool(key: string, value: boolean): this { return this.add({ key, type: "bool", value }); }
  string(key: string, value: string): this { return this.add({ key, type: "string", value }); }
  array(key: string, itemType: GGUFType, items: GGUFArrayInput["items"]): this { return this.add({ key, type: "array", value: { itemType, items } }); }
}

class ByteWriter {
  private buf = new Uint8Array(1 << 12);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private grow(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const nb = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb; this.dv = new DataView(nb.buffer);
  }
  bytes(b: Uint8Array): void { this.grow(b.length); this.buf.set(b, this.len); this.len += b.length; }
  u32(v: number): void { this.grow(4); this.dv.setUint32(this.len, v, true); this.len += 4; }
  u64(v: number | bigint): void { this.grow(8); this.dv.setBigUint64(this.len, BigInt(v), true); this.len += 8; }
  string(s: string): void { const b = utf8enc.encode(s); this.u64(b.length); this.bytes(b); }
  pad(a: number): void { const n = alignUp(this.len, a) - this.len; this.grow(n); this.buf.fill(0, this.len, this.len + n); this.len += n; }
  num(t: GGUFScalarType, v: number | bigint, what: string): void {
    const bad = (): never => { throw new FathomError("gguf", `${what}: ${String(v)} is not a valid ${t}`); };
    const size = minSize(t); this.grow(size); const p = this.len, dv = this.dv;
    if (t === "u64" || t === "i64") {
      const b = typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : bad();
      if (t === "u64" ? b < 0n || b >= 1n << 64n : b < -(1n << 63n) || b >= 1n << 63n) bad();
      if (t === "u64") dv.setBigUint64(p, b, true); else dv.setBigInt64(p, b, true);
    } else {
      if (typeof v !== "number") bad();
      const n = v as number, r = INT_RANGE[t];
      if (r && !(Number.isInteger(n) && n >= r[0] && n <= r[1])) bad();
      switch (t) {
        case "u8": dv.setUint8(p, n); break; case "i8": dv.setInt8(p, n); break;
        case "u16": dv.setUint16(p, n, true); break; case "i16": dv.setInt16(p, n, true); break;
        case "u32": dv.setUint32(p, n, true); break; case "i32": dv.setInt32(p, n, true); break;
        case "f32": dv.setFloat32(p, n, true); break; default: dv.setFloat64(p, n, true);
      }
    }
    this.len += size;
  }
  value(t: GGUFType, v: unknown, what: string, depth = 0): void {
    const bad = (exp: string): never => { throw new FathomError("gguf", `${what}: expected ${exp} for type ${t}`); };
    if (t === "string") { if (typeof v !== "string") bad("a string"); this.string(v as string); return; }
    if (t === "bool") { if (typeof v !== "boolean") bad("a boolean"); this.grow(1); this.buf[this.len++] = v ? 1 : 0; return; }
    if (t !== "array") { this.num(t, v as number | bigint, what); return; }
    if (depth >= MAX_ARRAY_DEPTH) throw new FathomError("gguf", `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
    const a = v as GGUFArrayInput;
    if (!a || typeof a !== "object" || !VALUE_TYPES.includes(a.itemType) || !a.items || typeof a.items.length !== "number") bad("{ itemType, items }");
    this.u32(VALUE_TYPES.indexOf(a.itemType)); this.u64(a.items.length);
    for (let i = 0; i < a.items.length; i++) this.value(a.itemType, a.items[i], `${what}[${i}]`, depth + 1);
  }
  result(): Uint8Array { return this.buf.subarray(0, this.len); }
}

/** Encodes the header (through the padding before the data section) and lists each tensor's bytes with its padding. */
function plan(opts: GGUFWriteOptions): { header: Uint8Array; parts: { data: Uint8Array; pad: number }[] } {
  const entries = [...(opts.metadata instanceof GGUFMetadata ? opts.metadata.entries : opts.metadata)];
  const metaAl = entries.find((e) => e.key === "general.alignment");
  const alignment = opts.alignment ?? (typeof metaAl?.value === "number" ? metaAl.value : DEFAULT_ALIGNMENT);
  if (!isPow2(alignment)) throw new FathomError("gguf", `alignment ${alignment} is not a power of two`);
  if (metaAl && metaAl.value !== alignment) throw new FathomError("gguf", `general.alignment ${String(metaAl.value)} differs from alignment ${alignment}`);
  if (!metaAl && alignment !== DEFAULT_ALIGNMENT) entries.push({ key: "general.alignment", type: "u32", value: alignment });
  const keys = new Set<string>();
  for (const e of entries) {
    if (keys.has(e.key)) throw new FathomError("gguf", `duplicate metadata key '${e.key}'`);
    keys.add(e.key);
  }
  const w = new ByteWriter();
  const tensors = opts.tensors ?? [];
  w.u32(MAGIC); w.u32(3); w.u64(tensors.length); w.u64(entries.length);
  for (const e of entries) {
    if (!VALUE_TYPES.includes(e.type)) throw new FathomError("gguf", `metadata '${e.key}': unknown type '${e.type}'`);
    w.string(e.key); w.u32(VALUE_TYPES.indexOf(e.type)); w.value(e.type, e.value, `metadata '${e.key}'`);
  }
  const parts: { data: Uint8Array; pad: number }[] = [], names = new Set<string>();
  let offset = 0;
  for (const { name, tensor } of tensors) {
    if (names.has(name)) throw new FathomError("gguf", `duplicate tensor name '${name}'`);
    names.add(name);
    if (utf8enc.encode(name).length > 63) throw new FathomError("gguf", `tensor name '${name}' is longer than 63 bytes`);
    const type = GGML_OF[tensor.dtype];
    if (type === undefined) throw new FathomError("gguf", `tensor '${name}': dtype ${tensor.dtype} cannot be stored in GGUF`);
    const shape = tensor.shape.length ? [...tensor.shape] : [1];
    if (shape.length > 4) throw new FathomError("gguf", `tensor '${name}' has ${shape.length} dims, GGUF allows at most 4`);
    if (shape.some((d) => d < 1)) throw new FathomError("gguf", `tensor '${name}' has an empty dim in [${shape.join(", ")}]`);
    const bs = GGML_TYPES[type][1];
    if (shape[shape.length - 1] % bs !== 0) throw new FathomError("gguf", `tensor '${name}' (${tensor.dtype}) needs its last dim to be a multiple of ${bs}, got [${shape.join(", ")}]`);
    const b = tensor.buffer();
    const data = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    w.string(name); w.u32(shape.length);
    for (let d = shape.length - 1; d >= 0; d--) w.u64(shape[d]);
    w.u32(type); w.u64(offset);
    const pad = alignUp(data.length, alignment) - data.length;
    parts.push({ data, pad });
    offset += data.length + pad;
  }
  w.pad(alignment);
  return { header: w.result(), parts };
}

/** The whole file as bytes (small files, tests). */
export function encodeGGUF(opts: GGUFWriteOptions): Uint8Array {
  const { header, parts } = plan(opts);
  const out = new Uint8Array(header.length + parts.reduce((s, p) => s + p.data.length + p.pad, 0));
  out.set(header);
  let o = header.length;
  for (const p of parts) { out.set(p.data, o); o += p.data.length + p.pad; }
  return out;
}

/** Writes a GGUF v3 file atomically: a temporary file in the same folder, fsync, rename; removed on failure. */
export function writeGGUF(path: string, opts: GGUFWriteOptions): void {
  const { header, parts } = plan(opts);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, "wx");
    const zeros = new Uint8Array(Math.max(1, ...parts.map((p) => p.pad)));
    const put = (b: Uint8Array): void => { for (let o = 0; o < b.length;) o += writeSync(fd, b, o, Math.min(b.length - o, 1 << 30)); };
    put(header);
    for (const p of parts) { put(p.data); put(zeros.subarray(0, p.pad)); }
    fsyncSync(fd);
    closeSync(fd); fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) try { closeSync(fd); } catch { /* already failing */ }
    try { unlinkSync(tmp); } catch { /* not created */ }
    if (e instanceof FathomError) throw e;
    throw new FathomError("gguf", `cannot write ${path}: ${(e as Error).message}`);
  }
}
