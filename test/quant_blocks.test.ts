// Block quantization (src/quant/types.ts): dequantize against blocks whose bytes are built here by hand from the
// ggml layouts (deepseek-spec §5.9), quantize→dequantize error budgets on N(0,1) data, Q4_K scale/min packing for
// every 6-bit pair, and special blocks (all zero, one large value). The Q4_K golden hash came from ggml's
// quantize_row_q4_K_ref compiled without FMA contraction on the same input.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createHash } from "node:crypto";
import { QUANT_TYPES, getScaleMinK4, packScaleMinK4, quantizeTensor, dequantizeTensor } from "../src/quant/types.js";
import { FathomError, Tensor } from "../src/index.js";

/** Seeded N(0,1) samples (mulberry32 + Box-Muller), independent of the tensor library. */
function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return out;
}

function relRms(x: Float32Array, y: Float32Array): number {
  let e = 0, s = 0;
  for (let i = 0; i < x.length; i++) { e += (x[i] - y[i]) ** 2; s += x[i] ** 2; }
  return Math.sqrt(e / s);
}

test("Q8_0 dequantize of a hand-built block", () => {
  const b = new Uint8Array(34);
  b[0] = 0x00; b[1] = 0x38; // f16 0.5
  const q = [1, -1, 127, -128, 0, 5, -7];
  q.forEach((v, j) => (b[2 + j] = v & 0xff));
  const y = QUANT_TYPES.q8_0.dequantizeRef(b);
  assert.deepEqual(Array.from(y.subarray(0, 7)), [0.5, -0.5, 63.5, -64, 0, 2.5, -3.5]);
  assert.ok(y.subarray(7).every((v) => v === 0));
});

test("Q4_0 dequantize of a hand-built block: low nibble = element j, high nibble = element j+16", () => {
  const b = new Uint8Array(18);
  b[0] = 0x00; b[1] = 0x40; // f16 2.0
  for (let j = 0; j < 16; j++) b[2 + j] = j | ((15 - j) << 4);
  const y = QUANT_TYPES.q4_0.dequantizeRef(b);
  for (let j = 0; j < 16; j++) {
    assert.equal(y[j], (j - 8) * 2);
    assert.equal(y[j + 16], (15 - j - 8) * 2);
  }
});

