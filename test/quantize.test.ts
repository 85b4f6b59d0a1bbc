// Quantization end to end: model.quantize / quantizeModel, quantized GGUF export and zero-copy load, llama.cpp
// (node-llama-cpp 3.21.1) generating the same greedy tokens as Fathom on the same quantized file, quantized products
// against dequantize-then-multiply, fallbacks, the quantize command and the KV-cache dtypes.
import assert from "node:assert/strict";
import { describe, test, before, after } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as F from "../src/index.js";
import { exportGGUF, loadGGUF } from "../src/io/gguf_model.js";
import { QEmbedding, QLinear, dequantizeWeight, quantizeModel, quantizeWeight } from "../src/quant/qlinear.js";
import { quantizeActs, refQuantMatmul, type QuantKind } from "../src/quant/qmatmul.js";
import { getBackend, withBackend } from "../src/core/backend/index.js";
import { forwardMany } from "../src/nn/layers.js";
import { loadNative } from "../src/core/backend/native/binding.js";
import { TINY_CONFIGS, tinyTokenizer } from "./fixtures.js";
import { llamaCppAvailable, llamaCppRun } from "./llama_cpp.js";

let dir = "";
before(() => { dir = mkdtempSync(join(tmpdir(), "fathom-quant-")); });
after(() => { rmSync(dir, { recursive: true, force: true }); });
const run = (...args: string[]) => spawnSync(process.execPath, ["--import", "tsx", "src/cli/run.ts", ...args], { encoding: "utf8" });

// Rows of 256 so that q4_K really is q4_K (MLA's narrow tensors still fall back, which the test checks).
const WIDE = {
  llama: { ...TINY_CONFIGS.llama, hidden_size: 256, intermediate_size: 512 },
  qwen2: { ...TINY_CONFIGS.qwen2, hidden_size: 256, intermediate_size: 512 },
  deepseek_v3: { ...TINY_CONFIGS.deepseek_v3, hidden_size: 256, intermediate_size: 256, moe_intermediate_size: 256, q_lora_rank: 256, kv_lora_rank: 256 },
};
const PROMPT = [286, 72, 101, 108, 108, 111, 5, 17];
const GGUF_TYPES = ["q8_0", "q4_0", "q4_K"] as const;
// llama.cpp quantizes activations (q8_0 blocks; q8_K for q4_K) where we multiply f32 activations by dequantized weights.
// Agreement is ~3e-6 unless one activation lands on a rounding tie (ggml's SIMD quantizer rounds half to even).
// (A kernel that keeps the q8_0 activation block scale in f32 instead of ggml's f16 lands at ~6e-2 and fails here.)
// Without the native kernels the f64 reference sums differ from ggml's f32 block sums, which can move one activation
// across a rounding boundary (seen: 3.7e-2 once); the greedy tokens must still agree.
const KERNELS = getBackend().name === "native" && typeof (loadNative() as { quantMatmul?: unknown } | null)?.quantMatmul === "function";
const TOL: Record<string, number> = KERNELS ? { llama: 1e-3, qwen2: 1e-3, deepseek_v3: 1e-3 } : { llama: 0.1, qwen2: 0.1, deepseek_v3: 0.1 };

