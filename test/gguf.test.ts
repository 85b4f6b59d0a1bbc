// GGUF container (src/io/gguf.ts) and tokenizer metadata (src/io/gguf_tokenizer.ts): write→read round trips,
// a byte-exact file built here by an independent encoder (deepseek-spec §5.1), zero-copy views, dequantization,
// every validation error, 10,000 seeded mutations of a valid file (only FathomError, no hang), and a hand-made
// byte-level BPE tokenizer through GGUF metadata and back.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdtempSync, readFileSync, readdirSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tensor, FathomError, FormatError, nativeAvailable } from "../src/index.js";
import { GGUFFile, GGUFMetadata, encodeGGUF, writeGGUF, type GGUFArray, type GGUFMetadataEntry } from "../src/io/gguf.js";
import { tokenizerToGGUF, ggufToTokenizer } from "../src/io/gguf_tokenizer.js";
import { QUANT_TYPES } from "../src/quant/types.js";
import { f16ToF32, bf16ToF32, f32ToF16, f32ToBf16 } from "../src/core/dtype.js";

const dir = mkdtempSync(join(tmpdir(), "fathom-gguf-"));
process.on("exit", () => rmSync(dir, { recursive: true, force: true }));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}
function gaussian(n: number, seed: number): Float32Array {
  const u = rng(seed), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return out;
}

// ---- an independent little-endian encoder; it records the position of every count, length, type and offset field
class Enc {
  b: number[] = [];
  fields: { pos: number; size: 4 | 8 }[] = [];
  get pos(): number { return this.b.length; }
  raw(...v: number[]): this { this.b.push(...v); return this; }
  u32(v: number): this { this.fields.push({ pos: this.pos, size: 4 }); for (let i = 0; i < 4; i++) this.b.push((v >>> (8 * i)) & 0xff); return this; }
  u64(v: number | bigint): this {
    this.fields.push({ pos: this.pos, size: 8 });
    let x = BigInt(v);
    for (let i = 0; i < 8; i++) { this.b.push(Number(x & 0xffn)); x >>= 8n; }
    return this;
  }
  str(s: string): this { const u = Buffer.from(s, "utf8"); this.u64(u.length); this.b.push(...u); return this; }
  f32(v: number): this { const d = Buffer.alloc(4); d.writeFloatLE(v); this.b.push(...d); return this; }
  pad(a: number): this { while (this.b.length % a) this.b.push(0); return this; }
  header(version: number, nTensors: number | bigint, nKv: number | bigint): this { return this.raw(0x47, 0x47, 0x55, 0x46).u32(version).u64(nTensors).u64(nKv); }
  kvU32(key: string, v: number): this { return this.str(key).u32(4).u32(v); }
  kvStr(key: string, v: string): this { return this.str(key).u32(8).str(v); }
  tensor(name: string, ne: (number | bigint)[], type: number, offset: number | bigint): this {
    this.str(name).u32(ne.length);
    for (const d of ne) this.u64(d);
    return this.u32(type).u64(offset);
  }
  bytes(): Uint8Array { return Uint8Array.from(this.b); }
}

const f32Tensor = (v: number[], shape: number[]) => Tensor.from(Float32Array.from(v), "f32", shape);

function sampleTensors(): { name: string; tensor: Tensor }[] {
  const g = (n: number, s: number) => gaussian(n, s);
  return [
    { name: "a.f32", tensor: Tensor.from(g(15, 1), "f32", [3, 5]) },
    { name: "b.f16", tensor: Tensor.from(Uint16Array.from(g(7, 2), (v) => f32ToF16(v)), "f16", [7]) },
    { name: "c.bf16", tensor: Tensor.from(Uint16Array.from(g(30, 3), (v) => f32ToBf16(v)), "bf16", [2, 3, 5]) },
    { name: "d.q8_0", tensor: Tensor.from(QUANT_TYPES.q8_0.quantizeRef(g(3 * 64, 4)), "q8_0", [3, 64]) },
    { name: "e.q4_0", tensor: Tensor.from(QUANT_TYPES.q4_0.quantizeRef(g(5 * 32, 5)), "q4_0", [5, 32]) },
    { name: "f.q4_K", tensor: Tensor.from(QUANT_TYPES.q4_K.quantizeRef(g(3 * 256, 6)), "q4_K", [3, 1, 256]) },
    { name: "g.f64", tensor: Tensor.from(Float64Array.from([1.5, -2.25, Math.PI]), "f64", [3]) },
    { name: "h.i8", tensor: Tensor.from(Int8Array.from([-128, 0, 127]), "i8", [3]) },
    { name: "i.i32", tensor: Tensor.from(Int32Array.from({ length: 24 }, (_, i) => i * 1000 - 7), "i32", [1, 2, 3, 4]) },
  ];
}

