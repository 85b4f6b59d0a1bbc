// The model family: configs, RoPE scaling, MLA (expanded vs absorbed), MoE routing, KV cache, MTP, Hugging Face
// folders round trip, and bad input.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { mkdtempSync, rmSync, writeFileSync, readFileSync, truncateSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as F from "../src/index.js";
import { ropeParameters } from "../src/nn/rope.js";
import { mlaSoftmaxScale, parseDeepseekConfig } from "../src/models/deepseek_v2/config.js";
import { MoEGate, DeepseekMoE } from "../src/nn/moe.js";
import type { DeepseekV2ForCausalLM } from "../src/models/deepseek_v2/model.js";
import { assertClose } from "./helpers.js";
import { TINY_CONFIGS, TINY_DEEPSEEK_V2, TINY_DEEPSEEK_V3 } from "./fixtures.js";

const ids = (v: number[][]) => F.tensor(v, { dtype: "i32" });
const tmp = () => mkdtempSync(join(tmpdir(), "fathom-models-"));

describe("RoPE scaling (transformers' formulas)", () => {
  test("YaRN: correction range, blend and attention factor; the MLA softmax scale", () => {
    const { invFreq, attentionFactor } = ropeParameters(64, 10000, { type: "yarn", factor: 40, original_max_position_embeddings: 4096,
      beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 }, 163840);
    for (let i = 0; i <= 10; i++) assertClose([invFreq[i]], [Math.pow(10000, -(2 * i) / 64)], { atol: 0, rtol: 1e-15 }, `dim ${i} unscaled`);
    for (let i = 23; i < 32; i++) assertClose([invFreq[i]], [Math.pow(10000, -(2 * i) / 64) / 40], { atol: 0, rtol: 1e-14 });
    const ramp = (16 - 10) / (23 - 10), base = Math.pow(10000, -32 / 64);
    assertClose([invFreq[16]], [(base / 40) * ramp + base * (1 - ramp)], { atol: 0, rtol: 1e-14 });
    assert.equal(attentionFactor, 1);
    // worked values from the spec: V3 0.1352338, V2-Lite 0.1147214
    const v3 = parseDeepseekConfig({ ...TINY_DEEPSEEK_V3, qk_nope_head_dim: 128, qk_rope_head_dim: 64,
      rope_scaling: { type: "yarn", factor: 40, mscale: 1, mscale_all_dim: 1, original_max_position_embeddings: 4096 } }, "t", "deepseek_v3");
    assertClose([mlaSoftmaxScale(v3)], [0.1352338], { atol: 1e-7, rtol: 0 });
    const lite = parseDeepseekConfig({ ...TINY_DEEPSEEK_V2, qk_nope_head_dim: 128, qk_rope_head_dim: 64,
      rope_scaling: { type: "yarn", factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096 } }, "t", "deepseek_v2");
    assertClose([mlaSoftmaxScale(lite)], [0.1147214], { atol: 1e-7, rtol: 0 });
  });
  test("linear scaling divides the frequencies", () => {
    const { invFreq } = ropeParameters(8, 10000, { type: "linear", factor: 4 }, 2048);
    assert.deepEqual(Array.from(invFreq), [0, 1, 2, 3].map((i) => Math.pow(10000, -(2 * i) / 8) / 4));
  });
});