for (const [arch, cfg] of Object.entries(WIDE)) {
  describe(`quantized GGUF ${arch}`, () => {
    const model = F.randomModel(cfg, { seed: 21, init: "scaled" });
    const tok = tinyTokenizer(288);
    for (const type of GGUF_TYPES) {
      // Near-ties: an activation x with x·id a few ulps from k + ½ rounds by whatever float noise came before it (our
      // sums and llama.cpp's differ in order, ~1e-7), and one such flip moves log-probabilities by 1e-2..1e-1 from
      // there on. The rule itself is exact (see the planted-ties test below). With this seed: without the native kernels
      // (plain-TS f64 sums), llama/q4_0 part at position 11 (3.7e-2). qwen2 q8_0 (kernels): at position 3 of the prompt,
      // layer-0 o_proj's input has x·id = 53.4999886 (3 ulps from the tie; llama.cpp's attention sums in another order)
      // and layer-1 down_proj's one exactly on a tie: 1.1e-2 — the tokens still agree. Decoding itself adds no such
      // noise: our kernels are batch-invariant as llama.cpp's are (test/batch_invariance.test.ts), so a cached decode step
      // gives the bits of a full forward (deepseek q8_0 used to part at token 19 when decode and prefill differed).
      const noKernels = !KERNELS && arch === "llama" && type === "q4_0" ? "one rounding-boundary activation without the native kernels" : undefined;
      const lpTodo = noKernels ?? (KERNELS && type === "q8_0" && arch === "qwen2" ? "activations within ulps of a rounding tie at position 3 (float-order noise)" : undefined);
      const tokTodo = noKernels;
      test(`${type}: Fathom and llama.cpp generate the same 32 greedy tokens from the file`, { timeout: 120_000 }, async (t) => {
        const path = join(dir, `${arch}-${type}.gguf`);
        const fallbacks: string[] = [];
        exportGGUF(model, path, { dtype: type, tokenizer: { json: tok.tokenizer, config: tok.config, pre: "gpt-2" }, onFallback: (n, to) => fallbacks.push(`${n}→${to}`) });
        const f = F.GGUFFile.open(path);
        const types = new Map(f.tensors.map((x) => [x.name, x.typeName]));
        assert.equal(types.get("blk.0.attn_norm.weight"), "F32");
        assert.equal(types.get("output_norm.weight"), "F32");
        assert.equal(types.get("token_embd.weight"), type.toUpperCase());
        assert.equal(types.get("blk.0.ffn_up.weight") ?? types.get("blk.1.ffn_up_exps.weight"), type.toUpperCase());
        if (arch === "deepseek_v3") {
          assert.equal(types.get("blk.1.ffn_gate_inp.weight"), "F32");
          assert.equal(types.get("blk.1.exp_probs_b.bias"), "F32");
          // attn_k_b rows are qk_nope_head_dim = 16 long: F16 whatever the type; o_proj rows of 64 leave q4_K for q8_0
          assert.equal(types.get("blk.0.attn_k_b.weight"), "F16");
          assert.ok(fallbacks.includes("blk.0.attn_k_b.weight→f16"), fallbacks.join(", "));
          if (type === "q4_K") assert.equal(types.get("blk.0.attn_output.weight"), "Q8_0");
        } else assert.deepEqual(fallbacks, []);
        const back = loadGGUF(path);
        // kept quantized, viewing the mapped file
        assert.ok(back.lm_head instanceof QLinear && back.model.embed_tokens instanceof QEmbedding);
        const ours = back.generateGreedy(PROMPT, 32).tokenIds;
        if (!(await llamaCppAvailable())) { t.skip("node-llama-cpp not installed"); return; }
        const [ref] = await llamaCppRun(path, [PROMPT], 32);
        const lp = F.noGrad(() => back.forward(F.tensor([PROMPT], { dtype: "i32" }))).logSoftmax(-1).toArray();
        const V = 288;
        let worst = 0;
        ref.logprobs.forEach((m, pos) => { for (const [id, l] of m) if (l > -30) worst = Math.max(worst, Math.abs(l - lp[pos * V + id])); });
        t.diagnostic(`${arch} ${type}: max |Δ log p| vs llama.cpp = ${worst.toExponential(2)} (llama.cpp quantizes activations to q8_0/q8_K)`);
        const same = ours.findIndex((v, i) => v !== ref.greedy[i]);
        t.diagnostic(`${arch} ${type}: greedy tokens agree ${same < 0 ? "for all 32" : `until position ${same}`}`);
        await t.test(`log-probabilities within ${TOL[arch]}`, { todo: lpTodo }, () => assert.ok(worst < TOL[arch], `max |Δ log p| = ${worst}`));
        await t.test("the same 32 greedy tokens", { todo: tokTodo }, () => assert.deepEqual(ours, ref.greedy));
      });
    }
  });
}