function sampleMetadata(): GGUFMetadataEntry[] {
  const nested: GGUFArray = { itemType: "array", items: [{ itemType: "i16", items: Int16Array.from([1, -2, 3]) }, { itemType: "i16", items: new Int16Array(0) }] };
  return new GGUFMetadata()
    .string("general.architecture", "llama").string("general.name", "tiny ✓ ünïcode")
    .u8("t.u8", 255).i8("t.i8", -128).u16("t.u16", 65535).i16("t.i16", -32768).u32("t.u32", 4294967295).i32("t.i32", -2147483648)
    .f32("t.f32", 1.5).f64("t.f64", Math.E).bool("t.true", true).bool("t.false", false)
    .u64("t.u64.small", 12345).u64("t.u64.big", 2n ** 64n - 1n).i64("t.i64.neg", -42).i64("t.i64.big", -(2n ** 63n))
    .array("t.arr.u8", "u8", [0, 1, 255]).array("t.arr.i32", "i32", [-1, 2, -3]).array("t.arr.f32", "f32", [0.5, -0.25])
    .array("t.arr.u64", "u64", [1n, 2n ** 63n]).array("t.arr.str", "string", ["a", "", "Ġhello", "日本"])
    .array("t.arr.bool", "bool", [true, false, true]).array("t.arr.empty", "f64", [])
    .add({ key: "t.arr.nested", type: "array", value: nested }).entries;
}

function checkRoundTrip(f: GGUFFile, alignment: number): void {
  assert.equal(f.version, 3);
  assert.equal(f.alignment, alignment);
  const m = f.metadata;
  assert.equal(f.getString("general.architecture"), "llama");
  assert.equal(f.getString("general.name"), "tiny ✓ ünïcode");
  assert.deepEqual([m.get("t.u8")!.value, m.get("t.i8")!.value, m.get("t.u16")!.value, m.get("t.i16")!.value], [255, -128, 65535, -32768]);
  assert.deepEqual([m.get("t.u32")!.value, m.get("t.i32")!.value, m.get("t.f32")!.value, m.get("t.f64")!.value], [4294967295, -2147483648, 1.5, Math.E]);
  assert.deepEqual([f.getBool("t.true"), f.getBool("t.false")], [true, false]);
  assert.equal(m.get("t.u64.small")!.value, 12345);
  assert.equal(m.get("t.u64.big")!.value, 2n ** 64n - 1n);
  assert.equal(m.get("t.i64.neg")!.value, -42);
  assert.equal(m.get("t.i64.big")!.value, -(2n ** 63n));
  assert.equal(m.get("t.u64.small")!.type, "u64");
  assert.deepEqual(f.getArray("t.arr.u8", "u8"), Uint8Array.from([0, 1, 255]));
  assert.deepEqual(f.getArray("t.arr.i32"), Int32Array.from([-1, 2, -3]));
  assert.deepEqual(f.getArray("t.arr.f32"), Float32Array.from([0.5, -0.25]));
  assert.deepEqual(f.getArray("t.arr.u64"), BigUint64Array.from([1n, 2n ** 63n]));
  assert.deepEqual(f.getArray("t.arr.str", "string"), ["a", "", "Ġhello", "日本"]);
  assert.deepEqual(f.getArray("t.arr.bool"), [true, false, true]);
  assert.deepEqual(f.getArray("t.arr.empty", "f64"), new Float64Array(0));
  const nested = f.getArray("t.arr.nested", "array") as GGUFArray[];
  assert.deepEqual(nested.map((a) => [a.itemType, Array.from(a.items as Int16Array)]), [["i16", [1, -2, 3]], ["i16", []]]);
  if (alignment !== 32) assert.equal(f.getU32("general.alignment"), alignment);
  else assert.equal(f.has("general.alignment"), false);

  for (const { name, tensor } of sampleTensors()) {
    const info = f.tensorInfo(name);
    assert.deepEqual(info.shape, [...tensor.shape]);
    assert.deepEqual(info.ne, [...tensor.shape].reverse());
    assert.equal(info.offset % alignment, 0);
    assert.equal(info.fileOffset % alignment, 0);
    const got = f.get(name);
    assert.equal(got.dtype, tensor.dtype, name);
    assert.deepEqual([...got.shape], [...tensor.shape]);
    const a = got.buffer(), b = tensor.buffer();
    assert.deepEqual(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength), name);
    assert.equal(got.data.buffer, f.buffer, `${name} is not a view of the file`);
  }
  // tensor data regions are in order, each padded to the alignment
  const infos = f.tensors;
  for (let i = 1; i < infos.length; i++) assert.equal(infos[i].offset, infos[i - 1].offset + Math.ceil(infos[i - 1].byteSize / alignment) * alignment);
}