describe("DeepSeekMoE routing", () => {
  const base = { hidden_size: 4, moe_intermediate_size: 2, n_routed_experts: 8, n_shared_experts: null, num_experts_per_tok: 2,
    n_group: 4, topk_group: 2, norm_topk_prob: false, routed_scaling_factor: 1 };
  // A gate whose logits equal x (hidden = E would be needed): use identity-like weights on one-hot-ish inputs instead.
  function gateWith(c: typeof base & { topk_method: string; scoring_func: string }, logits: number[], bias?: number[]) {
    const g = new MoEGate({ ...c, hidden_size: 8 });
    g.weight = F.tensor(Array.from({ length: 64 }, (_, i) => (Math.floor(i / 8) === i % 8 ? 1 : 0)), { shape: [8, 8] });
    if (bias) g.e_score_correction_bias = F.tensor(bias);
    return g.route(F.tensor(logits, { shape: [1, 8] }));
  }
  const logits = [0.1, 2.0, 0.3, 0.2, 1.5, 1.4, -1, 0.9];
  test("greedy top-k over softmax scores", () => {
    const r = gateWith({ ...base, topk_method: "greedy", scoring_func: "softmax" }, logits);
    assert.deepEqual(Array.from(r.idx), [1, 4]);
    const z = logits.reduce((a, v) => a + Math.exp(v), 0);
    assertClose(r.weights, F.tensor([[Math.exp(2) / z, Math.exp(1.5) / z]]));
  });
  test("group-limited greedy keeps the best groups by their max", () => {
    // groups (0,1) max 2.0, (2,3) 0.3, (4,5) 1.5, (6,7) 0.9 → keep groups 0 and 2
    const r = gateWith({ ...base, topk_method: "group_limited_greedy", scoring_func: "softmax", num_experts_per_tok: 3 }, logits);
    assert.deepEqual(Array.from(r.idx), [1, 4, 5]);
  });
  test("noaux_tc: the bias chooses (top-2 group sums), unbiased sigmoid scores weight, normalised and scaled", () => {
    const bias = [0, -3, 0, 0, 0, 0, 0, 2];                        // expert 1 pushed down, 7 pushed up
    const c = { ...base, topk_method: "noaux_tc", scoring_func: "sigmoid", norm_topk_prob: true, routed_scaling_factor: 2.5 };
    const r = gateWith(c, logits, bias);
    // biased scores s = σ(l) + b; group sums of top two: g0 σ(.1)+σ(2)-3, g1 σ(.3)+σ(.2), g2 σ(1.5)+σ(1.4), g3 σ(-1)+σ(.9)+2
    assert.deepEqual(Array.from(r.idx), [7, 4]);
    const s = (x: number) => 1 / (1 + Math.exp(-x));
    const w = [s(0.9), s(1.5)], tot = w[0] + w[1];
    assertClose(r.weights, F.tensor([[2.5 * w[0] / tot, 2.5 * w[1] / tot]]));
  });
  test("V2 auxiliary loss matches its formula; V3 bias update moves toward balance", () => {
    const moe = new DeepseekMoE({ ...base, hidden_size: 4, topk_method: "greedy", scoring_func: "softmax", aux_loss_alpha: 0.1, seq_aux: true, n_group: 1, topk_group: 1 });
    for (const [n, t] of moe.stateDict()) if (n.endsWith("weight")) { (moe as unknown as { _x: unknown })._x = t; }
    moe.loadStateDict(new Map([...moe.stateDict()].map(([n, t]) => [n, F.randn(t.shape as number[], { seed: n.length })])));
    moe.train();
    const x = F.randn([2, 5, 4], { seed: 9 });
    moe.forward(x);
    const { idx, scores } = moe.gate.route(x.reshape(10, 4));
    const sc = scores.toArray();
    let want = 0;
    for (let b = 0; b < 2; b++) for (let e = 0; e < 8; e++) {
      let cnt = 0, P = 0;
      for (let t = 0; t < 5; t++) { for (let k = 0; k < 2; k++) if (idx[(b * 5 + t) * 2 + k] === e) cnt++; P += sc[(b * 5 + t) * 8 + e] / 5; }
      want += (cnt / (5 * 2 / 8)) * P;
    }
    assertClose([moe.auxLoss!.item()], [0.1 * want / 2], { atol: 1e-6, rtol: 1e-5 });
    const v3 = new DeepseekMoE({ ...base, topk_method: "noaux_tc", scoring_func: "sigmoid", n_group: 4, topk_group: 2 });
    v3.lastLoad = Float64Array.from([5, 0, 1, 1, 1, 1, 1, 6]);
    v3.updateBias(0.01);
    assert.deepEqual(v3.gate.e_score_correction_bias!.toArray().map((v) => Math.round(v * 100)), [-1, 1, 1, 1, 1, 1, 1, -1]);
  });
});