// The activation rule, checked where it decides: embedding rows (exact in the file's type) and layer-0 norm weights
// planted so that the normed activations x of the first products sit on rounding ties of x·id. There is no float noise
// before those products (the embedding is exact, RMSNorm is ggml's), so the two ways ggml can quantize a q8_0 block
// give different integers for some of them, and only the one llama.cpp uses agrees: id = 127/amax (quantize_row_q8_0,
// and the x86 4-row quantize_mat_q8_0_4x8 of repacked q4_0 weights), not the generic 1/d. (With 1/d for whole groups
// of 4 rows: 6e-2 for q8_0, 5e-2 for q4_0.)
describe("q8_0 activation quantization on planted rounding ties", () => {
  for (const type of ["q8_0", "q4_0"] as const) {
    test(`${type}: llama.cpp and Fathom agree`, { timeout: 120_000 }, async (t) => {
      const D = 256, fr = Math.fround, QMAX = type === "q8_0" ? 127 : 8;
      let seed = 12345;
      const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed / 2 ** 32; };
      // per block of 32: one value at ±QMAX·d (the block's max), the others k·d with weights that move them to (j + ½)/127 of it
      const Q = Int32Array.from({ length: D }, (_, i) => (i % 32 === 0 ? -QMAX : (1 + Math.floor(rnd() * (QMAX - 1))) * (rnd() < 0.5 ? -1 : 1)));
      const W = Float32Array.from({ length: D }, (_, i) => (i % 32 === 0 ? 1 : fr(((Math.floor(rnd() * 240) - 120) + 0.5) * QMAX / (127 * Q[i]))));
      const normed = (x: Float32Array) => {                                  // ggml's RMSNorm, then the norm weight
        let ss = 0;
        for (const v of x) ss += fr(v * v);
        const r = fr(1 / fr(Math.sqrt(fr(fr(ss / D) + 1e-6))));
        return x.map((v, i) => fr(fr(v * r) * W[i]));
      };
      const nearest = (v: number) => { const f = Math.floor(v), d = v - f; return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f; };
      const split = (x: Float32Array) => {                                   // values the two rules quantize differently
        let n = 0;
        for (let b = 0; b < D; b += 32) {
          let amax = 0;
          for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b + j]));
          const row = fr(127 / amax), mat = fr(1 / fr(amax / 127));
          for (let j = 0; j < 32; j++) if (nearest(fr(x[b + j] * row)) !== nearest(fr(x[b + j] * mat))) n++;
        }
        return n;
      };
      const m = F.randomModel(WIDE.llama, { seed: 21, init: "scaled" });
      const emb = (m.model.embed_tokens as unknown as { weight: F.Tensor }).weight.buffer() as Float32Array;
      let planted = 0;
      for (const id of new Set(PROMPT)) {
        const x = new Float32Array(D);
        for (let b = 0; b < D; b += 32) {
          const d = F.Tensor.from(new Float32Array([0.001 + rnd() * 0.01]), "f32", [1]).to("f16").float().item();
          for (let j = 0; j < 32; j++) x[b + j] = d * Q[b + j];
        }
        emb.set(x, id * D);
        planted += split(normed(x));
      }
      ((m.layers[0] as unknown as { input_layernorm: { weight: F.Tensor } }).input_layernorm.weight.buffer() as Float32Array).set(W);
      assert.ok(planted >= 50, `only ${planted} planted activations tell the rules apart`);
      const path = join(dir, `ties-${type}.gguf`);
      exportGGUF(m, path, { dtype: type, tokenizer: { json: tinyTokenizer(288).tokenizer, config: tinyTokenizer(288).config, pre: "gpt-2" } });
      const back = loadGGUF(path);
      assert.deepEqual((back.model.embed_tokens as QEmbedding).forward(F.tensor([PROMPT], { dtype: "i32" })).toArray().slice(0, D),
        Array.from(emb.subarray(PROMPT[0] * D, PROMPT[0] * D + D)));  // the planted rows are exact in the file
      if (!(await llamaCppAvailable())) { t.skip("node-llama-cpp not installed"); return; }
      const [ref] = await llamaCppRun(path, [PROMPT], 1);
      const lp = F.noGrad(() => back.forward(F.tensor([PROMPT], { dtype: "i32" }))).logSoftmax(-1).toArray();
      let worst = 0;
      ref.logprobs.forEach((mm, pos) => { for (const [id, l] of mm) if (l > -30) worst = Math.max(worst, Math.abs(l - lp[pos * 288 + id])); });
      t.diagnostic(`${type}: ${planted} planted ties; max |Δ log p| vs llama.cpp = ${worst.toExponential(2)}`);
      assert.ok(worst < TOL.llama, `max |Δ log p| = ${worst}`);
    });
  }
});

