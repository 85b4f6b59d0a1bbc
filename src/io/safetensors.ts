// Safetensors (Hugging Face) reader and writer. Reading maps the file and parses only the header: tensors are
// zero-copy views over the mapped bytes when aligned. Every header field is validated before any byte is read,
// so bad files raise FormatError naming the file and tensor. Also: atomic writes, sharded checkpoints
// (model.safetensors.index.json) and DeepSeek-V3 FP8 (F8_E4M3) decoding with block-wise dequantization.
import { existsSync, mkdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { writeAll, writeAtomic } from "./atomic.js";
import { dirname, isAbsolute, join } from "node:path";
import { DTYPES, f16ToF32, isFloat, type DType } from "../core/dtype.js";
import { DTypeError, FathomError, FormatError, ShapeError, fmtShape } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { mapFile } from "./mapped_file.js";

export interface TensorInfo {
  /** The safetensors dtype string ("F32", "BF16", "F8_E4M3", ...). */
  dtype: string;
  shape: number[];
  /** Absolute offset of the first byte in the file (8 + header length + data_offsets[0]). */
  byteOffset: number;
  byteLength: number;
}

// Bytes per element of every dtype the format defines, and the Fathom dtype read without conversion.
const ST_DTYPES: Record<string, { bytes: number; dtype?: DType }> = {
  F64: { bytes: 8, dtype: "f64" }, F32: { bytes: 4, dtype: "f32" }, F16: { bytes: 2, dtype: "f16" },
  BF16: { bytes: 2, dtype: "bf16" }, I32: { bytes: 4, dtype: "i32" }, I8: { bytes: 1, dtype: "i8" },
  U8: { bytes: 1, dtype: "u8" }, BOOL: { bytes: 1, dtype: "bool" },
  I64: { bytes: 8 }, U64: { bytes: 8 }, U32: { bytes: 4 }, I16: { bytes: 2 }, U16: { bytes: 2 },
  F8_E4M3: { bytes: 1 }, F8_E5M2: { bytes: 1 },
};
const TO_ST: Partial<Record<DType, string>> = { f64: "F64", f32: "F32", f16: "F16", bf16: "BF16", i32: "I32", i8: "I8", u8: "U8", bool: "BOOL" };
/** The safetensors crate refuses headers over 100 MB; so do we. */
const MAX_HEADER = 100_000_000;

const OP = "safetensors";
const formatError = (file: string, msg: string) => new FormatError(OP, `${file}: ${msg}`);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
/** A value for an error message, cut to a readable length. */
const short = (v: unknown): string => { const s = typeof v === "string" ? v : String(JSON.stringify(v)); return s.length > 80 ? `${s.slice(0, 77)}...` : s; };
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

// ---- FP8 decoding

/** F8_E4M3 ("e4m3fn"): 1 sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN. */
export const FP8_E4M3_TABLE: Float32Array = (() => {
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1, exp = (b >> 3) & 15, man = b & 7;
    t[b] = exp === 15 && man === 7 ? NaN : exp === 0 ? sign * (man / 8) * 2 ** -6 : sign * (1 + man / 8) * 2 ** (exp - 7);
  }
  return t;
})();
// F8_E5M2 is the top byte of an IEEE binary16.
const FP8_E5M2_TABLE = Float32Array.from({ length: 256 }, (_, b) => f16ToF32(b << 8));

/**
 * Block-wise FP8 dequantization (DeepSeek-V3): out[i, j] = W[i, j] · scaleInv[⌊i/block⌋, ⌊j/block⌋].
 * `weight` is 2-D: raw F8_E4M3 bytes (u8, as from getFp8) or already-decoded floats; `scaleInv` is
 * [ceil(rows/block), ceil(cols/block)]; edge blocks may be partial. Returns f32.
 */
