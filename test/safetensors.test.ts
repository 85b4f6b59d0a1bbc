// Safetensors reader and writer: round trips of every dtype, the exact byte layout against an encoder written
// here, zero-copy views, FP8 decoding and block dequantization, sharded checkpoints, atomic writes, one test per
// validation error, and a seeded 10,000-mutation fuzz that may only ever raise FathomError.
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as F from "../src/index.js";

const dir = mkdtempSync(join(tmpdir(), "fathom-st-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name = "t.safetensors") => join(dir, `${fileNo++}-${name}`);

// ---- an independent encoder: u64 LE header length, JSON header padded with spaces, raw data
function encodeRaw(header: string, data: Uint8Array = new Uint8Array(0), headerLen?: number): ArrayBuffer {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out.buffer;
}
/** Bytes of a little-endian typed array. */
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};

/** Seeded PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** F8_E4M3 from its definition: (-1)^s · 2^(e-7) · (1 + m/8), subnormals 2^-6 · m/8, S.1111.111 = NaN. */
const E4M3: number[] = Array.from({ length: 256 }, (_, b) => {
  const s = b >> 7, e = (b >> 3) & 0b1111, m = b & 0b111;
  if (e === 0b1111 && m === 0b111) return NaN;
  const mag = e === 0 ? Math.pow(2, -6) * (m / 8) : Math.pow(2, e - 7) * (1 + m / 8);
  return s ? -mag : mag;
});

function sameValues(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++)
    if (!Object.is(actual[i], expected[i])) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
}

const ALL: F.DType[] = ["f64", "f32", "f16", "bf16", "i32", "i8", "u8", "bool"];
function sample(dtype: F.DType, shape: number[], seed: number): F.Tensor {
  const r = rng(seed), n = shape.reduce((a, b) => a * b, 1);
  const vals = Array.from({ length: n }, () => {
    if (dtype === "bool") return r() < 0.5 ? 0 : 1;
    if (dtype === "u8") return Math.floor(r() * 256);
    if (dtype === "i8") return Math.floor(r() * 256) - 128;
    if (dtype === "i32") return Math.floor(r() * 2 ** 32) - 2 ** 31;
    return (r() - 0.5) * 1000;
  });
  return F.tensor(vals, { dtype, shape });
}