test("model.quantize swaps Linear for QLinear in place; in memory and from the file agree exactly", () => {
  const m = F.randomModel(WIDE.llama, { seed: 3, init: "scaled" });
  assert.equal(m.quantize("q4_K"), m);
  assert.ok(m.layers[0].mlp instanceof F.Module);
  assert.ok((m.layers[0].mlp as unknown as { up_proj: unknown }).up_proj instanceof QLinear);
  const ids = F.tensor([PROMPT], { dtype: "i32" });
  const a = F.noGrad(() => m.forward(ids)).toArray();
  const p = join(dir, "mem-q4_K.gguf");
  exportGGUF(m, p, { dtype: "q4_K" });
  const b = F.noGrad(() => loadGGUF(p).forward(ids)).toArray();
  assert.deepEqual(b, a);
});

test("int8: per-row weights + scales round-trip through GGUF (I8 + .scale) and stay close to f32", () => {
  const ids = F.tensor([PROMPT], { dtype: "i32" });
  const m = F.randomModel(TINY_CONFIGS.llama, { seed: 4, init: "scaled" });
  const f32 = F.noGrad(() => m.forward(ids)).logSoftmax(-1).toArray();
  const rep = quantizeModel(m, "int8");
  assert.deepEqual(rep.fallbacks, []);
  const q = F.noGrad(() => m.forward(ids)).logSoftmax(-1).toArray();
  const dq = Math.max(...q.map((v, i) => Math.abs(v - f32[i])));
  assert.ok(dq < 0.2 && dq > 0, `int8 vs f32 max |Δ log p| = ${dq}`);
  const p = join(dir, "llama-int8.gguf");
  exportGGUF(m, p, { dtype: "int8" });
  assert.deepEqual(F.noGrad(() => loadGGUF(p).forward(ids)).logSoftmax(-1).toArray(), q);
  // MoE experts stacked as I8 [E, N, K] with scales [E, N]
  const ds = F.randomModel(TINY_CONFIGS.deepseek_v3, { seed: 4, init: "scaled" }).quantize("int8");
  const pd = join(dir, "ds-int8.gguf");
  exportGGUF(ds, pd, { dtype: "int8" });
  const f = F.GGUFFile.open(pd);
  assert.equal(f.tensorInfo("blk.1.ffn_up_exps.weight").typeName, "I8");
  assert.deepEqual(f.tensorInfo("blk.1.ffn_up_exps.scale").shape, [8, 32]);
  assert.equal(loadGGUF(pd).generateGreedy(PROMPT, 4).tokenIds.length, 4);
});

