// Every native kernel against the reference backend (float64 accumulation) on odd shapes that reach SIMD tails
// and thread splits, on every code path this CPU has (AVX-512, AVX2, scalar).
import assert from "node:assert/strict";
import { describe, test, after } from "node:test";
import * as F from "../src/index.js";
import { getBackend } from "../src/core/backend/index.js";
import { loadNative } from "../src/core/backend/native/binding.js";
import type { Backend, BinaryOp, UnaryOp } from "../src/core/backend/backend.js";
import { bf16ToF32, f16ToF32 } from "../src/core/dtype.js";
import { assertClose, TOL } from "./helpers.js";
import { quantizeWeight } from "../src/quant/qlinear.js";
import { refQuantMatmul, type QuantKind } from "../src/quant/qmatmul.js";

const addon = loadNative();
const ISAS = addon ? (["avx512", "avx2", "scalar"] as const).filter((i) => i === "scalar" || addon.setIsa(i)) : [];
if (addon) after(() => { addon.setIsa(addon.cpuInfo().best); });

const SIZES = [1, 31, 33, 257, 4099];
function rnd(n: number, seed: number, scale = 1, shift = 0): Float32Array {
  const g = new F.Generator(seed);
  return Float32Array.from({ length: n }, () => g.normal() * scale + shift);
}

describe("native thread pool", { skip: addon ? false : "native addon not built" }, () => {
  test("back-to-back calls of every size with workers asleep (spin 0), briefly awake and spinning give exact results", () => {
    const saved = process.env.FATHOM_SPIN_US;
    const inputs = [1, 33, 5000, 70000, 300001].map((n) => [rnd(n, n), rnd(n, n + 1)]);
    try {
      for (const [spin, threads] of [["0", 3], ["20", 2], ["1000", 4]] as const) {
        process.env.FATHOM_SPIN_US = spin;
        addon!.setThreads(threads);                       // the pool restarts and reads FATHOM_SPIN_US
        for (let i = 0; i < 300; i++) {
          const [a, b] = inputs[i % inputs.length], n = a.length, out = new Float32Array(n);
          addon!.binaryF32(0, Int32Array.of(n), a, Int32Array.of(1), b, Int32Array.of(1), out);
          for (let j = 0; j < n; j += 97) assert.equal(out[j], Math.fround(a[j] + b[j]), `spin ${spin} threads ${threads} call ${i} n=${n} [${j}]`);
          assert.equal(out[n - 1], Math.fround(a[n - 1] + b[n - 1]));
        }
      }
    } finally {
      if (saved === undefined) delete process.env.FATHOM_SPIN_US; else process.env.FATHOM_SPIN_US = saved;
      addon!.setThreads(0);
    }
  });
});