describe("safetensors round trip", () => {
  test("every dtype and odd shapes, including 0-d and empty tensors", () => {
    const shapes = [[], [0], [3, 0, 2], [7], [2, 3], [1, 1, 5], [2, 3, 4]];
    const tensors = new Map<string, F.Tensor>();
    ALL.forEach((dt, i) => shapes.forEach((s, j) => tensors.set(`${dt}.${j}`, sample(dt, s, i * 100 + j))));
    const path = tmp();
    F.saveSafetensors(path, tensors);
    const f = F.SafetensorsFile.open(path);
    assert.deepEqual(f.names(), [...tensors.keys()]);
    for (const [name, t] of tensors) {
      const got = f.get(name);
      assert.equal(got.dtype, t.dtype, name);
      assert.deepEqual([...got.shape], [...t.shape], name);
      sameValues(got.toArray(), t.toArray(), name);
    }
    assert.deepEqual(f.metadata, {});
  });

  test("non-contiguous tensors are written in row-major order", () => {
    const base = F.arange(0, 24, 1, "f32").reshape(4, 6);
    const views = { t: base.T, s: base.slice(1, 1, 6, 2), e: F.tensor([1, 2, 3], { dtype: "bf16" }).reshape(3, 1).expand(3, 4), p: base.reshape(2, 3, 4).permute(2, 0, 1) };
    const path = tmp();
    F.saveSafetensors(path, views);
    const f = F.SafetensorsFile.open(path);
    for (const [name, t] of Object.entries(views)) {
      assert.equal(t.isContiguous, false, name);
      assert.deepEqual(f.get(name).tolist(), t.contiguous().tolist(), name);
    }
  });

  test("byte-exact layout against a hand-built file", () => {
    const path = tmp();
    F.saveSafetensors(path, new Map([
      ["w", F.tensor([1, -2], { dtype: "f32" })],
      ["b", F.tensor([1, 2, 3], { dtype: "u8" })],
      ["h", F.tensor(1, { dtype: "bf16" })],
    ]), { format: "pt" });
    const header = '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"h":{"dtype":"BF16","shape":[],"data_offsets":[11,13]}}';
    const padded = header + " ".repeat((8 - (header.length % 8)) % 8);
    const data = concat(bytesOf(new Float32Array([1, -2])), new Uint8Array([1, 2, 3]), new Uint8Array([0x80, 0x3f])); // bf16 1.0 = 0x3f80
    const expected = new Uint8Array(encodeRaw(padded, data));
    assert.equal((8 + padded.length) % 8, 0);
    assert.deepEqual(new Uint8Array(readFileSync(path)), expected);
    const f = F.SafetensorsFile.open(path);
    assert.deepEqual(f.metadata, { format: "pt" });
    assert.deepEqual(f.info("b"), { dtype: "U8", shape: [3], byteOffset: 8 + padded.length + 8, byteLength: 3 });
  });

  test("zero-copy views of the mapped file; unaligned data is copied", () => {
    const path = tmp();
    F.saveSafetensors(path, { a: sample("f32", [16, 8], 1), b: sample("bf16", [5], 2) });
    const f = F.SafetensorsFile.open(path);
    for (const name of f.names()) {
      const t = f.get(name);
      assert.equal(t.data.buffer, f.buffer, `${name} shares the mapped buffer`);
      assert.equal(t.data.byteOffset, f.info(name).byteOffset);
    }
    // A u8 then an f32 at data offset 1: not 4-aligned, so the f32 is copied (values still right).
    const hdr = '{"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}';
    const g = F.SafetensorsFile.fromBuffer(encodeRaw(hdr.padEnd(120, " "), concat(new Uint8Array([7]), bytesOf(new Float32Array([1.5, -3])))), "unaligned");
    const t = g.get("f");
    assert.notEqual(t.data.buffer, g.buffer);
    assert.deepEqual(t.toArray(), [1.5, -3]);
    assert.deepEqual(g.get("u").toArray(), [7]);
  });

  test("headers without padding, with trailing spaces, and with holes between tensors", () => {
    const hdr = '{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"I8","shape":[1],"data_offsets":[5,6]}}';
    for (const h of [hdr, hdr + "     ", hdr + " ".repeat(1000)]) {
      const f = F.SafetensorsFile.fromBuffer(encodeRaw(h, new Uint8Array([0xff, 2, 9, 9, 9, 4])), "holes");
      assert.deepEqual(f.get("a").toArray(), [-1, 2]);
      assert.deepEqual(f.get("b").toArray(), [4]);
    }
  });

  test("I64 becomes i32; a value that does not fit is an error naming the tensor", () => {
    const vals = [0n, -1n, 5n, 2147483647n, -2147483648n];
    const hdr = (n: number) => `{"ids":{"dtype":"I64","shape":[${n}],"data_offsets":[0,${8 * n}]}}`;
    const f = F.SafetensorsFile.fromBuffer(encodeRaw(hdr(5), bytesOf(new BigInt64Array(vals))), "ids.safetensors");
    const t = f.get("ids");
    assert.equal(t.dtype, "i32");
    assert.deepEqual(t.toArray(), vals.map(Number));
    for (const bad of [2147483648n, -2147483649n, 1n << 40n]) {
      const g = F.SafetensorsFile.fromBuffer(encodeRaw(hdr(2), bytesOf(new BigInt64Array([1n, bad]))), "ids.safetensors");
      assert.throws(() => g.get("ids"), (e: Error) => e instanceof F.DTypeError && /ids\.safetensors: tensor 'ids': I64 element 1 .* does not fit in i32/.test(e.message));
    }
  });

  test("I16, U16, U32 and U64 become i32; F8_E5M2 decodes as the top byte of an f16", () => {
    const parts: [string, string, number[], Uint8Array][] = [
      ["a", "I16", [3], bytesOf(new Int16Array([-32768, -1, 32767]))],
      ["b", "U16", [2], bytesOf(new Uint16Array([0, 65535]))],
      ["c", "U32", [2], bytesOf(new Uint32Array([7, 2 ** 31 - 1]))],
      ["d", "U64", [1], bytesOf(new BigUint64Array([123n]))],
      ["e", "F8_E5M2", [4], new Uint8Array([0x3c, 0x7c, 0xfe, 0x01])], // 1, inf, NaN, 2^-16
    ];
    let off = 0;
    const hdr = JSON.stringify(Object.fromEntries(parts.map(([n, dt, s, b]) => [n, { dtype: dt, shape: s, data_offsets: [off, (off += b.length)] }])));
    const f = F.SafetensorsFile.fromBuffer(encodeRaw(hdr, concat(...parts.map((p) => p[3]))), "ints");
    assert.deepEqual(f.get("a").toArray(), [-32768, -1, 32767]);
    assert.deepEqual(f.get("b").toArray(), [0, 65535]);
    assert.deepEqual(f.get("c").toArray(), [7, 2 ** 31 - 1]);
    assert.deepEqual(f.get("d").toArray(), [123]);
    sameValues(f.get("e").data, [1, Infinity, NaN, 2 ** -16], "E5M2");
    const big = F.SafetensorsFile.fromBuffer(encodeRaw('{"c":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}}', bytesOf(new Uint32Array([2 ** 31]))), "ints");
    assert.throws(() => big.get("c"), /tensor 'c': U32 element 0 \(2147483648\) does not fit in i32/);
  });
});

