// Batch invariance: a token decoded alone gets the same bits it gets inside a prefill or beside other sequences. The
// attention kernel merges keys in chunks at fixed absolute positions (whatever Tq, the other rows or the thread count),
// routers and MLA's dense k_b / v_b use row-invariant products, and the quantized kernels compute each row alike at any
// M. Without this, greedy decoding can part from a full forward (and from llama.cpp, whose kernels are invariant) when
// an activation sits near a rounding tie of q8_0 quantization.
import assert from "node:assert/strict";
import { describe, test, after } from "node:test";
import * as F from "../src/index.js";
import { matmul } from "../src/core/ops/linalg.js";
import { sdpa } from "../src/core/fused/sdpa.js";
import { getBackend } from "../src/core/backend/index.js";
import { loadNative } from "../src/core/backend/native/binding.js";
import type { CausalLM } from "../src/models/decoder.js";
import { TINY_CONFIGS } from "./fixtures.js";

const i32 = (v: number[]) => new F.Tensor(Int32Array.from(v), "i32", [1, v.length]);
const rows = (t: F.Tensor, n: number): Float32Array[] => {
  const a = t.contiguous().buffer() as Float32Array, w = a.length / n;
  return Array.from({ length: n }, (_, i) => a.subarray(i * w, (i + 1) * w));
};
/** Index of the first element whose bits differ, or -1. */
const firstDiff = (a: Float32Array, b: Float32Array) => {
  assert.equal(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
};

const addon = getBackend().name === "native" ? loadNative() : null;
after(() => addon?.setThreads(0));

describe("attention: a query row's output does not depend on Tq, the other rows or the thread count", () => {
  // (Hq, Hkv, D, Dv): multi-head, grouped, and MLA's single latent head with D ≠ Dv (not multiples of 16)
  const shapes: [number, number, number, number][] = [[4, 4, 16, 16], [8, 2, 32, 32], [16, 1, 40, 24]];
  const L = 4200;                                 // beyond two 2048-key chunks: decode splits the keys across threads
  for (const [Hq, Hkv, D, Dv] of shapes) {
    test(`Hq=${Hq} Hkv=${Hkv} D=${D} Dv=${Dv}`, () => {
      const q = F.randn([1, Hq, L, D], { seed: 1 }), k = F.randn([1, Hkv, L, D], { seed: 2 }), v = F.randn([1, Hkv, L, Dv], { seed: 3 });
      const full = sdpa(q, k, v, { causal: true });
      const at = (i0: number, i1: number, threads: number) => {
        addon?.setThreads(threads);
        const qs = q.slice(2, i0, i1), ks = k.slice(2, 0, i1), vs = v.slice(2, 0, i1);
        return sdpa(qs.contiguous(), ks.contiguous(), vs.contiguous(), { causal: true, qOffset: i0 }).contiguous();
      };
      for (const threads of addon ? [1, 2] : [0]) {
        // single decode steps (at chunk and block edges and in between), and a chunk of prefill from the middle
        for (const [i0, i1] of [[0, 1], [63, 64], [64, 65], [2047, 2048], [2048, 2049], [3000, 3001], [4095, 4096], [4096, 4097], [4199, 4200], [2000, 2100]]) {
          const part = at(i0, i1, threads);
          for (let h = 0; h < Hq; h++) {
            const want = full.slice(1, h, h + 1).slice(2, i0, i1).contiguous().buffer() as Float32Array;
            const got = part.slice(1, h, h + 1).contiguous().buffer() as Float32Array;
            const d = firstDiff(got, want);
            assert.equal(d, -1, `threads ${threads}, rows ${i0}..${i1}, head ${h}: element ${d} differs (${got[d]} vs ${want[d]})`);
          }
        }
      }
      addon?.setThreads(0);
    });
  }
});

test("matmul rowInvariant: each row equals the same row multiplied alone, at any M (B transposed or not)", () => {
  const K = 1200, N = 67, W = F.randn([N, K], { seed: 5 }), Wn = F.randn([K, N], { seed: 6 });
  for (const [what, B] of [["x·Wᵀ", W.T], ["x·W", Wn]] as const) {
    for (const M of [2, 3, 4, 5, 9, 37]) {
      const A = F.randn([M, K], { seed: 10 + M });
      const all = rows(matmul(A, B, { rowInvariant: true }), M);
      for (let i = 0; i < M; i++) {
        const one = matmul(A.slice(0, i, i + 1), B, { rowInvariant: true }).buffer() as Float32Array;
        assert.equal(firstDiff(all[i], one), -1, `${what} M=${M} row ${i}`);
      }
      // and it is the same product (close to the plain one)
      const plain = matmul(A, B).buffer() as Float32Array, inv = matmul(A, B, { rowInvariant: true }).buffer() as Float32Array;
      for (let j = 0; j < plain.length; j++) assert.ok(Math.abs(plain[j] - inv[j]) <= 1e-4 * (1 + Math.abs(plain[j])), `${what} M=${M} element ${j}`);
    }
  }
});

describe("quantized models: cached decode equals a full forward, and a ragged batch equals each sequence alone, bit for bit", () => {
  const L = 150, P = 8;
  let s = 7;
  const ids = Array.from({ length: L }, () => { s = (s * 1103515245 + 12345) >>> 0; return 3 + (s % 280); });
  for (const [arch, type] of [["llama", "q8_0"], ["qwen2", "q4_0"], ["deepseek_v2", "q8_0"], ["deepseek_v3", "q8_0"]] as const) {
    test(`${arch} ${type}`, () => F.noGrad(() => {
      const m = F.randomModel(TINY_CONFIGS[arch], { seed: 21, init: "scaled" }) as CausalLM;
      (m as unknown as { quantize(t: string): void }).quantize(type);
      const full = rows(m.forward(i32(ids)), L);
      const cache = m.newCache({ capacity: 64 });       // grows twice on the way
      const got = rows(m.forward(i32(ids.slice(0, P)), { cache }), P);
      for (let p = P; p < L; p++) got.push(rows(m.forward(i32([ids[p]]), { cache }), 1)[0]);
      for (let p = 0; p < L; p++) assert.equal(firstDiff(got[p], full[p]), -1, `position ${p}`);
      // one ragged step: this sequence's next token beside two other sequences' prefill and decode
      const other1 = m.newCache({ capacity: 32 }), other2 = m.newCache({ capacity: 32 });
      m.forwardRagged([{ ids: [9, 10, 11], cache: other2 }]);
      const r = m.forwardRagged([{ ids: [5, 6, 7, 8, 9], cache: other1 }, { ids: [ids[L - 1]], cache }, { ids: [12], cache: other2 }]);
      const alone = m.newCache();
      m.forward(i32(ids), { cache: alone });
      const want = rows(m.forward(i32([ids[L - 1]]), { cache: alone }), 1)[0];
      assert.equal(firstDiff(rows(r.logits!, 3)[1], want), -1, "ragged step");
    }));
  }
});

test("attention with no keys (Tk = 0) outputs zeros, whatever the scratch held before", () => {
  // a real call first leaves the kernel's per-thread scratch (running state) full of numbers
  const q = F.randn([1, 4, 8, 16], { seed: 7 }), k = F.randn([1, 4, 8, 16], { seed: 8 }), v = F.randn([1, 4, 8, 16], { seed: 9 });
  sdpa(q, k, v, { causal: true });
  const out = sdpa(q, F.zeros([1, 4, 0, 16]), F.zeros([1, 4, 0, 16]), { qOffset: 0 }).buffer() as Float32Array;
  assert.equal(out.length, 4 * 8 * 16);
  assert.ok(out.every((x) => x === 0), "a query that sees no key outputs 0");
});