export function dequantFp8(weight: Tensor, scaleInv: Tensor, block = 128): Tensor {
  const op = "dequantFp8";
  if (weight.ndim !== 2 || scaleInv.ndim !== 2) throw new ShapeError(op, `weight and scale_inv must be 2-D, got ${fmtShape(weight.shape)} and ${fmtShape(scaleInv.shape)}`);
  if (!Number.isSafeInteger(block) || block < 1) throw new FathomError(op, `block must be a positive integer, got ${block}`);
  if (weight.dtype !== "u8" && !isFloat(weight.dtype)) throw new DTypeError(op, `weight must be u8 (raw F8_E4M3) or float, got ${weight.dtype}`);
  const [rows, cols] = weight.shape, sr = Math.ceil(rows / block), sc = Math.ceil(cols / block);
  if (scaleInv.shape[0] !== sr || scaleInv.shape[1] !== sc)
    throw new ShapeError(op, `scale_inv for weight ${fmtShape(weight.shape)} with block ${block} must be [${sr}, ${sc}], got ${fmtShape(scaleInv.shape)}`);
  const w = weight.dtype === "u8" ? weight.buffer() : weight.float().buffer();
  const table = weight.dtype === "u8" ? FP8_E4M3_TABLE : null;
  const s = scaleInv.float().buffer();
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const srow = Math.floor(i / block) * sc, base = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = table ? table[w[base + j]] : w[base + j];
      out[base + j] = v * s[srow + Math.floor(j / block)];
    }
  }
  return new Tensor(out, "f32", [rows, cols]);
}

// ---- reading

export class SafetensorsFile {
  private constructor(
    /** The file's path (or the name given to fromBuffer). */
    readonly path: string,
    /** The whole file; tensors view it without copying. */
    readonly buffer: ArrayBuffer,
    /** The `__metadata__` string map ({} when absent). */
    readonly metadata: Record<string, string>,
    private readonly entries: Map<string, TensorInfo>,
  ) {}

  /** Maps the file (no copy) and validates the header. */
  static open(path: string): SafetensorsFile {
    return SafetensorsFile.fromBuffer(mapFile(path).buffer, path);
  }

  /** Parses safetensors bytes already in memory; `name` is used in error messages. */
  static fromBuffer(buffer: ArrayBuffer, name = "<buffer>"): SafetensorsFile {
    const { metadata, entries } = parseHeader(buffer, name);
    return new SafetensorsFile(name, buffer, metadata, entries);
  }

  /** Tensor names in header order. */
  names(): string[] { return [...this.entries.keys()]; }
  has(name: string): boolean { return this.entries.has(name); }

  info(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (!e) throw new FathomError(OP, `${this.path}: no tensor '${name}' (the file has ${this.entries.size} tensors)`);
    return { ...e, shape: [...e.shape] };
  }

  /**
   * The tensor, as a zero-copy view when its dtype maps directly and its offset is aligned (else a copy).
   * I64/U64/U32/I16/U16 become i32 (error if a value does not fit); F8_E4M3/F8_E5M2 are decoded to f32.
   */
  get(name: string): Tensor {
    const { dtype, shape, byteOffset, byteLength } = this.info(name);
    const st = ST_DTYPES[dtype];
    if (st.dtype) {
      if (byteOffset % st.bytes === 0) return Tensor.from(this.buffer, st.dtype, shape, byteOffset);
      return Tensor.from(new Uint8Array(this.buffer, byteOffset, byteLength).slice().buffer, st.dtype, shape);
    }
    const bytes = new Uint8Array(this.buffer, byteOffset, byteLength);
    if (dtype === "F8_E4M3" || dtype === "F8_E5M2") {
      const table = dtype === "F8_E4M3" ? FP8_E4M3_TABLE : FP8_E5M2_TABLE;
      const out = new Float32Array(byteLength);
      for (let i = 0; i < byteLength; i++) out[i] = table[bytes[i]];
      return new Tensor(out, "f32", shape);
    }
    return new Tensor(this.intToI32(name, dtype, st.bytes, byteOffset, byteLength), "i32", shape);
  }