describe("FP8", () => {
  test("F8_E4M3 decodes all 256 byte values exactly; getFp8 returns the raw bytes", () => {
    assert.equal(E4M3[0x7e], 448);
    assert.equal(E4M3[0x38], 1);
    assert.equal(E4M3[0x01], 2 ** -9);
    assert.ok(Object.is(E4M3[0x80], -0) && Number.isNaN(E4M3[0xff]));
    const raw = Uint8Array.from({ length: 256 }, (_, i) => i);
    const f = F.SafetensorsFile.fromBuffer(encodeRaw('{"w":{"dtype":"F8_E4M3","shape":[16,16],"data_offsets":[0,256]}}', raw), "fp8");
    const t = f.get("w");
    assert.equal(t.dtype, "f32");
    assert.deepEqual([...t.shape], [16, 16]);
    sameValues(t.data, E4M3, "E4M3");
    const b = f.getFp8("w");
    assert.equal(b.dtype, "u8");
    assert.equal(b.data.buffer, f.buffer);
    sameValues(b.data, raw, "raw bytes");
  });

  test("block dequantization of a 130×260 matrix with partial edge blocks", () => {
    const rows = 130, cols = 260, r = rng(7);
    const w = Uint8Array.from({ length: rows * cols }, () => Math.floor(r() * 256));
    const scale = Float32Array.from({ length: 2 * 3 }, () => r() * 4);
    const expected = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) expected[i * cols + j] = E4M3[w[i * cols + j]] * scale[Math.floor(i / 128) * 3 + Math.floor(j / 128)];
    // Through a file, as DeepSeek-V3 stores it: the weight in F8_E4M3 and its f32 W_scale_inv.
    const hdr = `{"w":{"dtype":"F8_E4M3","shape":[${rows},${cols}],"data_offsets":[0,${rows * cols}]},` +
      `"w_scale_inv":{"dtype":"F32","shape":[2,3],"data_offsets":[${rows * cols},${rows * cols + 24}]}}`;
    const f = F.SafetensorsFile.fromBuffer(encodeRaw(hdr.padEnd(200), concat(w, bytesOf(scale))), "v3");
    const out = F.dequantFp8(f.getFp8("w"), f.get("w_scale_inv"));
    assert.deepEqual([...out.shape], [rows, cols]);
    sameValues(out.data, expected, "dequant");
    sameValues(F.dequantFp8(f.get("w"), f.get("w_scale_inv")).data, expected, "dequant of decoded f32");
    assert.throws(() => F.dequantFp8(f.getFp8("w"), F.zeros([1, 3])), (e: Error) => e instanceof F.ShapeError && /must be \[2, 3\], got \[1, 3\]/.test(e.message));
    // Smaller blocks: 64 → scale [3, 5].
    const s64 = F.tensor(Array.from({ length: 15 }, (_, i) => i + 1), { shape: [3, 5] });
    const d64 = F.dequantFp8(f.getFp8("w"), s64, 64).data;
    for (const [i, j] of [[0, 0], [63, 64], [129, 259], [64, 200]]) assert.ok(Object.is(d64[i * cols + j], E4M3[w[i * cols + j]] * (Math.floor(i / 64) * 5 + Math.floor(j / 64) + 1)));
    assert.throws(() => f.getFp8("w_scale_inv"), (e: Error) => e instanceof F.DTypeError && /tensor 'w_scale_inv': expected F8_E4M3/.test(e.message));
  });
});