for (const alignment of [32, 64]) {
  test(`write→read round trip: every value type, every tensor type at odd shapes, alignment ${alignment}`, () => {
    const path = join(dir, `rt${alignment}.gguf`);
    writeGGUF(path, { metadata: sampleMetadata(), tensors: sampleTensors(), alignment });
    const f = GGUFFile.open(path);
    checkRoundTrip(f, alignment);
    assert.equal(readFileSync(path).length % alignment, 0);
    // the in-memory encoder produces the same bytes, and fromBuffer reads them the same
    const bytes = encodeGGUF({ metadata: sampleMetadata(), tensors: sampleTensors(), alignment });
    assert.deepEqual(new Uint8Array(readFileSync(path)), bytes);
    checkRoundTrip(GGUFFile.fromBuffer(bytes, "mem"), alignment);
    // nothing but the file is left in the folder (the temporary file was renamed)
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes(`rt${alignment}`)), [`rt${alignment}.gguf`]);
  });
}

test("a tiny file is byte-identical to one built by hand from the spec", () => {
  const metadata = new GGUFMetadata().string("general.architecture", "llama").u32("llama.block_count", 2);
  const w = f32Tensor([1, -2, 0.5], [3]), q = Tensor.from(QUANT_TYPES.q8_0.quantizeRef(new Float32Array(32).fill(1)), "q8_0", [1, 32]);
  const ours = encodeGGUF({ metadata, tensors: [{ name: "w", tensor: w }, { name: "blk.0.q", tensor: q }] });
  const e = new Enc().header(3, 2, 2).kvStr("general.architecture", "llama").kvU32("llama.block_count", 2)
    .tensor("w", [3], 0, 0).tensor("blk.0.q", [32, 1], 8, 32).pad(32);
  e.f32(1).f32(-2).f32(0.5).pad(32);
  e.raw(0x08, 0x20); // f16 of 1/127 = 0x2008
  for (let i = 0; i < 32; i++) e.raw(127);
  e.pad(32);
  assert.deepEqual(ours, e.bytes());
  const path = join(dir, "tiny.gguf");
  writeGGUF(path, { metadata, tensors: [{ name: "w", tensor: w }, { name: "blk.0.q", tensor: q }] });
  assert.deepEqual(new Uint8Array(readFileSync(path)), e.bytes());
});

test("open() maps the file: tensors are views of the mapped buffer; unaligned data is copied", () => {
  const path = join(dir, "zc.gguf");
  writeGGUF(path, { metadata: [], tensors: sampleTensors() });
  const f = GGUFFile.open(path);
  assert.equal(f.mapped, nativeAvailable());
  for (const t of f.tensors) assert.equal(f.get(t.name).data.buffer, f.buffer, t.name);
  // alignment 2: an f32 tensor at an offset that is not a multiple of 4 cannot be a Float32Array view
  const e = new Enc().header(3, 2, 1).str("general.alignment").u32(4).u32(2)
    .tensor("x", [1], 24, 0).tensor("y", [2], 0, 2).pad(2);
  const pos = e.pos;
  e.raw(7, 0).f32(1.5).f32(-3);
  const bytes = e.bytes();
  const g = GGUFFile.fromBuffer(bytes, "unaligned");
  const y = g.get("y");
  assert.equal(pos % 4 !== 0 || (pos + 2) % 4 !== 0, true);
  assert.deepEqual(y.toArray(), [1.5, -3]);
  assert.deepEqual(g.get("x").toArray(), [7]);
});