// Budgets on max |Δ| / rms(y) against dequantize-then-multiply in f64. Kernels that quantize activations (q8_0 blocks,
// q8_K, per-token int8, as ggml does) need the room; the reference and the chunked fallback are exact up to f32 sums.
const BUDGET: Record<QuantKind, number> = { q8_0: 2e-2, q4_0: 2e-2, q4_K: 4e-2, int8: 3e-2 };
test("quantized products vs dequantize-then-multiply, per type budget, on every backend", () => {
  const [M, N, K] = [5, 48, 512];
  const w = F.randn([N, K], { seed: 5 }).mul(0.05), x = F.randn([M, K], { seed: 6 });
  for (const type of ["q8_0", "q4_0", "q4_K", "int8"] as const) {
    const q = quantizeWeight(w, type);
    const ref = x.matmul(dequantizeWeight(q).T).toArray();
    const rms = Math.sqrt(ref.reduce((a, v) => a + v * v, 0) / ref.length);
    for (const be of ["ref", "native"] as const) {
      if (be === "native" && getBackend().name !== "native") continue;
      const y = withBackend(be, () => new QLinear(K, N, q).forward(x)).toArray();
      const err = Math.max(...y.map((v, i) => Math.abs(v - ref[i]))) / rms;
      assert.ok(err <= BUDGET[type], `${type} on ${be}: ${err}`);
      // the reference is exactly x̂ @ Ŵᵀ with the activations quantized as ggml does
      const exact = new F.Tensor(quantizeActs(type, M, K, x.buffer() as Float32Array), "f32", [M, K]).matmul(dequantizeWeight(q).T).toArray();
      if (be === "ref") assert.ok(Math.max(...y.map((v, i) => Math.abs(v - exact[i]))) / rms < 1e-5, `${type} reference ≠ x̂ @ Ŵᵀ`);
    }
    // the int8 reference: integer sums of per-token int8 activations
    const out = new Float32Array(M * N), data = q.weight.buffer();
    refQuantMatmul(M, x.buffer() as Float32Array, { type, N, K, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), scales: q.scale ? (q.scale.buffer() as Float32Array) : null }, out);
    assert.ok(Math.max(...[...out].map((v, i) => Math.abs(v - ref[i]))) / rms <= BUDGET[type]);
  }
});

// q, k and v (or gate and up) in one call: the input quantized once, one parallel pass over every weight's rows.
test("forwardMany: quantized layers of one type run in one call and give each layer's own output bit for bit", () => {
  const K = 256, x1 = F.randn([1, K], { seed: 11 }), x37 = F.randn([37, K], { seed: 12 });
  for (const type of ["q8_0", "q4_0", "q4_K", "int8"] as const) {
    const layers = [40, 16, 16].map((N, i) => new QLinear(K, N, quantizeWeight(F.randn([N, K], { seed: 20 + i }).mul(0.05), type)));
    for (const x of [x1, x37]) {
      const many = forwardMany(layers, x), alone = layers.map((l) => l.forward(x));
      many.forEach((y, i) => assert.deepEqual(y.buffer(), alone[i].buffer(), `${type} M=${x.shape[0]} layer ${i}`));
    }
  }
  // one input per weight (MLA's per-head k_b / v_b): each output as its own layer's forward on its own input
  for (const type of ["q8_0", "q4_K"] as const) {
    const layers = [24, 40, 16].map((N, i) => new QLinear(K, N, quantizeWeight(F.randn([N, K], { seed: 40 + i }).mul(0.05), type)));
    for (const M of [1, 5]) {
      const xs = layers.map((_, i) => F.randn([M, K], { seed: 50 + i + M }));
      const outs = layers.map((l) => new Float32Array(M * l.outFeatures));
      QLinear.projectEach(layers, M, xs.map((x) => x.buffer() as Float32Array), outs);
      outs.forEach((o, i) => assert.deepEqual(o, layers[i].forward(xs[i]).buffer(), `${type} M=${M} weight ${i}, own input`));
    }
  }
  // mixed types fall back to one call each; native argument checks name the culprit
  const a = new QLinear(K, 16, quantizeWeight(F.randn([16, K], { seed: 30 }), "q8_0")), b = new QLinear(K, 16, quantizeWeight(F.randn([16, K], { seed: 31 }), "q4_0"));
  const [ya, yb] = forwardMany([a, b], x1);
  assert.deepEqual(ya.buffer(), a.forward(x1).buffer());
  assert.deepEqual(yb.buffer(), b.forward(x1).buffer());
  const addon = KERNELS ? (loadNative() as unknown as { quantMatmulMany: (...a: unknown[]) => void; quantPack: (...a: unknown[]) => object }) : null;
  if (addon) {
    const qa = quantizeWeight(F.randn([16, K], { seed: 30 }), "q8_0"), qb = quantizeWeight(F.randn([16, K], { seed: 31 }), "q4_0");
    const pa = addon.quantPack("q8_0", 16, K, qa.weight.buffer(), null), pb = addon.quantPack("q4_0", 16, K, qb.weight.buffer(), null);
    const xs = x1.buffer() as Float32Array;
    assert.throws(() => addon.quantMatmulMany(1, xs, [pa, pb], [new Float32Array(16), new Float32Array(16)]), /packed\[1\] differs from packed\[0\]/);
    assert.throws(() => addon.quantMatmulMany(1, xs, [pa, pa], [new Float32Array(16), new Float32Array(15)]), /out\[1\] has 15 elements, needs 16/);
    assert.throws(() => addon.quantMatmulMany(1, xs, [pa, {}], [new Float32Array(16), new Float32Array(16)]), /packed\[1\] must be a packed quantized matrix/);
  }
});