  /** The raw bytes of an F8 tensor as a u8 tensor of the same shape (zero-copy); decode with dequantFp8. */
  getFp8(name: string): Tensor {
    const { dtype, shape, byteOffset } = this.info(name);
    if (dtype !== "F8_E4M3" && dtype !== "F8_E5M2") throw new DTypeError(OP, `${this.path}: tensor '${name}': expected F8_E4M3 or F8_E5M2, got ${dtype}`);
    return Tensor.from(this.buffer, "u8", shape, byteOffset);
  }

  private intToI32(name: string, dtype: string, size: number, byteOffset: number, byteLength: number): Int32Array {
    const view = new DataView(this.buffer, byteOffset, byteLength);
    const out = new Int32Array(byteLength / size);
    for (let i = 0; i < out.length; i++) {
      const p = i * size;
      let v: number;
      if (size === 8) {
        const lo = view.getUint32(p, true), hi = view.getInt32(p + 4, true);
        // Fits in i32 exactly when hi is the sign extension of lo (and, for U64, non-negative).
        const fits = dtype === "U64" ? hi === 0 && lo <= 0x7fffffff : hi === (lo | 0) >> 31;
        if (!fits) throw new DTypeError(OP, `${this.path}: tensor '${name}': ${dtype} element ${i} (${dtype === "U64" ? BigInt.asUintN(64, view.getBigInt64(p, true)) : view.getBigInt64(p, true)}) does not fit in i32`);
        v = lo | 0;
      } else if (size === 4) {
        v = view.getUint32(p, true);
        if (v > 0x7fffffff) throw new DTypeError(OP, `${this.path}: tensor '${name}': U32 element ${i} (${v}) does not fit in i32`);
      } else v = dtype === "I16" ? view.getInt16(p, true) : view.getUint16(p, true);
      out[i] = v;
    }
    return out;
  }
}