test("dequantize() of every type matches the quant/types reference and the 16-bit decoders", () => {
  const f = GGUFFile.fromBuffer(encodeGGUF({ metadata: [], tensors: sampleTensors() }), "dq");
  for (const { name, tensor } of sampleTensors()) {
    const d = f.dequantize(name);
    assert.equal(d.dtype, "f32");
    assert.deepEqual([...d.shape], [...tensor.shape]);
    const got = d.buffer() as Float32Array, src = tensor.buffer();
    let want: Float32Array;
    if (tensor.dtype === "q8_0" || tensor.dtype === "q4_0" || tensor.dtype === "q4_K") want = QUANT_TYPES[tensor.dtype].dequantizeRef(src as Uint8Array);
    else if (tensor.dtype === "f16") want = Float32Array.from(src as Uint16Array, f16ToF32);
    else if (tensor.dtype === "bf16") want = Float32Array.from(src as Uint16Array, bf16ToF32);
    else want = Float32Array.from(src as ArrayLike<number>);
    assert.deepEqual(got, want, name);
    assert.notEqual(d.data.buffer, f.buffer); // a new tensor, not a view of the file
  }
});

test("getters accept any integer type for integer keys and name the key and type on mismatch", () => {
  const f = GGUFFile.fromBuffer(encodeGGUF({ metadata: new GGUFMetadata().u64("a", 7).i32("b", 9).i32("neg", -1).string("s", "x").f32("x", 2).array("arr", "i32", [1]) }), "g.gguf");
  assert.equal(f.getU32("a"), 7);
  assert.equal(f.getU32("b"), 9);
  assert.equal(f.getInt("neg"), -1);
  assert.equal(f.getU32("missing", 5), 5);
  assert.equal(f.getF32("x"), 2);
  const fe = (re: RegExp) => (e: unknown) => e instanceof FormatError && re.test((e as Error).message);
  assert.throws(() => f.getU32("s"), fe(/^\[gguf\] g\.gguf: metadata 's' is string x, expected a u32/));
  assert.throws(() => f.getU32("neg"), fe(/metadata 'neg' is i32 -1, expected a u32/));
  assert.throws(() => f.getString("a"), fe(/metadata 'a' is u64 7, expected a string/));
  assert.throws(() => f.getBool("x"), fe(/metadata 'x' is f32 2, expected a bool/));
  assert.throws(() => f.getF32("missing"), fe(/missing metadata key 'missing' \(expected an f32\)/));
  assert.throws(() => f.getArray("arr", "string"), fe(/metadata 'arr' is an array of i32, expected an array of string/));
  assert.throws(() => f.getArray("s"), fe(/metadata 's' is string x, expected an array/));
  assert.throws(() => f.get("nope"), (e) => e instanceof FathomError && /no tensor named 'nope'/.test((e as Error).message));
});