// The contract loadGGUF relies on to read every tensor into one buffer: a backend whose quantPackCopies is true keeps
// no reference to the bytes it packed; one that keeps them (the reference backend) says so.
test("quantPackCopies: a copying backend's packed weight does not see later writes to its input", () => {
  const [M, N, K] = [3, 16, 64];
  const q = quantizeWeight(F.randn([N, K], { seed: 8 }).mul(0.05), "q4_0"), x = F.randn([M, K], { seed: 9 }).buffer() as Float32Array;
  const src = q.weight.buffer() as Uint8Array;
  for (const name of ["ref", "native"] as const) {
    if (name === "native" && getBackend().name !== "native") continue;
    withBackend(name, () => {
      const be = getBackend(), bytes = Uint8Array.from(src);
      assert.equal(be.quantPackCopies, name === "native" ? KERNELS : false);
      const packed = be.quantPack!("q4_0", N, K, bytes, null), before = new Float32Array(M * N), after = new Float32Array(M * N);
      be.quantMatmul!(M, x, packed, before);
      bytes.fill(0x77);
      be.quantMatmul!(M, x, packed, after);
      if (be.quantPackCopies) assert.deepEqual(after, before);
      else assert.notDeepEqual(after, before);               // it does refer to them: reusing the bytes would be wrong
    });
  }
});