describe("native kernel parity with the reference backend", { skip: addon ? false : "native addon not built" }, () => {
  for (const isa of ISAS) {
    describe(`code path ${isa}`, () => {
      let nat: Backend, ref: Backend;
      const use = () => { addon!.setIsa(isa); nat = getBackend("native"); ref = getBackend("ref"); };

      test("unary and unary gradients", () => {
        use();
        const ops: UnaryOp[] = ["neg", "exp", "log", "sqrt", "rsqrt", "silu", "gelu", "geluTanh", "tanh", "sigmoid", "abs", "square", "recip", "relu"];
        for (const op of ops) for (const n of SIZES) {
          const x = ["log", "sqrt", "rsqrt", "recip"].includes(op) ? rnd(n, n, 0.5, 0).map((v) => Math.abs(v) + 0.1) : rnd(n, n, 3);
          const a = new Float32Array(n), b = new Float32Array(n);
          nat.unary(op, x, a); ref.unary(op, x, b);
          assertClose(a, b, { atol: 1e-6, rtol: 2e-6 }, `${op} n=${n}`);
          const dy = rnd(n, n + 1), da = new Float32Array(n), db = new Float32Array(n);
          nat.unaryGrad(op, x, dy, da); ref.unaryGrad(op, x, dy, db);
          assertClose(da, db, { atol: 1e-6, rtol: 1e-5 }, `${op}' n=${n}`);
        }
      });

      test("binary with broadcasting and strided operands", () => {
        use();
        const ops: BinaryOp[] = ["add", "sub", "mul", "div", "maximum", "minimum", "pow"];
        const cases: [number[], number[], number[]][] = [
          // shape, a strides, b strides
          [[4099], [1], [1]], [[3, 257], [257, 1], [0, 1]], [[33, 31], [31, 1], [1, 0]], [[31], [1], [0]],
          [[17, 33], [1, 17], [33, 1]], [[2, 3, 33], [99, 33, 1], [0, 1, 0]], [[1], [1], [1]],
        ];
        for (const op of ops) for (const [shape, sa, sb] of cases) {
          const span = (s: number[]) => 1 + shape.reduce((acc, d, i) => acc + (d - 1) * s[i], 0);
          const a = rnd(span(sa), 3, 1, op === "pow" ? 2 : 0).map((v) => (op === "pow" ? Math.abs(v) + 0.1 : v));
          const b = rnd(span(sb), 4).map((v) => (op === "div" ? v + Math.sign(v) * 0.5 : v));
          const n = shape.reduce((x, y) => x * y, 1);
          const o1 = new Float32Array(n), o2 = new Float32Array(n);
          nat.binary(op, shape, a, 0, sa, b, 0, sb, o1); ref.binary(op, shape, a, 0, sa, b, 0, sb, o2);
          assertClose(o1, o2, { atol: 1e-6, rtol: 2e-6 }, `${op} ${JSON.stringify(shape)}`);
        }
      });

      test("reductions and argmax over each axis", () => {
        use();
        for (const [outer, n, inner] of [[1, 4099, 1], [3, 33, 17], [31, 257, 1], [2, 1, 33], [5, 31, 3]]) {
          const x = rnd(outer * n * inner, n);
          for (const op of ["sum", "max", "min"] as const) {
            const a = new Float32Array(outer * inner), b = new Float32Array(outer * inner);
            nat.reduce(op, outer, n, inner, x, a); ref.reduce(op, outer, n, inner, x, b);
            assertClose(a, b, { atol: 1e-5, rtol: 1e-5 }, `${op} [${outer},${n},${inner}]`);
          }
          const ia = new Int32Array(outer * inner), ib = new Int32Array(outer * inner);
          nat.argmax(outer, n, inner, x, ia); ref.argmax(outer, n, inner, x, ib);
          assert.deepEqual(ia, ib);
        }
      });

      test("softmax and log-softmax, forward and backward", () => {
        use();
        for (const [rows, n] of [[5, 1], [3, 31], [2, 257], [4, 1000], [1, 4099]]) for (const log of [false, true]) {
          const x = rnd(rows * n, n, 4), dy = rnd(rows * n, n + 1);
          const a = new Float32Array(rows * n), b = new Float32Array(rows * n);
          nat.softmax(rows, n, x, a, log); ref.softmax(rows, n, x, b, log);
          assertClose(a, b, { atol: 1e-6, rtol: 1e-5 }, `softmax log=${log} [${rows},${n}]`);
          const da = new Float32Array(rows * n), db = new Float32Array(rows * n);
          nat.softmaxBackward(rows, n, b, dy, da, log); ref.softmaxBackward(rows, n, b, dy, db, log);
          assertClose(da, db, { atol: 1e-5, rtol: 1e-5 }, `softmax' log=${log} [${rows},${n}]`);
        }
      });

      test("f32 GEMM: odd shapes, transposes, leading dims, batches, alpha/beta", () => {
        use();
        const shapes = [[1, 1, 1], [1, 33, 31], [31, 1, 33], [33, 31, 1], [31, 33, 257], [257, 31, 33], [65, 129, 17], [7, 300, 70]];
        let seed = 10;
        for (const [M, N, K] of shapes) for (const transA of [false, true]) for (const transB of [false, true]) {
          const lda = (transA ? M : K) + 3, ldb = (transB ? K : N) + 1, ldc = N + 2, batch = 2;
          const sA = (transA ? K : M) * lda, sB = 0;              // B broadcast over the batch
          const A = rnd(batch * sA, seed++), B = rnd((transB ? N : K) * ldb, seed++);
          const C0 = rnd(batch * M * ldc, seed++);
          const args = { batch, M, N, K, A, strideA: sA, lda, transA, B, strideB: sB, ldb, transB, strideC: M * ldc, ldc, alpha: 0.5, beta: 2, bf16: false };
          const c1 = C0.slice(), c2 = C0.slice();
          nat.gemm({ ...args, C: c1 }); ref.gemm({ ...args, C: c2 });
          assertClose(c1, c2, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 }, `gemm ${M}x${N}x${K} tA=${transA} tB=${transB}`);
          // beta = 0 must not read C (NaN stays out)
          const c3 = new Float32Array(C0.length).fill(NaN), c4 = new Float32Array(C0.length).fill(NaN);
          nat.gemm({ ...args, beta: 0, C: c3 }); ref.gemm({ ...args, beta: 0, C: c4 });
          assertClose(c3, c4, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 }, `gemm beta=0 ${M}x${N}x${K}`);
        }
      });

      test("bf16 GEMM against the reference on the same bf16 inputs", () => {
        use();
        for (const [M, N, K] of [[1, 33, 31], [31, 33, 257], [65, 17, 129], [3, 4096, 64]]) for (const transB of [false, true]) {
          const toBf = (x: Float32Array) => { const y = new Uint16Array(x.length); ref.cast("f32", x, "bf16", y); return y; };
          const A = toBf(rnd(M * K, M)), B = toBf(rnd(K * N, N));
          const args = { batch: 1, M, N, K, A, strideA: 0, lda: K, transA: false, B, strideB: 0, ldb: transB ? K : N, transB,
            strideC: 0, ldc: N, alpha: 1, beta: 0, bf16: true };
          const c1 = new Float32Array(M * N), c2 = new Float32Array(M * N);
          nat.gemm({ ...args, C: c1 }); ref.gemm({ ...args, C: c2 });
          assertClose(c1, c2, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, `gemm bf16 ${M}x${N}x${K}`);
        }
      });

      test("packed weights: x @ op(w) through a packed copy equals matmul", () => {
        use();
        for (const [M, K, N] of [[1, 33, 31], [7, 257, 65], [64, 64, 300], [130, 31, 1]]) for (const dtype of ["f32", "bf16"] as const) {
          const w = F.randn([N, K], { seed: K }).to(dtype), x = F.randn([M, K], { seed: M }).to(dtype);
          const p = F.withBackend("native", () => F.packWeight(w, { transpose: true }));
          const got = F.withBackend("native", () => F.matmulPacked(x, p));
          const want = F.withBackend("ref", () => F.matmul(x.to("f64"), w.to("f64").T));
          assertClose(got, want.to(dtype), dtype === "f32" ? { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 } : TOL.bf16, `packed ${dtype} ${M}x${K}x${N}`);
          const w2 = F.randn([K, N], { seed: N }).to(dtype);
          const p2 = F.withBackend("native", () => F.packWeight(w2));
          assertClose(F.withBackend("native", () => F.matmulPacked(x, p2)), F.withBackend("ref", () => F.matmul(x.to("f64"), w2.to("f64"))).to(dtype),
            dtype === "f32" ? { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 } : TOL.bf16, `packed ${dtype} ${M}x${K}x${N} untransposed`);
        }
      });

      test("casts are bit-exact with the reference (ties, subnormals, inf, NaN)", () => {
        use();
        const special = [0, -0, 1, -1, 65504, 65520, 1e-8, 5.96e-8, 2.98e-8, 6.1e-5, Infinity, -Infinity, NaN, 3.4e38, 1.00390625, 1.01171875, 2049, 2051];
        const x = Float32Array.from([...special, ...rnd(4099, 5, 100)]);
        for (const to of ["bf16", "f16"] as const) {
          const a = new Uint16Array(x.length), b = new Uint16Array(x.length);
          nat.cast("f32", x, to, a); ref.cast("f32", x, to, b);
          assert.deepEqual(a, b, `f32→${to}`);
          const fa = new Float32Array(x.length), fb = new Float32Array(x.length);
          nat.cast(to, b, "f32", fa); ref.cast(to, b, "f32", fb);
          assert.deepEqual(fa, fb, `${to}→f32`);
          const dec = to === "bf16" ? bf16ToF32 : f16ToF32;
          assert.equal(fa[2], dec(b[2]));
        }
      });

      test("strided copies of 1-, 2-, 4- and 8-byte elements", () => {
        use();
        for (const Ctor of [Uint8Array, Uint16Array, Float32Array, Float64Array]) {
          const src = new Ctor(3 * 33 * 17 + 5).map((_, i) => i % 251);
          const shape = [17, 3, 33], strides = [1, 33 * 17, 17];
          const a = new Ctor(17 * 3 * 33), b = new Ctor(17 * 3 * 33);
          nat.copyStrided(shape, src, 5, strides, a); ref.copyStrided(shape, src, 5, strides, b);
          assert.deepEqual(a, b, Ctor.name);
        }
      });

      test("AdamW step", () => {
        use();
        for (const n of [1, 33, 4099]) {
          const p1 = rnd(n, 1), g = rnd(n, 2), m1 = rnd(n, 3, 0.1), v1 = rnd(n, 4).map((v) => v * v * 0.01);
          const p2 = p1.slice(), m2 = m1.slice(), v2 = v1.slice();
          const o = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 7 };
          nat.adamw(p1, g, m1, v1, o); ref.adamw(p2, g, m2, v2, o);
          assertClose(p1, p2, { atol: 1e-6, rtol: 1e-5 }, "p"); assertClose(m1, m2, TOL.f32, "m"); assertClose(v1, v2, TOL.f32, "v");
        }
      });

      // ---- fused ops: the native kernel pair against the reference composition run in float64.
      const f64 = (t: F.Tensor) => t.to("f64").detach().requiresGrad_();
      const leaf = (shape: number[], seed: number, scale = 1) => F.randn(shape, { seed }).mul(scale).detach().requiresGrad_();
      function fusedParity(name: string, inputs: F.Tensor[], run: (...x: F.Tensor[]) => F.Tensor, reference: (...x: F.Tensor[]) => F.Tensor,
        tol = { atol: 2e-5, rtol: 2e-5 }) {
        const out = F.withBackend("native", () => run(...inputs));
        const refIn = inputs.map(f64);
        const want = F.withBackend("ref", () => reference(...refIn));
        assertClose(out, want, tol, `${name} forward`);
        const w = F.randn(out.shape as number[], { seed: 5 });
        F.withBackend("native", () => out.mul(w).sum().backward());
        F.withBackend("ref", () => want.mul(w.to("f64")).sum().backward());
        inputs.forEach((x, i) => { if (x.requiresGrad) assertClose(x.grad!, refIn[i].grad!, tol, `${name} grad ${i}`); });
      }

      test("fused rmsNorm", () => {
        use();
        for (const [rows, n] of [[1, 1], [3, 31], [5, 257], [2, 4099]]) {
          fusedParity(`rmsNorm ${rows}x${n}`, [leaf([rows, n], n), leaf([n], n + 1)], (x, w) => F.rmsNorm(x, w, 1e-6),
            (x, w) => F.rmsNormReference(x, w, 1e-6));
        }
      });

      test("fused rope (half-split, interleaved, partial)", () => {
        use();
        for (const [D, rot, interleaved] of [[8, 8, false], [8, 8, true], [66, 34, false], [130, 64, true]] as [number, number, boolean][]) {
          const P = 40, half = rot / 2;
          const ang = Array.from({ length: P * half }, (_, i) => Math.floor(i / half) * Math.pow(10000, -(i % half) / half));
          const cos = F.tensor(ang.map(Math.cos), { shape: [P, half] }), sin = F.tensor(ang.map(Math.sin), { shape: [P, half] });
          const pos = F.arange(7, 7 + 33).reshape(1, 33, 1);              // [B, T, H, D] layout, offset 7
          fusedParity(`rope D=${D} rot=${rot} il=${interleaved}`, [leaf([1, 33, 3, D], D)],
            (x) => F.rope(x, cos, sin, pos, { rotDim: rot, interleaved }),
            (x) => F.ropeReference(x, cos.to("f64"), sin.to("f64"), pos, { rotDim: rot, interleaved }));
        }
      });

      test("fused rope: positions broadcast from strided views match fully materialized positions", () => {
        use();
        const P = 50, half = 4, B = 2, H = 3, T = 5, D = 8;
        const ang = Array.from({ length: P * half }, (_, i) => Math.floor(i / half) * Math.pow(10000, -(i % half) / half));
        const cos = F.tensor(ang.map(Math.cos), { shape: [P, half] }), sin = F.tensor(ang.map(Math.sin), { shape: [P, half] });
        const x = F.randn([B, H, T, D], { seed: 9 });
        const base = F.tensor(Array.from({ length: 3 * 2 * T }, (_, i) => (i * 7) % P), { shape: [3, 2, T], dtype: "i32" });
        for (const pos of [base.narrow(0, 1, 2).narrow(1, 1, 1), base.narrow(1, 0, 1).narrow(0, 0, 1), base.permute(1, 0, 2).narrow(1, 2, 1)]) {
          // [B or 1, 1, T] view → materialize [B, H, T] with plain indexing, the independent layout.
          const full: number[] = [], vals = pos.contiguous().toArray();
          for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) full.push(vals[(pos.shape[0] === 1 ? 0 : b) * T + t]);
          const want = F.rope(x, cos, sin, F.tensor(full, { shape: [B, H, T], dtype: "i32" }));
          assertClose(F.withBackend("native", () => F.rope(x, cos, sin, pos)), want, TOL.f32, `rope positions ${JSON.stringify(pos.shape)} strides ${JSON.stringify(pos.strides)}`);
          assertClose(F.withBackend("ref", () => F.ropeReference(x, cos, sin, pos)), want, TOL.f32, "rope reference, strided positions");
        }
        assert.throws(() => F.rope(x, cos, sin, F.full([3, 1, T], 0, "i32")), /broadcast/);
      });

      test("fused swiglu", () => {
        use();
        for (const n of [1, 33, 4099]) fusedParity(`swiglu ${n}`, [leaf([n], n, 3), leaf([n], n + 1)], F.swiglu, F.swigluReference);
      });

      test("fused attention: causal, GQA, offsets, boolean and additive masks, empty rows", () => {
        use();
        const cases: [number, number, number, number, number, number, number, boolean, string][] = [
          // B, Hq, Hkv, Tq, Tk, D, Dv, causal, mask
          [1, 1, 1, 1, 1, 1, 1, false, "none"], [2, 4, 2, 17, 17, 7, 5, true, "none"], [1, 4, 1, 3, 33, 64, 64, true, "none"],
          [1, 2, 2, 33, 65, 65, 31, false, "bool"], [2, 2, 1, 31, 31, 32, 32, true, "add"], [1, 8, 2, 1, 257, 128, 128, true, "none"],
          [1, 2, 1, 100, 100, 16, 16, true, "bool"],
        ];
        for (const [B, Hq, Hkv, Tq, Tk, D, Dv, causal, mk] of cases) {
          let mask: F.Tensor | null = null;
          if (mk === "bool") mask = F.rand([B, 1, Tq, Tk], { seed: Tq }).gt(0.3);   // some rows may end up empty
          if (mk === "add") mask = F.randn([Tq, Tk], { seed: Tk }).mul(2);
          const qOffset = Tk - Tq;
          fusedParity(`sdpa B${B} H${Hq}/${Hkv} T${Tq}/${Tk} D${D}/${Dv} causal=${causal} mask=${mk}`,
            [leaf([B, Hq, Tq, D], 1), leaf([B, Hkv, Tk, D], 2), leaf([B, Hkv, Tk, Dv], 3)],
            (q, k, v) => F.sdpa(q, k, v, { causal, mask, qOffset }),
            (q, k, v) => F.sdpaReference(q, k, v, { causal, mask: mask && (mask.dtype === "bool" ? mask : mask.to("f64")), qOffset }),
            { atol: 5e-5, rtol: 5e-5 });
        }
      });

      test("fused attention on strided k/v views (cache narrowed along T, permuted, expanded), read in place", () => {
        use();
        const cases: [number, number, number, number, number, number, number, number, boolean][] = [
          // B, Hq, Hkv, Tq, Tk, cap, D, Dv, causal
          [1, 32, 4, 1, 37, 64, 64, 64, true], [2, 4, 2, 3, 70, 101, 7, 5, true], [1, 8, 1, 1, 300, 333, 33, 31, true],
          [2, 3, 3, 17, 17, 20, 16, 16, true], [1, 2, 1, 5, 129, 130, 65, 17, false], [1, 16, 1, 1, 600, 640, 72, 64, true],
        ];
        for (const [B, Hq, Hkv, Tq, Tk, cap, D, Dv, causal] of cases) {
          const start = cap - Tk;                       // narrow at an offset: the view starts inside the buffer
          const name = `sdpa strided B${B} H${Hq}/${Hkv} T${Tq}/${Tk} cap${cap} D${D}/${Dv}`;
          // k: [B, Hkv, cap, D] narrowed along T; v: [B, cap, Hkv, Dv] narrowed and permuted to [B, Hkv, T, Dv].
          fusedParity(name, [leaf([B, Hq, Tq, D], 1), leaf([B, Hkv, cap, D], 2), leaf([B, cap, Hkv, Dv], 3)],
            (q, kc, vc) => F.sdpa(q, kc.narrow(2, start, Tk), vc.narrow(1, start, Tk).permute(0, 2, 1, 3), { causal }),
            (q, kc, vc) => F.sdpaReference(q, kc.narrow(2, start, Tk), vc.narrow(1, start, Tk).permute(0, 2, 1, 3), { causal }),
            { atol: 5e-5, rtol: 5e-5 });
          // The addon reads the views in place: same kernel, same order as on contiguous copies, so equal bit for bit.
          const q = F.randn([B, Hq, Tq, D], { seed: 4 }), kc = F.randn([B, Hkv, cap, D], { seed: 5 }), vc = F.randn([B, cap, Hkv, Dv], { seed: 6 });
          const k = kc.narrow(2, start, Tk), v = vc.narrow(1, start, Tk).permute(0, 2, 1, 3);
          const run = (kd: Float32Array, vd: Float32Array, ks: Float64Array | null, vs: Float64Array | null) => {
            const out = new Float32Array(B * Hq * Tq * Dv), lse = new Float32Array(B * Hq * Tq);
            nat.attention!({ B, Hq, Hkv, Tq, Tk, D, Dv, q: q.buffer() as Float32Array, k: kd, v: vd, out, lse, scale: 1 / Math.sqrt(D), causal,
              qOffset: Tk - Tq, mask: null, maskStrides: null, kStrides: ks, vStrides: vs });
            return [out, lse];
          };
          const [o1, l1] = run((kc.buffer() as Float32Array).subarray(k.offset), (vc.buffer() as Float32Array).subarray(v.offset),
            Float64Array.from(k.strides.slice(0, 3)), Float64Array.from(v.strides.slice(0, 3)));
          const [o2, l2] = run(k.buffer() as Float32Array, v.buffer() as Float32Array, null, null);
          assert.deepEqual(o1, o2, `${name}: strided out`);
          assert.deepEqual(l1, l2, `${name}: strided lse`);
          // An expanded (stride 0) batch of k and v.
          if (B === 2) {
            const k1 = kc.narrow(0, 0, 1).narrow(2, start, Tk).expand(B, Hkv, Tk, D), v1 = vc.narrow(0, 1, 1).narrow(1, start, Tk).permute(0, 2, 1, 3).expand(B, Hkv, Tk, Dv);
            assertClose(F.withBackend("native", () => F.sdpa(q, k1, v1, { causal })),
              F.withBackend("ref", () => F.sdpaReference(q.to("f64"), k1.to("f64"), v1.to("f64"), { causal })), { atol: 5e-5, rtol: 5e-5 }, `${name} expanded`);
          }
        }
        // MLA's absorbed layout: one [B, 1, cap, r + dr] buffer; k = all of a row, v = its first r values (row stride r + dr).
        for (const [Hq, Tk, cap, Dk, Dv] of [[16, 70, 80, 40, 32], [5, 200, 256, 72, 64]]) {
          fusedParity(`sdpa MLA-style H${Hq} Tk${Tk} ${Dk}/${Dv}`, [leaf([1, Hq, 1, Dk], 7), leaf([1, 1, cap, Dk], 8)],
            (q, c) => F.sdpa(q, c.narrow(2, 0, Tk), c.narrow(2, 0, Tk).narrow(3, 0, Dv), { causal: true, scale: 0.2 }),
            (q, c) => F.sdpaReference(q, c.narrow(2, 0, Tk), c.narrow(2, 0, Tk).narrow(3, 0, Dv), { causal: true, scale: 0.2 }),
            { atol: 5e-5, rtol: 5e-5 });
        }
        // Strides that reach past the array are refused.
        const kd = new Float32Array(2 * 10 * 8);
        assert.throws(() => nat.attention!({ B: 1, Hq: 2, Hkv: 2, Tq: 1, Tk: 10, D: 8, Dv: 8, q: new Float32Array(16), k: kd, v: kd,
          out: new Float32Array(16), lse: null, scale: 1, causal: false, qOffset: 0, mask: null, maskStrides: null,
          kStrides: Float64Array.of(0, 12 * 8, 8), vStrides: null }), /kStrides/);
      });

      test("quantized products: every type, M = 1..17 (row tiles and their tails), odd N and K, thread splits", () => {
        use();
        if (typeof addon!.quantMatmul !== "function") return;
        // Against the scalar path of the same packed matrix (the same activation quantization and integer block sums:
        // only f32 rounding of the per-block scaling may differ) and, loosely, against the reference specification.
        const shapes: Record<QuantKind, [number, number][]> = {
          q8_0: [[1, 96], [17, 288], [50, 8224]], q4_0: [[33, 96], [16, 288], [50, 8224]],
          q4_K: [[1, 256], [33, 768], [50, 8192]], int8: [[17, 509], [33, 96], [50, 8200]],
        };
        const relErr = (a: Float32Array, b: Float32Array) => {
          let mx = 0, ss = 0;
          for (let i = 0; i < a.length; i++) { mx = Math.max(mx, Math.abs(a[i] - b[i])); ss += b[i] * b[i]; }
          return mx / Math.sqrt(ss / b.length || 1);
        };
        try {
          for (const threads of [1, 3]) {
            addon!.setThreads(threads);
            for (const type of ["q8_0", "q4_0", "q4_K", "int8"] as const) for (const [N, K] of shapes[type]) {
              const q = quantizeWeight(F.randn([N, K], { seed: N + K }).mul(0.05), type), wb = q.weight.buffer();
              const data = new Uint8Array(wb.buffer, wb.byteOffset, wb.byteLength), scales = q.scale ? (q.scale.buffer() as Float32Array) : null;
              const packed = nat.quantPack!(type, N, K, data, scales);
              for (const M of K > 1000 ? [1, 2, 8, 9, 17] : [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 17]) {
                const x = rnd(M * K, M * 7 + K), got = new Float32Array(M * N), scalar = new Float32Array(M * N), spec = new Float32Array(M * N);
                nat.quantMatmul!(M, x, packed, got);
                addon!.setIsa("scalar");
                getBackend("native").quantMatmul!(M, x, packed, scalar);
                addon!.setIsa(isa);
                const e = relErr(got, scalar);
                assert.ok(e < 2e-6, `${type} ${isa} threads=${threads} M=${M} N=${N} K=${K}: ${e} vs the scalar path`);
                refQuantMatmul(M, x, { type, N, K, data, scales }, spec);
                const es = relErr(got, spec);
                assert.ok(es < 2e-2, `${type} ${isa} M=${M} N=${N} K=${K}: ${es} vs the reference`);
              }
            }
          }
        } finally { addon!.setThreads(0); addon!.setIsa(isa); }
      });

      test("fused attention at decode: keys split across threads and merged (every thread count)", () => {
        use();
        try {
          for (const threads of [1, 2, 3, 5]) {
            addon!.setThreads(threads);
            for (const [Hq, Hkv, Tk, D] of [[4, 1, 1000, 40], [8, 2, 65, 64], [2, 1, 129, 17], [6, 1, 7, 8]] as const) {
              fusedParity(`sdpa decode threads=${threads} H${Hq}/${Hkv} Tk${Tk} D${D}`,
                [leaf([1, Hq, 1, D], 1), leaf([1, Hkv, Tk, D], 2), leaf([1, Hkv, Tk, D], 3)],
                (q, k, v) => F.sdpa(q, k, v, { causal: true }), (q, k, v) => F.sdpaReference(q, k, v, { causal: true }),
                { atol: 5e-5, rtol: 5e-5 });
              // A boolean mask that empties some rows' splits (and one whole row).
              const mask = F.rand([1, Hq, 1, Tk], { seed: Tk }).gt(0.97);
              fusedParity(`sdpa decode masked threads=${threads} H${Hq}/${Hkv} Tk${Tk}`,
                [leaf([1, Hq, 1, D], 4), leaf([1, Hkv, Tk, D], 5), leaf([1, Hkv, Tk, D], 6)],
                (q, k, v) => F.sdpa(q, k, v, { mask }), (q, k, v) => F.sdpaReference(q, k, v, { mask }), { atol: 5e-5, rtol: 5e-5 });
            }
          }
        } finally { addon!.setThreads(0); }
      });
    });
  }
});