describe("safetensors validation", () => {
  const good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const open = (buf: ArrayBuffer) => F.SafetensorsFile.fromBuffer(buf, "bad.safetensors");
  const entry = (e: string, data = 8) => encodeRaw(`{"a":${e}}`, new Uint8Array(data));
  const cases: [string, ArrayBuffer, RegExp][] = [
    ["shorter than 8 bytes", new ArrayBuffer(5), /file is 5 bytes, shorter than the 8-byte header length/],
    ["header length past the end", encodeRaw(good, new Uint8Array(8), 500), /header length 500 runs past the end of the file \(70 bytes\)/],
    ["absurd header length", encodeRaw(good, new Uint8Array(8), 2 ** 40), /header length 1099511627776 is absurdly large/],
    ["invalid UTF-8 bytes", (() => { const b = new Uint8Array(encodeRaw("{\"\"}")); b[10] = 0xff; return b.buffer; })(), /header is not valid UTF-8 JSON/],
    ["invalid JSON", encodeRaw('{"a": '), /header is not valid UTF-8 JSON/],
    ["header an array", encodeRaw("[1, 2]"), /header must be a JSON object, got an array/],
    ["header null", encodeRaw("null"), /header must be a JSON object, got null/],
    ["entry a number", entry("3"), /tensor 'a': entry must be \{dtype: string, shape: number\[\], data_offsets: \[begin, end\]\}/],
    ["entry without data_offsets", entry('{"dtype":"F32","shape":[2]}'), /tensor 'a': entry must be/],
    ["unknown dtype", entry('{"dtype":"F33","shape":[2],"data_offsets":[0,8]}'), /tensor 'a': unknown dtype 'F33' \(expected one of F64, F32/],
    ["non-integer shape", entry('{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}'), /tensor 'a': shape \[1.5\] must hold integers >= 0/],
    ["negative shape", entry('{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}'), /tensor 'a': shape \[-2\] must hold integers >= 0/],
    ["string shape", entry('{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}'), /tensor 'a': shape \["2"\] must hold integers/],
    ["offsets not a pair", entry('{"dtype":"F32","shape":[2],"data_offsets":[8]}'), /tensor 'a': data_offsets \[8\] must be \[begin, end\] integers >= 0/],
    ["negative offset", entry('{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}'), /tensor 'a': data_offsets \[-8,0\] must be/],
    ["fractional offset", entry('{"dtype":"F32","shape":[2],"data_offsets":[0,7.5]}'), /tensor 'a': data_offsets \[0,7.5\] must be/],
    ["end before begin", entry('{"dtype":"F32","shape":[0],"data_offsets":[8,0]}'), /tensor 'a': data_offsets \[8, 0\]: end is before begin/],
    ["byte length mismatch", entry('{"dtype":"F32","shape":[2],"data_offsets":[0,4]}'), /tensor 'a': 4 bytes, expected 8 for F32 \[2\]/],
    ["data past the end", entry('{"dtype":"F32","shape":[3],"data_offsets":[0,12]}'), /tensor 'a': data \[\d+, \d+\) runs past the end of the file/],
    ["overlap", encodeRaw('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[2],"data_offsets":[7,9]}}', new Uint8Array(9)),
      /bad\.safetensors: tensor 'b' \[7, 9\) overlaps tensor 'a' \[0, 8\)/],
    ["metadata not a map", encodeRaw('{"__metadata__":"pt"}'), /__metadata__ must be a map of strings/],
    ["metadata value not a string", encodeRaw('{"__metadata__":{"total":3}}'), /__metadata__ 'total' must be a string, got 3/],
  ];
  for (const [what, buf, re] of cases)
    test(what, () => assert.throws(() => open(buf), (e: Error) => e instanceof F.FormatError && e.message.startsWith("[safetensors] bad.safetensors: ") && re.test(e.message)));

  test("missing files and tensors are named", () => {
    assert.throws(() => F.SafetensorsFile.open(join(dir, "nope.safetensors")), (e: Error) => e instanceof F.FathomError && /nope\.safetensors/.test(e.message));
    const f = open(encodeRaw(good, new Uint8Array(8)));
    assert.throws(() => f.get("zz"), (e: Error) => e instanceof F.FathomError && /bad\.safetensors: no tensor 'zz'/.test(e.message));
    assert.equal(f.has("a"), true);
  });
});

describe("writing", () => {
  test("a write that fails midway leaves neither a partial file nor a temp file; an old file survives", () => {
    const sub = mkdtempSync(join(dir, "atomic-"));
    const boom = F.ones([4]);
    boom.buffer = () => { throw new Error("boom"); };
    const path = join(sub, "m.safetensors");
    assert.throws(() => F.saveSafetensors(path, { a: F.ones([1000]), b: boom }), /boom/);
    assert.deepEqual(readdirSync(sub), []);
    F.saveSafetensors(path, { a: F.ones([3]) });
    const before = readFileSync(path);
    assert.throws(() => F.saveSafetensors(path, { a: F.ones([1000]), b: boom }), /boom/);
    assert.deepEqual(readdirSync(sub), ["m.safetensors"]);
    assert.deepEqual(readFileSync(path), before);
  });

  test("unsupported dtypes and reserved names are refused before writing", () => {
    const path = tmp();
    assert.throws(() => F.saveSafetensors(path, { q: F.zeros([32], "q8_0") }), (e: Error) => e instanceof F.DTypeError && /tensor 'q': cannot save dtype q8_0/.test(e.message));
    assert.throws(() => F.saveSafetensors(path, { __metadata__: F.ones([1]) }), /reserved/);
    assert.equal(existsSync(path), false);
  });
});

describe("sharded checkpoints", () => {
  const tensors = new Map<string, F.Tensor>();
  for (let i = 0; i < 9; i++) tensors.set(`model.layers.${i}.weight`, sample(i % 2 ? "bf16" : "f32", [i + 1, 3], i));

  test("round trip with a small maxShardBytes, through the directory and the index", () => {
    const d = mkdtempSync(join(dir, "ckpt-"));
    const written = F.saveSharded(d, tensors, { maxShardBytes: 64, metadata: { format: "pt" } });
    const shards = readdirSync(d).filter((n) => n.endsWith(".safetensors")).sort();
    assert.ok(shards.length > 2);
    assert.equal(shards[0], `model-00001-of-${String(shards.length).padStart(5, "0")}.safetensors`);
    assert.equal(written.length, shards.length + 1);
    const index = JSON.parse(readFileSync(join(d, "model.safetensors.index.json"), "utf8"));
    const total = [...tensors.values()].reduce((n, t) => n + t.numel * (t.dtype === "f32" ? 4 : 2), 0);
    assert.equal(index.metadata.total_size, total);
    assert.deepEqual(Object.keys(index.weight_map), [...tensors.keys()]);
    for (const s of shards) {
      const f = F.SafetensorsFile.open(join(d, s));
      assert.deepEqual(f.metadata, { format: "pt" });
      const bytes = f.names().reduce((n, k) => n + f.info(k).byteLength, 0);
      assert.ok(bytes <= 64 || f.names().length === 1, `${s} holds ${bytes} bytes`);
    }
    for (const at of [d, join(d, "model.safetensors.index.json")]) {
      const ck = F.SafetensorsCheckpoint.open(at);
      assert.deepEqual(ck.names(), [...tensors.keys()]);
      assert.equal(ck.metadata.total_size, total);
      for (const [name, t] of tensors) {
        assert.ok(ck.has(name));
        assert.deepEqual(ck.get(name).toArray(), t.toArray(), name);
        assert.equal(ck.info(name).dtype, t.dtype === "f32" ? "F32" : "BF16");
      }
      assert.equal(ck.has("nope"), false);
      assert.throws(() => ck.get("nope"), (e: Error) => e instanceof F.FathomError && /no tensor 'nope' in the checkpoint/.test(e.message));
    }
    // A single shard: model.safetensors, and the stale index goes.
    const one = F.saveSharded(d, tensors);
    assert.deepEqual(one, [join(d, "model.safetensors")]);
    assert.equal(existsSync(join(d, "model.safetensors.index.json")), false);
    const ck = F.SafetensorsCheckpoint.open(d);
    assert.equal(ck.files.length, 1);
    assert.deepEqual(ck.get("model.layers.8.weight").toArray(), tensors.get("model.layers.8.weight")!.toArray());
    assert.deepEqual(F.SafetensorsCheckpoint.open(join(d, "model.safetensors")).names(), [...tensors.keys()]);
  });

  test("errors name the missing shard, the misplaced tensor, and the empty directory", () => {
    const d = mkdtempSync(join(dir, "ckpt-"));
    F.saveSharded(d, tensors, { maxShardBytes: 64 });
    const indexPath = join(d, "model.safetensors.index.json");
    const index = JSON.parse(readFileSync(indexPath, "utf8"));
    const original = index.weight_map["model.layers.0.weight"];
    index.weight_map["model.layers.0.weight"] = index.weight_map["model.layers.8.weight"];
    writeFileSync(indexPath, JSON.stringify(index));
    assert.throws(() => F.SafetensorsCheckpoint.open(d), (e: Error) => e instanceof F.FormatError && /tensor 'model\.layers\.0\.weight' is not in its shard 'model-000\d\d-of/.test(e.message));
    index.weight_map["model.layers.0.weight"] = "../x.safetensors";
    writeFileSync(indexPath, JSON.stringify(index));
    assert.throws(() => F.SafetensorsCheckpoint.open(d), /shard must be a file name in the checkpoint directory/);
    index.weight_map["model.layers.0.weight"] = original;
    writeFileSync(indexPath, JSON.stringify(index));
    unlinkSync(join(d, index.weight_map["model.layers.8.weight"]));
    assert.throws(() => F.SafetensorsCheckpoint.open(d), (e: Error) => e instanceof F.FathomError && /tensor 'model\.layers\.8\.weight': shard 'model-000\d\d-of-000\d\d\.safetensors' is missing/.test(e.message));
    writeFileSync(indexPath, "{nope");
    assert.throws(() => F.SafetensorsCheckpoint.open(d), (e: Error) => e instanceof F.FormatError && /index is not valid JSON/.test(e.message));
    const empty = mkdtempSync(join(dir, "empty-"));
    assert.throws(() => F.SafetensorsCheckpoint.open(empty), /no model\.safetensors\.index\.json or model\.safetensors/);
  });
});

describe("fuzz", () => {
  // A valid small file with every kind of entry: aligned and unaligned views, conversions, FP8, 0-d and empty.
  const base = (() => {
    const path = tmp();
    F.saveSafetensors(path, new Map<string, F.Tensor>([
      ["f", sample("f32", [2, 3], 1)], ["h", sample("bf16", [5], 2)], ["u", F.tensor([1, 2, 3], { dtype: "u8" })],
      ["s", F.tensor(2.5, { dtype: "f16" })], ["e", F.zeros([0, 4], "bool")], ["d", sample("f64", [2], 3)],
    ]), { format: "pt" });
    const bytes = new Uint8Array(readFileSync(path));
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
    // Add an I64 and an F8_E4M3 tensor by hand (saveSafetensors writes neither).
    const dataLen = bytes.length - 8 - n;
    header.i = { dtype: "I64", shape: [2], data_offsets: [dataLen, dataLen + 16] };
    header.q = { dtype: "F8_E4M3", shape: [2, 2], data_offsets: [dataLen + 16, dataLen + 20] };
    const data = concat(bytes.subarray(8 + n), bytesOf(new BigInt64Array([-7n, 1n << 33n])), new Uint8Array([0x38, 0x7f, 0x80, 0x01]));
    return { header, data };
  })();

  const SAME_SIZE = [["F64", "I64", "U64"], ["F32", "I32", "U32"], ["F16", "BF16", "I16", "U16"], ["U8", "I8", "BOOL", "F8_E4M3", "F8_E5M2"]];

  function mutate(r: () => number): Uint8Array {
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
    const kind = int(0, 6);
    if (kind <= 1) {
      // Edit the JSON: offsets, shapes, dtypes (often to one of the same size, which stays valid), fields, metadata.
      const h = structuredClone(base.header);
      const names = Object.keys(h).filter((k) => k !== "__metadata__");
      for (let k = r() < 0.7 ? 1 : int(2, 3); k > 0; k--) {
        const e = h[pick(names)];
        const weird = () => pick<unknown>([-1, 0, 1, 2, 1.5, 2 ** 31, 2 ** 53, 1e300, "3", null, [], {}, int(0, 200), int(0, 200)]);
        try { // an earlier edit may have removed what this one changes; then it is a no-op
          switch (int(0, 8)) {
            case 0: e.data_offsets[int(0, 1)] = int(-4, base.data.length + 8); break;
            case 1: e.data_offsets[int(0, 1)] += pick([-1, 1, -8, 8]); break;
            case 2: e.shape[int(0, Math.max(0, e.shape.length - 1))] = weird(); break;
            case 3: e.shape = pick([[], [int(0, 40)], [int(0, 9), int(0, 9)], [2 ** 40, 2 ** 40, 0]]); break;
            case 4: e.dtype = pick(["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "U16", "U32", "U64", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "Q4", "", 7]); break;
            case 5: e.dtype = pick(SAME_SIZE.find((g) => g.includes(e.dtype)) ?? ["F32"]); break;
            case 6: delete e[pick(["dtype", "shape", "data_offsets"])]; break;
            case 7: e.data_offsets = weird(); break;
            case 8: h.__metadata__ = pick<unknown>([{ a: 1 }, "x", null, { format: "pt" }, []]); break;
          }
        } catch { /* skip */ }
      }
      const json = JSON.stringify(h) + " ".repeat(int(0, 9));
      const buf = new Uint8Array(encodeRaw(json, base.data));
      if (r() < 0.2) new DataView(buf.buffer).setUint32(0, json.length + int(-3, 3), true);
      return buf;
    }
    const json = JSON.stringify(base.header) + " ".repeat(int(0, 16));
    const buf = new Uint8Array(encodeRaw(json, base.data));
    const n = 8 + json.length;
    if (kind === 2) { // overwrite header bytes: digits and spaces (often still valid JSON) or any byte
      for (let k = int(1, 3); k > 0; k--) buf[int(0, n - 1)] = r() < 0.6 ? pick([...Buffer.from("0123456789 ")]) : int(0, 255);
      return buf;
    }
    if (kind === 3) { // overwrite data bytes
      for (let k = int(1, 8); k > 0; k--) buf[int(n, buf.length - 1)] = int(0, 255);
      return buf;
    }
    if (kind === 4) return r() < 0.5 ? buf.slice(0, int(0, buf.length)) : buf.slice(0, buf.length - int(1, 20)); // truncate
    if (kind === 5) { // header length edits
      const dv = new DataView(buf.buffer);
      const v = pick([() => dv.setUint32(0, n - 8 + int(-10, 10), true), () => dv.setUint32(0, int(0, 2 ** 32 - 1), true),
        () => dv.setUint32(4, int(0, 2 ** 32 - 1), true), () => dv.setBigUint64(0, 0n, true), () => dv.setUint32(0, int(0, buf.length), true)]);
      v();
      return buf;
    }
    // Insert or delete header bytes (the length stays, so everything shifts).
    const at = int(8, n - 1);
    return r() < 0.5 ? concat(buf.subarray(0, at), buf.subarray(at + int(1, 8))) : concat(buf.subarray(0, at), new Uint8Array(int(1, 8)).fill(int(0, 255)), buf.subarray(at));
  }

  test("10,000 seeded mutations: only FathomError, reads stay within the file", () => {
    const ok = F.SafetensorsFile.fromBuffer(encodeRaw(JSON.stringify(base.header), base.data), "base");
    assert.deepEqual(ok.get("q").toArray(), [1, NaN, -0, 2 ** -9]);
    const start = performance.now();
    let opened = 0, rejected = 0, read = 0, readErrors = 0;
    for (let seed = 0; seed < 10_000; seed++) {
      const r = rng(seed);
      const bytes = mutate(r);
      const buf = bytes.slice().buffer as ArrayBuffer; // a fresh buffer of exactly the file
      try {
        const f = F.SafetensorsFile.fromBuffer(buf, `fuzz-${seed}`);
        opened++;
        for (const name of f.names()) {
          try {
            const info = f.info(name);
            assert.ok(info.byteOffset >= 8 && info.byteOffset + info.byteLength <= buf.byteLength, `seed ${seed}: ${name} out of the file`);
            const t = f.get(name);
            assert.equal(t.numel, info.shape.reduce((a, b) => a * b, 1), `seed ${seed}: ${name} numel`);
            if (t.data.buffer === buf) assert.equal(t.data.byteOffset, info.byteOffset, `seed ${seed}: ${name} view offset`);
            if (info.dtype.startsWith("F8")) assert.equal(f.getFp8(name).data.byteLength, info.byteLength);
            read++;
          } catch (e) {
            if (!(e instanceof F.FathomError)) throw new Error(`seed ${seed}: get('${name}') threw ${(e as Error).stack}`);
            readErrors++;
          }
        }
      } catch (e) {
        if (!(e instanceof F.FathomError)) throw new Error(`seed ${seed}: open threw ${(e as Error).stack}`);
        rejected++;
      }
    }
    const ms = performance.now() - start;
    console.log(`fuzz: 10000 mutations, ${opened} opened (${read} tensors read, ${readErrors} refused), ${rejected} rejected, ${ms.toFixed(0)} ms`);
    assert.ok(opened > 1500 && rejected > 5000 && readErrors > 1000, "mutations should both pass and fail");
    assert.ok(ms < 20_000, `fuzz took ${ms} ms`);
  });
});