describe("fathom quantize", () => {
  test("from a Hugging Face folder and from a GGUF file; lists fallbacks", { timeout: 60_000 }, () => {
    const m = F.randomModel(TINY_CONFIGS.llama, { seed: 7, init: "scaled" });
    const hf = join(dir, "hf-llama");
    m.savePretrained(hf);
    const out = join(dir, "cli-q4_K.gguf");
    const r = run("quantize", hf, out, "--type", "q4_K", "--json");
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    // hidden 64 and intermediate 96: no row fits 256, all are multiples of 32 → q8_0
    assert.ok(j.fallbacks.some((f: { name: string; type: string; reason: string }) => f.name === "blk.0.ffn_down.weight" && f.type === "q8_0" && /96/.test(f.reason)));
    assert.equal(F.GGUFFile.open(out).tensorInfo("blk.0.ffn_down.weight").typeName, "Q8_0");
    const out2 = join(dir, "cli-q4_0.gguf");
    const r2 = run("quantize", out, out2, "--type", "q4_0");
    assert.equal(r2.status, 0, r2.stderr);
    assert.match(r2.stdout, /wrote .*cli-q4_0\.gguf \(q4_0/);
    assert.equal(F.GGUFFile.open(out2).tensorInfo("blk.1.attn_q.weight").typeName, "Q4_0");
  });
  test("errors: unknown type, missing input", () => {
    const a = run("quantize", "nowhere", join(dir, "x.gguf"), "--type", "q5_0");
    assert.equal(a.status, 1);
    assert.match(a.stderr, /unknown type 'q5_0'/);
    const b = run("quantize", join(dir, "missing"), join(dir, "x.gguf"), "--type", "q8_0");
    assert.equal(b.status, 1);
    assert.match(b.stderr, /input '.*missing' does not exist/);
  });
});

// bf16 keeps 8 bits of mantissa, q8_0 about 7 per block: logits move by ~1e-2 on these tiny random models, enough to
// flip near-tied greedy choices, so the caches are compared teacher-forced on the f32 cache's greedy sequence.
// A preallocated bf16 cache is read as f32 natively into a scratch: in one conversion over the span its heads cover
// (small gaps: a strided view) or one per head (large gaps). Both must give what the concatenating cache gives.
test("bf16 KV cache: preallocated (both read paths) and concatenating caches give the same logits", () => F.noGrad(() => {
  const m = F.randomModel(TINY_CONFIGS.llama, { seed: 6, init: "scaled" });
  const ids = [5, 17, 200, 3, 99, 42, 7, 8, 9, 10, 11, 12, 13, 14];
  const run = (capacity?: number) => {
    const cache = m.newCache({ dtype: "bf16", ...(capacity ? { capacity } : {}) });
    const out = [m.forward(F.tensor([ids.slice(0, 4)], { dtype: "i32" }), { cache }).toArray()];
    for (const t of ids.slice(4)) out.push(m.forward(F.tensor([[t]], { dtype: "i32" }), { cache }).toArray());
    return out;
  };
  const concat = run(), span = run(16), perHead = run(4096);
  assert.deepEqual(span, concat);
  assert.deepEqual(perHead, concat);
}));

test("KV cache dtypes: bf16 and q8_0 caches follow the f32 cache's 16 greedy steps", (t) => {
  for (const arch of ["llama", "deepseek_v3"] as const) {
    const m = F.randomModel(TINY_CONFIGS[arch], { seed: 8, init: "scaled" });
    const steps = (dtype: "f32" | "bf16" | "q8_0", forced?: number[]) => F.noGrad(() => {
      const cache = m.newCache({ dtype });
      const out: number[] = [], logps: number[][] = [];
      let input = F.tensor([PROMPT], { dtype: "i32" });
      for (let i = 0; i < 16; i++) {
        const lp = m.forward(input, { cache }).slice(1, input.shape[1] - 1).reshape(-1).logSoftmax(-1);
        logps.push(lp.toArray());
        const next = forced ? forced[i] : lp.argmax().item();
        out.push(lp.argmax().item());
        input = F.tensor([[next]], { dtype: "i32" });
      }
      return { out, logps, bytes: cache.bytes() };
    });
    const f32 = steps("f32");
    for (const dt of ["bf16", "q8_0"] as const) {
      const r = steps(dt, f32.out);
      const worst = Math.max(...r.logps.map((l, i) => Math.max(...l.map((v, j) => Math.abs(v - f32.logps[i][j])))));
      const agree = r.out.filter((v, i) => v === f32.out[i]).length;
      t.diagnostic(`${arch} ${dt} cache: max |Δ log p| ${worst.toExponential(2)}, greedy choice equal at ${agree}/16 steps, ${r.bytes} bytes vs ${f32.bytes}`);
      assert.ok(worst > 0 && worst < 0.15, `${arch} ${dt}: ${worst}`);   // MoE routing amplifies (deepseek q8_0: ~0.09)
      assert.ok(agree >= 14, `${arch} ${dt}: ${agree}/16`);
      if (dt === "bf16") assert.equal(r.bytes * 2, f32.bytes);
      else assert.ok(r.bytes < f32.bytes * 0.6, `${arch} q8_0 cache ${r.bytes} bytes`);   // head dims of 16 pad to one 32-block
    }
  }
});

test("fathom bench decode --synthetic tiny --json: the result shape (not timing)", { timeout: 120_000, skip: getBackend().name !== "native" && "needs the native addon" }, () => {
  const r = run("bench", "decode", "--synthetic", "tiny", "--type", "q4_0", "--runs", "1", "--pp", "8", "--tg", "4", "--vs-llama-cpp", "--json");
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.results.length, 1);
  const row = j.results[0];
  assert.deepEqual(Object.keys(row).sort(), ["bandwidth_fraction", "llama_cpp_pp_tps", "llama_cpp_tg_tps", "pp_ratio", "pp_tps", "tg_ratio", "tg_tps", "type"]);
  assert.equal(row.type, "q4_0");
  for (const k of Object.keys(row)) if (k !== "type") assert.ok(typeof row[k] === "number" && row[k] > 0, `${k} = ${row[k]}`);
  const bad = run("bench", "decode", "--synthetic", "tiny", "--type", "q5_0");
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown type 'q5_0'/);
});