function parseHeader(buf: ArrayBuffer, file: string): { metadata: Record<string, string>; entries: Map<string, TensorInfo> } {
  const size = buf.byteLength;
  if (size < 8) throw formatError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(buf);
  const n = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (n > MAX_HEADER) throw formatError(file, `header length ${n} is absurdly large (limit ${MAX_HEADER} bytes)`);
  if (8 + n > size) throw formatError(file, `header length ${n} runs past the end of the file (${size} bytes)`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(new Uint8Array(buf, 8, n)));
  } catch (e) {
    throw formatError(file, `header is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (!isObject(header)) throw formatError(file, `header must be a JSON object, got ${Array.isArray(header) ? "an array" : header === null ? "null" : typeof header}`);
  const start = 8 + n;
  let metadata: Record<string, string> = {};
  const entries = new Map<string, TensorInfo>();
  const spans: [number, number, string][] = [];
  for (const [name, e] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (!isObject(e)) throw formatError(file, `__metadata__ must be a map of strings`);
      for (const [k, v] of Object.entries(e as Record<string, unknown>))
        if (typeof v !== "string") throw formatError(file, `__metadata__ '${k}' must be a string, got ${short(v)}`);
      metadata = Object.fromEntries(Object.entries(e as Record<string, string>)); // a copy; "__proto__" stays a plain key
      continue;
    }
    const where = `${file}: tensor '${name}'`;
    const bad = (msg: string) => new FormatError(OP, `${where}: ${msg}`);
    if (!isObject(e) || typeof e.dtype !== "string" || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets))
      throw bad(`entry must be {dtype: string, shape: number[], data_offsets: [begin, end]}`);
    const { dtype, shape, data_offsets: offs } = e as { dtype: string; shape: unknown[]; data_offsets: unknown[] };
    if (!Object.hasOwn(ST_DTYPES, dtype)) throw bad(`unknown dtype '${short(dtype)}' (expected one of ${Object.keys(ST_DTYPES).join(", ")})`);
    const st = ST_DTYPES[dtype];
    let count = 1;
    for (const d of shape) {
      if (!isCount(d)) throw bad(`shape ${short(shape)} must hold integers >= 0`);
      count *= d as number;
    }
    if (offs.length !== 2 || !isCount(offs[0]) || !isCount(offs[1])) throw bad(`data_offsets ${short(offs)} must be [begin, end] integers >= 0`);
    const [begin, end] = offs as [number, number];
    if (end < begin) throw bad(`data_offsets [${begin}, ${end}]: end is before begin`);
    if (end - begin !== count * st.bytes) throw bad(`${end - begin} bytes, expected ${count * st.bytes} for ${dtype} ${fmtShape(shape as number[])}`);
    if (start + end > size) throw bad(`data [${start + begin}, ${start + end}) runs past the end of the file (${size} bytes)`);
    entries.set(name, { dtype, shape: shape as number[], byteOffset: start + begin, byteLength: end - begin });
    if (end > begin) spans.push([begin, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++)
    if (spans[i][0] < spans[i - 1][1]) throw formatError(file, `tensor '${spans[i][2]}' [${spans[i][0]}, ${spans[i][1]}) overlaps tensor '${spans[i - 1][2]}' [${spans[i - 1][0]}, ${spans[i - 1][1]})`);
  return { metadata, entries };
}

// ---- writing

type TensorMap = Record<string, Tensor> | Map<string, Tensor>;
const toEntries = (t: TensorMap): [string, Tensor][] => (t instanceof Map ? [...t.entries()] : Object.entries(t));

function tensorBytes(t: Tensor): Uint8Array {
  const b = t.buffer();
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Saves tensors in the standard layout: u64 header length, JSON header padded with spaces to a multiple of 8,
 * then each tensor's little-endian bytes, contiguous, in the given order (a Map keeps insertion order; a plain
 * object puts integer-like keys first). Non-contiguous tensors are written in row-major order.
 */
export function saveSafetensors(path: string, tensors: TensorMap, metadata?: Record<string, string>): void {
  const list = toEntries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== "string") throw new FathomError(OP, `${path}: metadata '${k}' must be a string`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of list) {
    const dtype = TO_ST[t.dtype];
    if (!dtype) throw new DTypeError(OP, `${path}: tensor '${name}': cannot save dtype ${t.dtype} (supported: ${Object.keys(TO_ST).join(", ")})`);
    if (name === "__metadata__") throw new FathomError(OP, `${path}: '__metadata__' is reserved and cannot name a tensor`);
    const len = t.numel * DTYPES[t.dtype].bytes;
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + len] };
    offset += len;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const n = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + n).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(n), true);
  head.set(json, 8);
  writeAtomic(path, (fd) => {
    writeAll(fd, head);
    for (const [, t] of list) writeAll(fd, tensorBytes(t));
  }, OP);
}

// ---- sharded checkpoints

const SINGLE = "model.safetensors";
const INDEX = "model.safetensors.index.json";

/** A checkpoint directory: `model.safetensors`, or shards listed in `model.safetensors.index.json`. */
export class SafetensorsCheckpoint {
  private constructor(
    readonly path: string,
    /** The index's `metadata` (e.g. {total_size}), or the single file's `__metadata__`. */
    readonly metadata: Record<string, unknown>,
    /** Every opened file, in shard order. */
    readonly files: SafetensorsFile[],
    private readonly where: Map<string, SafetensorsFile>,
  ) {}

  /** Opens a directory (index preferred over model.safetensors), an index .json, or a single .safetensors file. */
  static open(dirOrFile: string): SafetensorsCheckpoint {
    let path = dirOrFile;
    let isDir = false;
    try { isDir = statSync(path).isDirectory(); } catch (e) { throw new FathomError(OP, `cannot open ${path}: ${(e as Error).message}`); }
    if (isDir) {
      path = existsSync(join(dirOrFile, INDEX)) ? join(dirOrFile, INDEX) : join(dirOrFile, SINGLE);
      if (!existsSync(path)) throw new FathomError(OP, `${dirOrFile}: no ${INDEX} or ${SINGLE}`);
    }
    if (!path.endsWith(".json")) {
      const f = SafetensorsFile.open(path);
      return new SafetensorsCheckpoint(path, { ...f.metadata }, [f], new Map(f.names().map((n) => [n, f])));
    }
    let index: unknown;
    try { index = JSON.parse(readFileSync(path, "utf8")); } catch (e) { throw formatError(path, `index is not valid JSON: ${(e as Error).message}`); }
    if (!isObject(index) || !isObject(index.weight_map)) throw formatError(path, `index must be an object with a weight_map {tensor: shard file}`);
    const { weight_map: map, metadata } = index as { weight_map: Record<string, unknown>; metadata?: unknown };
    const shards = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    for (const [name, shard] of Object.entries(map)) {
      if (typeof shard !== "string" || isAbsolute(shard) || shard.split(/[\\/]/).includes(".."))
        throw formatError(path, `tensor '${name}': shard must be a file name in the checkpoint directory, got ${short(shard)}`);
      let f = shards.get(shard as string);
      if (!f) {
        const shardPath = join(dirname(path), shard as string);
        if (!existsSync(shardPath)) throw new FathomError(OP, `${path}: tensor '${name}': shard '${shard}' is missing (${shardPath})`);
        f = SafetensorsFile.open(shardPath);
        shards.set(shard as string, f);
      }
      if (!f.has(name)) throw formatError(path, `tensor '${name}' is not in its shard '${shard}'`);
      where.set(name, f);
    }
    return new SafetensorsCheckpoint(path, isObject(metadata) ? metadata : {}, [...shards.values()], where);
  }

  names(): string[] { return [...this.where.keys()]; }
  has(name: string): boolean { return this.where.has(name); }
  /** The file holding a tensor (for getFp8 or raw info). */
  file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (!f) throw new FathomError(OP, `${this.path}: no tensor '${name}' in the checkpoint (${this.where.size} tensors)`);
    return f;
  }
  info(name: string): TensorInfo { return this.file(name).info(name); }
  get(name: string): Tensor { return this.file(name).get(name); }
}

export interface SaveShardedOptions {
  /** Largest shard in tensor bytes; a tensor larger than this gets a shard of its own. Default 5 GB. */
  maxShardBytes?: number;
  /** `__metadata__` written into every file. */
  metadata?: Record<string, string>;
}

/**
 * Saves a checkpoint into `dir`: `model.safetensors` when everything fits in one shard (a stale index is removed),
 * else `model-0000i-of-0000N.safetensors` plus `model.safetensors.index.json`. Each file is written atomically,
 * the index last. Returns the paths written.
 */
export function saveSharded(dir: string, tensors: TensorMap, opts: SaveShardedOptions = {}): string[] {
  const max = opts.maxShardBytes ?? 5e9;
  if (!(max > 0)) throw new FathomError(OP, `${dir}: maxShardBytes must be positive, got ${max}`);
  const shards: [string, Tensor][][] = [[]];
  let bytes = 0, total = 0;
  for (const [name, t] of toEntries(tensors)) {
    const len = t.numel * DTYPES[t.dtype].bytes;
    if (shards[shards.length - 1].length > 0 && bytes + len > max) { shards.push([]); bytes = 0; }
    shards[shards.length - 1].push([name, t]);
    bytes += len;
    total += len;
  }
  mkdirSync(dir, { recursive: true });
  if (shards.length === 1) {
    const path = join(dir, SINGLE);
    saveSafetensors(path, new Map(shards[0]), opts.metadata);
    if (existsSync(join(dir, INDEX))) unlinkSync(join(dir, INDEX));
    return [path];
  }
  const pad = (i: number) => String(i).padStart(5, "0");
  const weightMap: Record<string, string> = {};
  const written: string[] = [];
  shards.forEach((list, i) => {
    const file = `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
    saveSafetensors(join(dir, file), new Map(list), opts.metadata);
    for (const [name] of list) weightMap[name] = file;
    written.push(join(dir, file));
  });
  const index = new TextEncoder().encode(JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + "\n");
  writeAtomic(join(dir, INDEX), (fd) => writeAll(fd, index), OP);
  return [...written, join(dir, INDEX)];
}