test("Q4_K dequantize of a hand-built super-block (6-bit scales with high bits, 4 groups of nibbles)", () => {
  const sc = [1, 2, 3, 4, 17, 33, 50, 63], m = [0, 5, 10, 63, 16, 31, 47, 62];
  const b = new Uint8Array(144);
  b[0] = 0x00; b[1] = 0x3c; // d = 1.0
  b[2] = 0x00; b[3] = 0x38; // dmin = 0.5
  // Packing written out from the spec text: bytes 0-3 = sc0..3 | (hi2(sc4..7) << 6); bytes 4-7 = m0..3 | (hi2(m4..7) << 6);
  // bytes 8-11 = lo4(sc4..7) | (lo4(m4..7) << 4).
  for (let j = 0; j < 4; j++) {
    b[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    b[8 + j] = m[j] | ((m[j + 4] >> 4) << 6);
    b[12 + j] = (sc[j + 4] & 15) | ((m[j + 4] & 15) << 4);
  }
  for (let g = 0; g < 4; g++) for (let l = 0; l < 32; l++) b[16 + 32 * g + l] = (l % 16) | (((7 * l) % 16) << 4);
  const y = QUANT_TYPES.q4_K.dequantizeRef(b);
  for (let g = 0; g < 4; g++)
    for (let l = 0; l < 32; l++) {
      assert.equal(y[64 * g + l], sc[2 * g] * (l % 16) - 0.5 * m[2 * g], `element ${64 * g + l}`);
      assert.equal(y[64 * g + 32 + l], sc[2 * g + 1] * ((7 * l) % 16) - 0.5 * m[2 * g + 1], `element ${64 * g + 32 + l}`);
    }
});

test("Q4_K scale/min packing round-trips all 64×64 6-bit pairs at every sub-block position", () => {
  const q = new Uint8Array(12);
  for (let s = 0; s < 64; s++)
    for (let mn = 0; mn < 64; mn++) {
      const j0 = (s * 64 + mn) % 8;
      const scales = Array.from({ length: 8 }, (_, j) => (j === j0 ? s : (s * 7 + mn * 3 + j * 11) & 63));
      const mins = Array.from({ length: 8 }, (_, j) => (j === j0 ? mn : (s * 5 + mn * 13 + j * 29) & 63));
      packScaleMinK4(scales, mins, q);
      for (let j = 0; j < 8; j++) {
        const [a, b] = getScaleMinK4(j, q);
        if (a !== scales[j] || b !== mins[j]) assert.fail(`pair (${scales[j]}, ${mins[j]}) at ${j} read back as (${a}, ${b})`);
      }
    }
});

// Measured on 65,536 N(0,1) samples: Q8_0 0.0054, Q4_0 0.086, Q4_K 0.0715 (ggml's reference gives the same).
const BUDGET = { q8_0: 0.006, q4_0: 0.095, q4_K: 0.078 } as const;
for (const [name, budget] of Object.entries(BUDGET) as [keyof typeof BUDGET, number][]) {
  test(`${name} quantize→dequantize relative RMS error on N(0,1) is below ${budget}`, () => {
    const x = gaussian(65536, 7);
    const qt = QUANT_TYPES[name];
    const bytes = qt.quantizeRef(x);
    assert.equal(bytes.length, (x.length / qt.blockSize) * qt.bytesPerBlock);
    const err = relRms(x, qt.dequantizeRef(bytes));
    assert.ok(err < budget, `${name}: relative RMS ${err.toFixed(5)} ≥ ${budget}`);
    assert.ok(err > budget / 3, `${name}: relative RMS ${err.toFixed(5)} suspiciously small`);
  });
}

test("Q4_K quantize matches ggml's quantize_row_q4_K_ref byte for byte (golden hash)", () => {
  const x = gaussian(256 * 8, 42);
  for (let i = 0; i < 256; i++) x[i] = x[i] * 0.05 + 0.3; // all positive: the min is clamped to 0
  const h = createHash("sha256").update(QUANT_TYPES.q4_K.quantizeRef(x)).digest("hex");
  assert.equal(h, "cc51fdc9af5911caa59d78796512bfa07a0c8671b0bfcd05a8b6d709b03652dc");
});

test("Q8_0 and Q4_0 follow the reference rounding rules", () => {
  // Q8_0: amax 127 → d = 1; 2.5 rounds away from zero to 3, -2.5 to -3
  const x = new Float32Array(32); x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 0.49;
  const b = QUANT_TYPES.q8_0.quantizeRef(x);
  assert.deepEqual([b[0], b[1]], [0x00, 0x3c]);
  assert.deepEqual(Array.from(new Int8Array(b.buffer, 2, 4)), [127, 3, -3, 0]);
  // Q4_0: the largest-magnitude element is -8 → d = 1, it maps to q = 0; 7.9 → min(15, trunc(16.4)) = 15
  const y = new Float32Array(32); y[0] = -8; y[1] = 7.9; y[16] = 1.2; y[17] = -1.5;
  const c = QUANT_TYPES.q4_0.quantizeRef(y);
  assert.deepEqual([c[0], c[1]], [0x00, 0x3c]);
  assert.equal(c[2], 0 | (9 << 4)); // element 0 → 0, element 16: trunc(9.7) = 9
  assert.equal(c[3], 15 | (7 << 4)); // element 1 → 15, element 17: trunc(7.0) = 7
});

test("all-zero blocks quantize to zero and dequantize to exact zeros", () => {
  for (const qt of Object.values(QUANT_TYPES)) {
    const x = new Float32Array(qt.blockSize * 2);
    const y = qt.dequantizeRef(qt.quantizeRef(x));
    assert.ok(y.every((v) => v === 0), `${qt.name}: zeros do not round-trip`);
  }
});

test("a block with one large value keeps it and the small values stay small", () => {
  for (const qt of Object.values(QUANT_TYPES)) {
    for (const big of [1000, -1000]) {
      const x = gaussian(qt.blockSize, 3).map((v) => v * 0.01);
      x[5] = big;
      const y = qt.dequantizeRef(qt.quantizeRef(x));
      assert.ok(Math.abs(y[5] - big) <= Math.abs(big) * 0.02, `${qt.name}: ${big} came back as ${y[5]}`);
      // other elements are at most one quantization step (≈ |big|/7 for 4-bit) from their value
      const step = qt.name === "q8_0" ? Math.abs(big) / 127 : Math.abs(big) / 7;
      for (let i = 0; i < x.length; i++) if (i !== 5) assert.ok(Math.abs(y[i] - x[i]) <= step, `${qt.name}: element ${i} is ${y[i]}, was ${x[i]}`);
    }
  }
});

test("quantize/dequantize tensor helpers keep the shape and check block multiples", () => {
  const x = Tensor.from(gaussian(2 * 256, 9), "f32", [2, 256]);
  for (const name of ["q8_0", "q4_0", "q4_K"] as const) {
    const q = quantizeTensor(x, name);
    assert.equal(q.dtype, name);
    assert.deepEqual([...q.shape], [2, 256]);
    const y = dequantizeTensor(q);
    assert.deepEqual([...y.shape], [2, 256]);
    assert.ok(relRms(x.buffer() as Float32Array, y.buffer() as Float32Array) < BUDGET[name]);
  }
  assert.throws(() => quantizeTensor(Tensor.from(new Float32Array(40), "f32", [40]), "q8_0"), (e) => e instanceof FathomError && /multiple of 32/.test(e.message));
  assert.throws(() => QUANT_TYPES.q4_K.dequantizeRef(new Uint8Array(100)), /100 bytes is not a multiple of 144/);
});