// ---- validation: each malformed file and the message it must produce
const tensorFile = (ne: (number | bigint)[], type: number, offset: number | bigint, dataBytes: number, kv?: (e: Enc) => void, nKv = 0) => {
  const e = new Enc().header(3, 1, nKv);
  kv?.(e);
  e.tensor("t", ne, type, offset).pad(32);
  for (let i = 0; i < dataBytes; i++) e.raw(0);
  return e.bytes();
};
const cases: [string, () => Uint8Array, RegExp][] = [
  ["bad magic", () => Uint8Array.from([0x47, 0x47, 0x55, 0x47, 3, 0, 0, 0]), /bad magic/],
  ["empty file", () => new Uint8Array(0), /bad magic/],
  ["version 1", () => new Enc().header(1, 0, 0).bytes(), /unsupported GGUF version 1 \(expected 2 or 3\)/],
  ["version 4", () => new Enc().header(4, 0, 0).bytes(), /unsupported GGUF version 4/],
  ["big-endian", () => new Enc().raw(0x47, 0x47, 0x55, 0x46, 0, 0, 0, 3).u64(0).u64(0).bytes(), /big-endian/],
  ["absurd tensor count", () => new Enc().header(3, 1n << 40n, 0).bytes(), /tensor count is 1099511627776, more than 0/],
  ["absurd metadata count", () => new Enc().header(3, 0, 1000).kvU32("a", 1).bytes(), /metadata count is 1000, more than 1/],
  ["truncated header", () => new Enc().header(3, 0, 0).bytes().subarray(0, 20), /metadata count needs 8 bytes at offset 16, only 4 remain/],
  ["key longer than the file", () => new Enc().header(3, 0, 1).u64(1000).raw(0x61).u32(4).u32(1).bytes(), /metadata key #0 length is 1000, more than 9/],
  ["string value past the end", () => new Enc().header(3, 0, 1).str("k").u32(8).u64(5).raw(0x61).bytes(), /metadata 'k' length is 5, more than 1/],
  ["unknown value type", () => new Enc().header(3, 0, 1).str("k").u32(13).u32(0).bytes(), /metadata 'k' type|metadata 'k' has unknown value type 13/],
  ["array count past the end", () => new Enc().header(3, 0, 1).str("k").u32(9).u32(5).u64(100).u32(0).bytes(), /metadata 'k' count is 100, more than 1/],
  ["arrays nested too deep", () => {
    const e = new Enc().header(3, 0, 1).str("deep").u32(9);
    for (let i = 0; i < 9; i++) e.u32(9).u64(1);
    return e.u32(0).u64(0).bytes();
  }, /arrays nested deeper than 8/],
  ["duplicate key", () => new Enc().header(3, 0, 2).kvU32("k", 1).kvU32("k", 2).bytes(), /duplicate metadata key 'k'/],
  ["alignment not a power of two", () => new Enc().header(3, 0, 1).kvU32("general.alignment", 48).bytes(), /general.alignment must be an integer power of two, got u32 48/],
  ["alignment of the wrong type", () => new Enc().header(3, 0, 1).kvStr("general.alignment", "32").bytes(), /general.alignment must be an integer power of two, got string 32/],
  ["n_dims 5", () => tensorFile([1, 1, 1, 1, 1], 0, 0, 32), /tensor 't' has n_dims 5 \(expected 1..4\)/],
  ["n_dims 0", () => tensorFile([], 0, 0, 32), /tensor 't' has n_dims 0/],
  ["zero dim", () => tensorFile([4, 0], 0, 0, 32), /tensor 't' dim 1 is 0 \(expected ≥ 1\)/],
  ["huge dim", () => tensorFile([2n ** 62n], 0, 0, 32), /tensor 't' dim 0 is 4611686018427387904, more than/],
  ["unknown ggml type", () => tensorFile([4], 4, 0, 32), /tensor 't' has unknown ggml type 4/],
  ["ne0 not a multiple of the block", () => tensorFile([33, 2], 8, 0, 96), /tensor 't' of type Q8_0 has ne0 = 33, not a multiple of the block size 32/],
  ["unaligned offset", () => tensorFile([1], 0, 4, 64), /tensor 't' offset 4 is not a multiple of the alignment 32/],
  ["data past the end", () => tensorFile([16], 0, 0, 32), /tensor 't' data \[\d+, \d+\) runs past the end of the file/],
  ["duplicate tensor names", () => new Enc().header(3, 2, 0).tensor("t", [1], 0, 0).tensor("t", [1], 0, 32).pad(32).raw(...new Array(64).fill(0)).bytes(), /duplicate tensor name 't'/],
  ["overlapping tensors", () => new Enc().header(3, 2, 0).tensor("a", [16], 0, 0).tensor("b", [8], 0, 32).pad(32).raw(...new Array(64).fill(0)).bytes(), /tensors 'a' and 'b' overlap/],
];
for (const [what, make, re] of cases) {
  test(`rejects: ${what}`, () => {
    assert.throws(() => GGUFFile.fromBuffer(make(), "bad.gguf"), (e: unknown) => {
      assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
      assert.match((e as Error).message, /^\[gguf\] bad\.gguf: /);
      assert.match((e as Error).message, re);
      return true;
    });
  });
}

test("version 2 files are read; tensors of types Fathom cannot load give a clear error", () => {
  const e = new Enc().header(2, 1, 0).tensor("q6", [256], 14, 0).pad(32);
  for (let i = 0; i < 210; i++) e.raw(0);
  const f = GGUFFile.fromBuffer(e.bytes(), "v2.gguf");
  assert.equal(f.version, 2);
  assert.equal(f.tensors[0].typeName, "Q6_K");
  assert.equal(f.tensors[0].byteSize, 210);
  assert.throws(() => f.get("q6"), /tensor 'q6' has type Q6_K, which Fathom cannot load/);
  assert.throws(() => f.dequantize("q6"), /cannot dequantize tensor 'q6' of type Q6_K/);
});

test("the writer rejects bad input and leaves nothing behind", () => {
  const t = f32Tensor([1], [1]);
  const bad: [() => void, RegExp][] = [
    [() => encodeGGUF({ metadata: [{ key: "k", type: "u8", value: 1 }, { key: "k", type: "u8", value: 2 }] }), /duplicate metadata key 'k'/],
    [() => encodeGGUF({ metadata: [], tensors: [{ name: "t", tensor: t }, { name: "t", tensor: t }] }), /duplicate tensor name 't'/],
    [() => encodeGGUF({ metadata: [], alignment: 48 }), /alignment 48 is not a power of two/],
    [() => encodeGGUF({ metadata: [{ key: "k", type: "u8", value: 256 }] }), /metadata 'k': 256 is not a valid u8/],
    [() => encodeGGUF({ metadata: [{ key: "k", type: "i32", value: 1.5 }] }), /metadata 'k': 1.5 is not a valid i32/],
    [() => encodeGGUF({ metadata: [{ key: "k", type: "array", value: { itemType: "string", items: [1] as unknown as string[] } }] }), /metadata 'k'\[0\]: expected a string/],
    [() => encodeGGUF({ metadata: [{ key: "general.alignment", type: "u32", value: 64 }], alignment: 32 }), /general.alignment 64 differs from alignment 32/],
    [() => encodeGGUF({ metadata: [], tensors: [{ name: "q", tensor: Tensor.from(new Uint8Array(34), "q8_0", [32, 1]) }] }), /needs its last dim to be a multiple of 32/],
    [() => encodeGGUF({ metadata: [], tensors: [{ name: "x".repeat(64), tensor: t }] }), /longer than 63 bytes/],
    [() => encodeGGUF({ metadata: [], tensors: [{ name: "b", tensor: Tensor.from(new Uint8Array(1), "bool", [1]) }] }), /dtype bool cannot be stored in GGUF/],
  ];
  for (const [fn, re] of bad) assert.throws(fn, (e: unknown) => e instanceof FathomError && re.test((e as Error).message));
  // general.alignment given in the metadata sets the alignment
  assert.equal(GGUFFile.fromBuffer(encodeGGUF({ metadata: [{ key: "general.alignment", type: "u32", value: 64 }], tensors: [{ name: "t", tensor: t }] })).alignment, 64);
  // a failure after the temporary file exists (renaming over a non-empty folder) removes it
  const sub = join(dir, "atomic");
  mkdirSync(join(sub, "target.gguf"), { recursive: true });
  writeFileSync(join(sub, "target.gguf", "keep"), "x");
  assert.throws(() => writeGGUF(join(sub, "target.gguf"), { metadata: [], tensors: [{ name: "t", tensor: t }] }), (e: unknown) => e instanceof FathomError && /cannot write/.test((e as Error).message));
  assert.deepEqual(readdirSync(sub), ["target.gguf"]);
  assert.throws(() => writeGGUF(join(dir, "no", "such", "dir.gguf"), { metadata: [] }), /cannot write/);
});

test("fuzz: 10,000 seeded mutations of a valid file raise only FathomError and never hang", (t) => {
  // A small valid file, built with the independent encoder so that every count/length/type/offset position is known.
  const tensors = sampleTensors().filter((t) => t.tensor.dtype !== "i8");
  const meta = new Enc().header(3, tensors.length, 5)
    .kvStr("general.architecture", "llama").kvU32("llama.block_count", 2)
    .str("tok").u32(9).u32(8).u64(3).str("a").str("Ġb").str("<s>")
    .str("nest").u32(9).u32(9).u64(2).u32(5).u64(2).u32(1).u32(2).u32(6).u64(1).f32(0.5)
    .str("ids").u32(9).u32(10).u64(2).u64(1).u64(2);
  const e = meta;
  let off = 0;
  const datas: Uint8Array[] = [];
  for (const { name, tensor } of tensors) {
    const b = tensor.buffer(), bytes = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    e.tensor(name, [...tensor.shape].reverse(), { f32: 0, f16: 1, bf16: 30, q8_0: 8, q4_0: 2, q4_K: 12, f64: 28, i32: 26 }[tensor.dtype as string]!, off);
    datas.push(bytes);
    off += Math.ceil(bytes.length / 32) * 32;
  }
  e.pad(32);
  const fields = [...e.fields];
  for (const d of datas) { e.raw(...d); e.pad(32); }
  const base = e.bytes();
  const ok = GGUFFile.fromBuffer(base, "base");
  assert.equal(ok.tensors.length, tensors.length);
  for (const t of ok.tensors) ok.dequantize(t.name);

  const r = rng(12345), ri = (n: number) => Math.floor(r() * n);
  const interesting = [0n, 1n, 2n, 3n, 7n, 8n, 13n, 31n, 32n, 33n, 255n, 256n, 65535n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, BigInt(base.length)];
  const start = performance.now();
  let rejected = 0, accepted = 0;
  for (let it = 0; it < 10000; it++) {
    let buf = base.slice();
    const kind = ri(5);
    if (kind === 0) { for (let k = 1 + ri(4); k > 0; k--) buf[ri(buf.length)] ^= 1 << ri(8); }
    else if (kind === 1) buf = buf.slice(0, ri(buf.length));
    else if (kind === 2) { for (let k = 1 + ri(3); k > 0; k--) buf[ri(Math.min(buf.length, 400))] = ri(256); }
    else {
      const fld = fields[ri(fields.length)], dv = new DataView(buf.buffer);
      const old = fld.size === 4 ? BigInt(dv.getUint32(fld.pos, true)) : dv.getBigUint64(fld.pos, true);
      let v = kind === 3 ? interesting[ri(interesting.length)] : old + BigInt(ri(9) - 4);
      if (fld.size === 4) dv.setUint32(fld.pos, Number(BigInt.asUintN(32, v)), true);
      else dv.setBigUint64(fld.pos, BigInt.asUintN(64, v), true);
    }
    try {
      const f = GGUFFile.fromBuffer(buf, `mut${it}`);
      for (const [k, ent] of f.metadata) {
        void ent.value;
        try { f.getU32(k); } catch (err) { if (!(err instanceof FathomError)) throw err; }
        try { f.getString(k); } catch (err) { if (!(err instanceof FathomError)) throw err; }
        try { f.getArray(k); } catch (err) { if (!(err instanceof FathomError)) throw err; }
      }
      for (const t of f.tensors) {
        try { f.get(t.name).buffer(); } catch (err) { if (!(err instanceof FathomError)) throw err; }
        try { f.dequantize(t.name); } catch (err) { if (!(err instanceof FathomError)) throw err; }
      }
      accepted++;
    } catch (err) {
      if (!(err instanceof FathomError)) assert.fail(`mutation ${it} (kind ${kind}) threw ${(err as Error)?.name}: ${(err as Error)?.message}`);
      rejected++;
    }
  }
  const ms = performance.now() - start;
  t.diagnostic(`${rejected} rejected, ${accepted} accepted in ${ms.toFixed(0)} ms`);
  assert.ok(rejected > 1000 && accepted > 1000, `rejected ${rejected}, accepted ${accepted}`);
  assert.ok(ms < 20000, `fuzz took ${ms.toFixed(0)} ms`);
});

// ---- tokenizer metadata
const BYTE_TOKENS = ["!", "a", "b", "c", "d", "e", "h", "l", "o", "r", "w", "Ġ", "Ċ", "1", "2"];
function handMadeTokenizer() {
  const vocab: Record<string, number> = {};
  BYTE_TOKENS.forEach((t, i) => (vocab[t] = i + 3)); // ids 0..2 are the special tokens, outside model.vocab
  const merges: [string, string][] = [["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["Ġ", "w"], ["o", "r"], ["Ġw", "or"], ["Ġwor", "l"], ["Ġworl", "d"], ["a", "b"], ["ab", "c"], ["1", "2"]];
  let id = 3 + BYTE_TOKENS.length;
  for (const [a, b] of merges) vocab[a + b] = id++;
  id += 2; // a gap of two unused ids
  const gapEnd = id;
  return {
    tokenizerJson: {
      version: "1.0",
      added_tokens: [
        { id: 0, content: "<｜begin▁of▁sentence｜>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
        { id: 1, content: "<｜end▁of▁sentence｜>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
        { id: 2, content: "<｜▁pad▁｜>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
        { id: gapEnd, content: "<think>", single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
      ],
      model: { type: "BPE", vocab, merges },
    },
    tokenizerConfig: {
      add_bos_token: true, add_eos_token: false,
      bos_token: { content: "<｜begin▁of▁sentence｜>", __type: "AddedToken" }, eos_token: "<｜end▁of▁sentence｜>", pad_token: "<｜▁pad▁｜>",
      chat_template: "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    },
    gap: [gapEnd - 2, gapEnd - 1],
  };
}

test("tokenizer.json → GGUF metadata: tokens by id, types, merges, special ids, template", () => {
  const { tokenizerJson, tokenizerConfig, gap } = handMadeTokenizer();
  const entries = tokenizerToGGUF(tokenizerJson, tokenizerConfig, { pre: "deepseek-v3" });
  const f = GGUFFile.fromBuffer(encodeGGUF({ metadata: entries }), "tok.gguf");
  assert.equal(f.getString("tokenizer.ggml.model"), "gpt2");
  assert.equal(f.getString("tokenizer.ggml.pre"), "deepseek-v3");
  const tokens = f.getArray("tokenizer.ggml.tokens", "string") as string[];
  const types = f.getArray("tokenizer.ggml.token_type", "i32") as Int32Array;
  assert.equal(tokens.length, gap[1] + 2);
  assert.equal(tokens[0], "<｜begin▁of▁sentence｜>");
  assert.equal(tokens[3], "!");
  assert.equal(tokens[gap[0]], `[PAD${gap[0]}]`);
  assert.deepEqual([types[0], types[1], types[2], types[3], types[gap[0]], types[gap[1]], types[gap[1] + 1]], [3, 3, 3, 1, 5, 5, 4]);
  const merges = f.getArray("tokenizer.ggml.merges", "string") as string[];
  assert.equal(merges[0], "h e");
  assert.equal(merges.length, 12);
  assert.deepEqual([f.getU32("tokenizer.ggml.bos_token_id"), f.getU32("tokenizer.ggml.eos_token_id"), f.getU32("tokenizer.ggml.padding_token_id")], [0, 1, 2]);
  assert.equal(f.has("tokenizer.ggml.unknown_token_id"), false);
  assert.deepEqual([f.getBool("tokenizer.ggml.add_bos_token"), f.getBool("tokenizer.ggml.add_eos_token")], [true, false]);
  assert.equal(f.getString("tokenizer.chat_template"), tokenizerConfig.chat_template);
  // merges stored as "a b" strings in tokenizer.json give the same metadata
  const asStrings = { ...tokenizerJson, model: { ...tokenizerJson.model, merges: tokenizerJson.model.merges.map(([a, b]) => `${a} ${b}`) } };
  assert.deepEqual(tokenizerToGGUF(asStrings, tokenizerConfig, { pre: "deepseek-v3" }), entries);
});

test("tokenizer.json → GGUF → tokenizer.json preserves vocab, merges, added tokens, ids and settings", () => {
  const { tokenizerJson, tokenizerConfig } = handMadeTokenizer();
  const entries = tokenizerToGGUF(tokenizerJson, tokenizerConfig, { pre: "deepseek-v3" });
  const f = GGUFFile.fromBuffer(encodeGGUF({ metadata: entries }), "tok.gguf");
  const back = ggufToTokenizer(f.metadata);
  assert.deepEqual(back.tokenizerJson.model.vocab, tokenizerJson.model.vocab);
  assert.deepEqual(back.tokenizerJson.model.merges, tokenizerJson.model.merges.map(([a, b]) => `${a} ${b}`));
  assert.equal(back.tokenizerJson.model.type, "BPE");
  const strip = (a: { id: number; content: string; special?: boolean }[]) => a.map(({ id, content, special }) => ({ id, content, special }));
  assert.deepEqual(strip(back.tokenizerJson.added_tokens), strip(tokenizerJson.added_tokens));
  assert.deepEqual(back.tokenizerConfig.bos_token, "<｜begin▁of▁sentence｜>");
  assert.deepEqual(back.tokenizerConfig.eos_token, "<｜end▁of▁sentence｜>");
  assert.deepEqual(back.tokenizerConfig.pad_token, "<｜▁pad▁｜>");
  assert.equal(back.tokenizerConfig.add_bos_token, true);
  assert.equal(back.tokenizerConfig.chat_template, tokenizerConfig.chat_template);
  assert.equal(back.tokenizerJson.decoder.type, "ByteLevel");
  assert.equal(back.tokenizerJson.pre_tokenizer.type, "Sequence");
  assert.equal(back.tokenizerJson.post_processor.type, "TemplateProcessing");
  assert.deepEqual(back.tokenizerJson.post_processor.special_tokens["<｜begin▁of▁sentence｜>"].ids, [0]);
  // and a second trip gives identical metadata (also from the entry list directly)
  assert.deepEqual(tokenizerToGGUF(back.tokenizerJson, back.tokenizerConfig, { pre: "deepseek-v3" }), entries);
  assert.deepEqual(ggufToTokenizer(entries), back);
});

test("tokenizer conversion errors are FormatErrors naming the problem", () => {
  assert.throws(() => tokenizerToGGUF({ model: { type: "Unigram", vocab: [] } }, undefined, { pre: "x" }), /model type is Unigram, expected BPE/);
  assert.throws(() => tokenizerToGGUF({ model: { type: "BPE", vocab: { a: 0 }, merges: [["a"]] } }, undefined, { pre: "x" }), /merge #0 is neither/);
  assert.throws(() => ggufToTokenizer([{ key: "tokenizer.ggml.model", type: "string", value: "llama" }]), (e) => e instanceof FormatError && /expected gpt2/.test((e as Error).message));
  assert.throws(() => ggufToTokenizer([{ key: "tokenizer.ggml.model", type: "string", value: "gpt2" }]), /missing tokenizer.ggml.tokens/);
});