describe("models of every architecture", () => {
  for (const [name, cfg] of Object.entries(TINY_CONFIGS)) {
    test(`${name}: cached decoding equals the full forward; greedy generation is deterministic`, () => F.noGrad(() => {
      const m = F.randomModel(cfg, { seed: 1, init: "scaled" });
      const x = ids([[5, 17, 200, 3, 99, 42, 7]]);
      const full = m.forward(x);
      const cache = m.newCache();
      const parts = [m.forward(x.slice(1, 0, 3), { cache }), m.forward(x.slice(1, 3, 4), { cache }), m.forward(x.slice(1, 4), { cache })];
      assertClose(F.concat(parts, 1), full, { atol: 2e-5, rtol: 2e-5 }, `${name} cached`);
      const g1 = m.generateGreedy([5, 17, 200], 6), g2 = m.generateGreedy([5, 17, 200], 6);
      assert.deepEqual(g1, g2);
      assert.equal(g1.tokenIds.length, 6);
      const lp = full.slice(1, 2, 3).reshape(-1).logSoftmax(-1);
      assertClose([g1.logprobs[0]], [lp.toArray()[g1.tokenIds[0]]], { atol: 1e-5, rtol: 1e-5 });
    }));
  }

  test("MLA: the absorbed form (latent cache) equals the expanded form", () => F.noGrad(() => {
    const m = F.randomModel(TINY_DEEPSEEK_V3, { seed: 2, init: "scaled" }) as DeepseekV2ForCausalLM;
    const x = ids([[1, 2, 3, 4, 5, 6]]);
    const expanded = m.forward(x);                                  // no cache: expanded form
    for (const l of m.layers) (l.self_attn as unknown as { absorb: boolean }).absorb = true;
    const absorbed = m.forward(x, { cache: m.newCache() });
    assertClose(absorbed, expanded, { atol: 2e-5, rtol: 2e-5 });
    const cache = m.newCache();
    m.forward(x, { cache });
    // the cache holds only the latent and the rope key: kv_lora_rank + qk_rope_head_dim values per token per layer
    assert.equal(cache.bytes(), 3 * 6 * (32 + 8) * 4);
    assert.equal(m.info().kv_cache_bytes_per_token, 3 * (32 + 8) * 4);
  }));

  test("gradients flow to every parameter of a DeepSeek-V2 model (with the auxiliary loss) and through MTP", () => {
    const m = F.randomModel(TINY_DEEPSEEK_V2, { seed: 3, init: "scaled" }) as DeepseekV2ForCausalLM;
    m.train().requiresGrad_();
    const x = ids([[3, 4, 5, 6, 7, 8, 9, 10]]);
    const logits = m.forward(x);
    const loss = F.crossEntropy(logits.slice(1, 0, 7).reshape(7, -1), x.slice(1, 1).reshape(7)).add(m.auxLoss()!);
    loss.backward();
    const used = new Set<string>();
    for (const [n, p] of m.namedParameters()) if (p.grad && p.grad.abs().sum().item() > 0) used.add(n);
    const unused = m.namedParameters().map(([n]) => n).filter((n) => !used.has(n) && !/experts\.\d+\./.test(n));
    assert.deepEqual(unused, []);
    const v3 = F.randomModel(TINY_DEEPSEEK_V3, { seed: 4, init: "scaled" }) as DeepseekV2ForCausalLM;
    const h = v3.hidden(x);
    const [mtp] = v3.mtpLogits(h, x);
    assert.deepEqual(mtp.shape, [1, 7, 288]);
  });

  test("info: parameters, activated parameters and KV bytes", () => {
    const m = F.randomModel(TINY_DEEPSEEK_V3, { seed: 1 });
    const i = m.info();
    const expert = 3 * 64 * 32;
    assert.equal(i.parameters - i.activated_parameters, 2 * (8 - 2) * expert);     // two MoE layers, 6 idle experts each
    assert.equal(i.mha_kv_cache_bytes_per_token, 3 * 4 * (16 + 8 + 16) * 4);
    const l = F.randomModel(TINY_CONFIGS.llama, { seed: 1 }).info();
    assert.equal(l.kv_cache_bytes_per_token, 2 * 2 * 2 * 16 * 4);
  });
});

describe("Hugging Face folders", () => {
  for (const [name, cfg] of Object.entries(TINY_CONFIGS)) {
    test(`${name}: load → save → identical tensors and config`, () => {
      const dir = tmp(), dir2 = tmp();
      try {
        const m = F.randomModel(cfg, { seed: 5, dtype: "bf16" });
        m.savePretrained(dir, { maxShardBytes: 40_000 });
        const loaded = F.AutoModelForCausalLM.fromPretrained(dir);
        loaded.savePretrained(dir2);
        const again = F.AutoModelForCausalLM.fromPretrained(dir2);
        const a = m.stateDict(), b = again.stateDict();
        assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
        for (const [k, t] of a) {
          assert.equal(b.get(k)!.dtype, t.dtype, k);
          assert.deepEqual(b.get(k)!.buffer(), t.buffer(), k);
        }
        assert.deepEqual(JSON.parse(readFileSync(join(dir2, "config.json"), "utf8")), JSON.parse(readFileSync(join(dir, "config.json"), "utf8")));
        assert.equal(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).torch_dtype, "bfloat16");
        const x = ids([[1, 2, 3]]);
        assertClose(F.noGrad(() => again.forward(x)), F.noGrad(() => m.forward(x)), { atol: 0, rtol: 0 });
      } finally { rmSync(dir, { recursive: true }); rmSync(dir2, { recursive: true }); }
    });
  }

  test("FP8 block-quantized weights are dequantized on load", () => {
    const dir = tmp();
    try {
      const m = F.randomModel(TINY_LLAMA_NOSCALE(), { seed: 6 });
      const sd = m.stateDict();
      const w = sd.get("model.layers.0.mlp.up_proj.weight")!;                 // [96, 64]
      // encode as E4M3 bytes of value 1.0 (0x38) and -0.5 (0xB0) with per-block scales
      const bytes = new Uint8Array(96 * 64).map((_, i) => (i % 2 ? 0x38 : 0xb0));
      const scales = F.tensor([0.5, 2], { shape: [1, 2] });                     // blocks of 128 → [1, 1]; use block 64 semantics below
      void scales;
      const st = new Map<string, F.Tensor>([...sd].filter(([k]) => k !== "model.layers.0.mlp.up_proj.weight"));
      const scaleInv = F.tensor([0.25], { shape: [1, 1] });
      F.saveSafetensors(join(dir, "model.safetensors"), st);
      // write the FP8 weight into a second shard with an index
      writeFp8Shard(dir, st, "model.layers.0.mlp.up_proj.weight", bytes, [96, 64], scaleInv);
      writeFileSync(join(dir, "config.json"), JSON.stringify(TINY_LLAMA_NOSCALE()));
      const loaded = F.AutoModelForCausalLM.fromPretrained(dir, { dtype: "f32" });
      const got = loaded.stateDict().get("model.layers.0.mlp.up_proj.weight")!.toArray();
      assert.deepEqual(got.slice(0, 4), [-0.125, 0.25, -0.125, 0.25]);
      void w;
    } finally { rmSync(dir, { recursive: true }); }
  });

  test("bad folders and files give typed errors naming the file, tensor or field", () => {
    const dir = tmp();
    try {
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), /missing config\.json/);
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ...TINY_CONFIGS.llama, model_type: "gpt9" }));
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), /unknown model_type 'gpt9'/);
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ...TINY_CONFIGS.llama, num_key_value_heads: 3 }));
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), /must be a multiple of num_key_value_heads/);
      writeFileSync(join(dir, "config.json"), JSON.stringify({ ...TINY_CONFIGS.llama, hidden_size: "big" }));
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), /field 'hidden_size' must be an integer/);
      const m = F.randomModel(TINY_CONFIGS.llama, { seed: 1 });
      m.savePretrained(dir);
      const sd = m.stateDict();
      sd.delete("model.layers.1.mlp.down_proj.weight");
      F.saveSafetensors(join(dir, "model.safetensors"), sd);
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), (e: Error) => e instanceof F.FathomError && /missing tensor 'model\.layers\.1\.mlp\.down_proj\.weight'/.test(e.message));
      sd.set("model.layers.1.mlp.down_proj.weight", F.zeros([64, 95]));
      F.saveSafetensors(join(dir, "model.safetensors"), sd);
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), /'model\.layers\.1\.mlp\.down_proj\.weight'.*shape \[64, 95\], the config expects \[64, 96\]/);
      sd.set("model.layers.1.mlp.down_proj.weight", F.zeros([64, 96], "i32"));
      F.saveSafetensors(join(dir, "model.safetensors"), sd);
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), (e: Error) => e instanceof F.DTypeError && /down_proj\.weight.*dtype i32, expected a floating dtype/.test(e.message));
      m.savePretrained(dir);
      truncateSync(join(dir, "model.safetensors"), statSync(join(dir, "model.safetensors")).size - 10);
      assert.throws(() => F.AutoModelForCausalLM.fromPretrained(dir), F.FormatError);
    } finally { rmSync(dir, { recursive: true }); }
  });
});

function TINY_LLAMA_NOSCALE() { const { rope_scaling: _r, ...rest } = TINY_CONFIGS.llama; void _r; return rest; }

/** Writes `name` as F8_E4M3 bytes plus `${name}_scale_inv` into a second shard and an index over both shards. */
function writeFp8Shard(dir: string, rest: Map<string, F.Tensor>, name: string, bytes: Uint8Array, shape: number[], scaleInv: F.Tensor) {
  const header: Record<string, unknown> = {
    [name]: { dtype: "F8_E4M3", shape, data_offsets: [0, bytes.length] },
    [`${name}_scale_inv`]: { dtype: "F32", shape: scaleInv.shape, data_offsets: [bytes.length, bytes.length + 4 * scaleInv.numel] },
  };
  let h = JSON.stringify(header);
  while ((8 + h.length) % 8) h += " ";
  const hb = Buffer.from(h);
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(hb.length));
  writeFileSync(join(dir, "fp8.safetensors"), Buffer.concat([len, hb, Buffer.from(bytes), Buffer.from((scaleInv.buffer() as Float32Array).buffer.slice(0))]));
  const weightMap: Record<string, string> = {};
  for (const k of rest.keys()) weightMap[k] = "model.safetensors";
  weightMap[name] = "fp8.safetensors";
  weightMap[`${name}_scale_inv`] = "fp8.safetensors";
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}
