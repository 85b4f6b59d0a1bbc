// Models ⇄ GGUF files for llama.cpp: architectures `llama` (DeepSeek-LLM/Coder, with llama.cpp's Q/K row
// permutation applied here and nowhere else), `qwen2` and `deepseek2` (MLA in the newer layout with separate
// attn_k_b / attn_v_b; the older attn_kv_b is read too; routed experts stacked). Hugging Face names and config
// fields inside, GGUF names and keys at this boundary only. See shared/docs/deepseek-spec.md §5.
import { FathomError, FormatError } from "../core/errors.js";
import type { DType } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { concat, contiguous, reshape, slice, transpose } from "../core/ops/movement.js";
import type { CausalLM } from "../models/decoder.js";
import { modelFromConfig } from "../models/registry.js";
import type { RawConfig } from "../models/config.js";
import type { LlamaForCausalLM } from "../models/llama/model.js";
import type { DeepseekV2ForCausalLM } from "../models/deepseek_v2/model.js";
import { isMoeLayer } from "../models/deepseek_v2/config.js";
import { GGUFFile, writeGGUF, type GGUFMetadataEntry } from "./gguf.js";
import { tokenizerToGGUF } from "./gguf_tokenizer.js";

export interface GGUFExportOptions {
  /** Type of the matrices (1-D tensors, norms and the router stay f32, as llama.cpp's converter does). Default f32. */
  dtype?: "f32" | "f16" | "bf16";
  /** A Hugging Face tokenizer (tokenizer.json object, tokenizer_config.json object) to embed as tokenizer.ggml.*. */
  tokenizer?: { json: Record<string, unknown>; config?: Record<string, unknown>; pre?: string };
  name?: string;
}

type Entry = GGUFMetadataEntry;
const u32 = (key: string, value: number): Entry => ({ key, type: "u32", value });
const f32 = (key: string, value: number): Entry => ({ key, type: "f32", value });
const str = (key: string, value: string): Entry => ({ key, type: "string", value });
const bool = (key: string, value: boolean): Entry => ({ key, type: "bool", value });

/** HF rotate_half rows → llama.cpp's adjacent pairs: new row h·hd + 2i + j = old row h·hd + j·hd/2 + i. */
export function permuteQK(w: Tensor, heads: number): Tensor {
  const rows = w.shape[0], rest = w.shape.slice(1), hd = rows / heads;
  return contiguous(reshape(transpose(reshape(w, [heads, 2, hd / 2, ...rest]), 1, 2), [rows, ...rest]));
}
/** The inverse of permuteQK (GGUF → Hugging Face). */
export function unpermuteQK(w: Tensor, heads: number): Tensor {
  const rows = w.shape[0], rest = w.shape.slice(1), hd = rows / heads;
  return contiguous(reshape(transpose(reshape(w, [heads, hd / 2, 2, ...rest]), 1, 2), [rows, ...rest]));
}

const FILE_TYPE: Record<string, number> = { f32: 0, f16: 1, bf16: 32 };

export function exportGGUF(model: CausalLM, path: string, o: GGUFExportOptions = {}): void {
  const dtype = o.dtype ?? "f32";
  const sd = model.stateDict();
  const tensors: { name: string; tensor: Tensor }[] = [];
  const put = (name: string, t: Tensor, keepF32 = false) =>
    tensors.push({ name, tensor: contiguous((t.ndim === 1 || keepF32 ? t.to("f32") : t.to(dtype)).detach()) });
  const w = (n: string) => { const t = sd.get(n); if (!t) throw new FathomError("gguf", `model has no tensor '${n}'`); return t; };
  let meta: Entry[];
  const mt = model.modelType;
  if (mt === "llama" || mt === "qwen2") {
    const c = (model as LlamaForCausalLM).config, A = mt;
    meta = [str("general.architecture", A), u32(`${A}.context_length`, c.max_position_embeddings), u32(`${A}.embedding_length`, c.hidden_size),
      u32(`${A}.block_count`, c.num_hidden_layers), u32(`${A}.feed_forward_length`, c.intermediate_size),
      u32(`${A}.attention.head_count`, c.num_attention_heads), u32(`${A}.attention.head_count_kv`, c.num_key_value_heads),
      f32(`${A}.attention.layer_norm_rms_epsilon`, c.rms_norm_eps), f32(`${A}.rope.freq_base`, c.rope_theta),
      u32(`${A}.rope.dimension_count`, c.head_dim), u32(`${A}.vocab_size`, c.vocab_size),
      u32(`${A}.attention.key_length`, c.head_dim), u32(`${A}.attention.value_length`, c.head_dim)];
    const rs = c.rope_scaling;
    if (rs && (rs.rope_type ?? rs.type) === "linear") meta.push(str(`${A}.rope.scaling.type`, "linear"), f32(`${A}.rope.scaling.factor`, rs.factor!));
    else if (rs && (rs.rope_type ?? rs.type) !== "default") throw new FathomError("gguf", `rope_scaling type '${rs.rope_type ?? rs.type}' cannot be exported for ${A} yet`);
    put("token_embd.weight", w("model.embed_tokens.weight"));
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`, b = `blk.${i}.`;
      const qk = (t: Tensor, heads: number) => (mt === "llama" ? permuteQK(t, heads) : t);
      put(b + "attn_norm.weight", w(p + "input_layernorm.weight"));
      put(b + "attn_q.weight", qk(w(p + "self_attn.q_proj.weight"), c.num_attention_heads));
      put(b + "attn_k.weight", qk(w(p + "self_attn.k_proj.weight"), c.num_key_value_heads));
      put(b + "attn_v.weight", w(p + "self_attn.v_proj.weight"));
      if (c.attention_bias) {
        put(b + "attn_q.bias", qk(w(p + "self_attn.q_proj.bias"), c.num_attention_heads));
        put(b + "attn_k.bias", qk(w(p + "self_attn.k_proj.bias"), c.num_key_value_heads));
        put(b + "attn_v.bias", w(p + "self_attn.v_proj.bias"));
      }
      put(b + "attn_output.weight", w(p + "self_attn.o_proj.weight"));
      if (c.o_proj_bias) put(b + "attn_output.bias", w(p + "self_attn.o_proj.bias"));
      put(b + "ffn_norm.weight", w(p + "post_attention_layernorm.weight"));
      put(b + "ffn_gate.weight", w(p + "mlp.gate_proj.weight"));
      put(b + "ffn_up.weight", w(p + "mlp.up_proj.weight"));
      put(b + "ffn_down.weight", w(p + "mlp.down_proj.weight"));
    }
  } else if (mt === "deepseek_v2" || mt === "deepseek_v3") {
    const c = (model as DeepseekV2ForCausalLM).config, A = "deepseek2";
    const rs = c.rope_scaling;
    meta = [str("general.architecture", A), u32(`${A}.context_length`, c.max_position_embeddings), u32(`${A}.embedding_length`, c.hidden_size),
      u32(`${A}.block_count`, c.num_hidden_layers), u32(`${A}.feed_forward_length`, c.intermediate_size),
      u32(`${A}.attention.head_count`, c.num_attention_heads), u32(`${A}.attention.head_count_kv`, 1),
      f32(`${A}.attention.layer_norm_rms_epsilon`, c.rms_norm_eps), f32(`${A}.rope.freq_base`, c.rope_theta),
      u32(`${A}.rope.dimension_count`, c.qk_rope_head_dim), u32(`${A}.vocab_size`, c.vocab_size),
      u32(`${A}.leading_dense_block_count`, c.first_k_dense_replace), u32(`${A}.attention.kv_lora_rank`, c.kv_lora_rank),
      u32(`${A}.attention.key_length`, c.kv_lora_rank + c.qk_rope_head_dim), u32(`${A}.attention.value_length`, c.kv_lora_rank),
      u32(`${A}.attention.key_length_mla`, c.qk_nope_head_dim + c.qk_rope_head_dim), u32(`${A}.attention.value_length_mla`, c.v_head_dim),
      u32(`${A}.expert_feed_forward_length`, c.moe_intermediate_size), u32(`${A}.expert_count`, c.n_routed_experts),
      u32(`${A}.expert_shared_count`, c.n_shared_experts ?? 0), u32(`${A}.expert_used_count`, c.num_experts_per_tok),
      f32(`${A}.expert_weights_scale`, c.routed_scaling_factor), u32(`${A}.expert_gating_func`, c.scoring_func === "sigmoid" ? 2 : 1)];
    if (c.norm_topk_prob) meta.push(bool(`${A}.expert_weights_norm`, true));
    if (c.q_lora_rank) meta.push(u32(`${A}.attention.q_lora_rank`, c.q_lora_rank));
    if (c.topk_method !== "greedy") meta.push(u32(`${A}.expert_group_count`, c.n_group ?? 1), u32(`${A}.expert_group_used_count`, c.topk_group ?? 1));
    if (rs && (rs.rope_type ?? rs.type) === "yarn") {
      meta.push(str(`${A}.rope.scaling.type`, "yarn"), f32(`${A}.rope.scaling.factor`, rs.factor ?? 1),
        u32(`${A}.rope.scaling.original_context_length`, rs.original_max_position_embeddings ?? c.max_position_embeddings),
        f32(`${A}.rope.scaling.yarn_log_multiplier`, 0.1 * (rs.mscale_all_dim ?? 0)),
        f32(`${A}.rope.scaling.yarn_beta_fast`, rs.beta_fast ?? 32), f32(`${A}.rope.scaling.yarn_beta_slow`, rs.beta_slow ?? 1));
    } else if (rs) throw new FathomError("gguf", `rope_scaling type '${rs.rope_type ?? rs.type}' cannot be exported for deepseek2`);
    const H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim, r = c.kv_lora_rank;
    put("token_embd.weight", w("model.embed_tokens.weight"));
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const p = `model.layers.${i}.`, b = `blk.${i}.`;
      put(b + "attn_norm.weight", w(p + "input_layernorm.weight"));
      if (c.q_lora_rank) {
        put(b + "attn_q_a.weight", w(p + "self_attn.q_a_proj.weight"));
        put(b + "attn_q_a_norm.weight", w(p + "self_attn.q_a_layernorm.weight"));
        put(b + "attn_q_b.weight", w(p + "self_attn.q_b_proj.weight"));
      } else put(b + "attn_q.weight", w(p + "self_attn.q_proj.weight"));
      put(b + "attn_kv_a_mqa.weight", w(p + "self_attn.kv_a_proj_with_mqa.weight"));
      put(b + "attn_kv_a_norm.weight", w(p + "self_attn.kv_a_layernorm.weight"));
      const kvb = reshape(w(p + "self_attn.kv_b_proj.weight"), [H, dn + dv, r]);
      put(b + "attn_k_b.weight", transpose(slice(kvb, 1, 0, dn), 1, 2));            // (H, r, dn)
      put(b + "attn_v_b.weight", slice(kvb, 1, dn));                                  // (H, dv, r)
      put(b + "attn_output.weight", w(p + "self_attn.o_proj.weight"));
      put(b + "ffn_norm.weight", w(p + "post_attention_layernorm.weight"));
      if (isMoeLayer(c, i)) {
        put(b + "ffn_gate_inp.weight", w(p + "mlp.gate.weight"), true);
        if (c.topk_method === "noaux_tc") put(b + "exp_probs_b.bias", w(p + "mlp.gate.e_score_correction_bias"));
        for (const [g, hf] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) {
          const stack = Array.from({ length: c.n_routed_experts }, (_, e) => w(`${p}mlp.experts.${e}.${hf}.weight`).unsqueeze(0));
          put(`${b}ffn_${g}_exps.weight`, concat(stack, 0));                         // (E, out, in)
          if (c.n_shared_experts) put(`${b}ffn_${g}_shexp.weight`, w(`${p}mlp.shared_experts.${hf}.weight`));
        }
      } else for (const [g, hf] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) put(`${b}ffn_${g}.weight`, w(`${p}mlp.${hf}.weight`));
    }
  } else throw new FathomError("gguf", `cannot export model_type '${mt}' to GGUF`);
  put("output_norm.weight", w("model.norm.weight"));
  if (!model.tieWordEmbeddings) put("output.weight", w("lm_head.weight"));
  meta.splice(1, 0, str("general.name", o.name ?? "fathom-export"), u32("general.file_type", FILE_TYPE[dtype]));
  if (o.tokenizer) meta.push(...tokenizerToGGUF(o.tokenizer.json, o.tokenizer.config, { pre: o.tokenizer.pre ?? "default" }));
  writeGGUF(path, { metadata: meta, tensors });
}

// ---- import

function configFromGGUF(f: GGUFFile): RawConfig {
  const arch = f.getString("general.architecture");
  const A = arch;
  const has = (k: string) => f.metadata.has(k);
  const value = (k: string) => {
    const v = f.metadata.get(k)!.value;
    if (typeof v !== "number" && typeof v !== "bigint") throw new FormatError("gguf", `${f.name}: metadata '${k}' must be a number`);
    return Number(v);
  };
  const num = (k: string, d?: number) => (has(k) ? value(k) : d);
  const need = (k: string) => { if (!has(k)) throw new FormatError("gguf", `${f.name}: missing key '${k}'`); return value(k); };
  const embd = f.tensors.find((t) => t.name === "token_embd.weight");
  if (!embd) throw new FormatError("gguf", `${f.name}: missing tensor 'token_embd.weight'`);
  const vocab = embd.shape[0], D = need(`${A}.embedding_length`), H = need(`${A}.attention.head_count`);
  const tie = !f.tensors.some((t) => t.name === "output.weight");
  const common = {
    vocab_size: vocab, hidden_size: D, intermediate_size: need(`${A}.feed_forward_length`), num_hidden_layers: need(`${A}.block_count`),
    num_attention_heads: H, max_position_embeddings: need(`${A}.context_length`), rms_norm_eps: need(`${A}.attention.layer_norm_rms_epsilon`),
    rope_theta: num(`${A}.rope.freq_base`, 10000), tie_word_embeddings: tie,
    bos_token_id: num("tokenizer.ggml.bos_token_id") ?? null, eos_token_id: num("tokenizer.ggml.eos_token_id") ?? null,
  };
  const scalingType = has(`${A}.rope.scaling.type`) ? f.getString(`${A}.rope.scaling.type`) : "none";
  if (arch === "llama" || arch === "qwen2") {
    const hd = num(`${A}.attention.key_length`) ?? num(`${A}.rope.dimension_count`) ?? D / H;
    const rope_scaling = scalingType === "linear" ? { type: "linear", factor: need(`${A}.rope.scaling.factor`) } : null;
    return { architectures: [arch === "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM"], model_type: arch, ...common,
      num_key_value_heads: num(`${A}.attention.head_count_kv`, H), head_dim: hd, rope_scaling,
      attention_bias: arch === "llama" && f.tensors.some((t) => t.name === "blk.0.attn_q.bias") };
  }
  if (arch === "deepseek2") {
    const sigmoid = num(`${A}.expert_gating_func`, 1) === 2;
    const hasBias = f.tensors.some((t) => /exp_probs_b\.bias$/.test(t.name));
    const groups = num(`${A}.expert_group_count`, 1)!;
    const rope = num(`${A}.rope.dimension_count`)!;
    const kvr = need(`${A}.attention.kv_lora_rank`);
    const kMla = num(`${A}.attention.key_length_mla`) ?? num(`${A}.attention.key_length`)!;
    const vMla = num(`${A}.attention.value_length_mla`) ?? num(`${A}.attention.value_length`)!;
    const mscaleAll = (num(`${A}.rope.scaling.yarn_log_multiplier`, 0) ?? 0) / 0.1;
    const rope_scaling = scalingType === "yarn" ? { type: "yarn", factor: need(`${A}.rope.scaling.factor`),
      original_max_position_embeddings: num(`${A}.rope.scaling.original_context_length`, 4096),
      beta_fast: num(`${A}.rope.scaling.yarn_beta_fast`, 32), beta_slow: num(`${A}.rope.scaling.yarn_beta_slow`, 1),
      mscale: mscaleAll, mscale_all_dim: mscaleAll } : null;
    const v3 = sigmoid || hasBias;
    return { architectures: [v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"], model_type: v3 ? "deepseek_v3" : "deepseek_v2", ...common,
      num_key_value_heads: H, q_lora_rank: num(`${A}.attention.q_lora_rank`) ?? null, kv_lora_rank: kvr,
      qk_nope_head_dim: kMla - rope, qk_rope_head_dim: rope, v_head_dim: vMla,
      moe_intermediate_size: num(`${A}.expert_feed_forward_length`, 1), n_routed_experts: num(`${A}.expert_count`, 0),
      n_shared_experts: num(`${A}.expert_shared_count`, 0) || null, num_experts_per_tok: num(`${A}.expert_used_count`, 1),
      first_k_dense_replace: num(`${A}.leading_dense_block_count`, 0), moe_layer_freq: 1,
      routed_scaling_factor: num(`${A}.expert_weights_scale`, 1), norm_topk_prob: has(`${A}.expert_weights_norm`) ? f.getBool(`${A}.expert_weights_norm`) : false,
      scoring_func: sigmoid ? "sigmoid" : "softmax", topk_method: hasBias ? "noaux_tc" : groups > 1 ? "group_limited_greedy" : "greedy",
      n_group: groups, topk_group: num(`${A}.expert_group_used_count`, 1), num_nextn_predict_layers: 0, rope_scaling };
  }
  throw new FathomError("gguf", `${f.name}: architecture '${arch}' is not supported (supported: llama, qwen2, deepseek2)`);
}

export interface GGUFLoadOptions { dtype?: DType; onProgress?: (done: number, total: number) => void }

/** A model from a GGUF file (quantized tensors are dequantized for now). */
export function loadGGUF(path: string, o: GGUFLoadOptions = {}): CausalLM {
  const f = GGUFFile.open(path);
  const raw = configFromGGUF(f);
  const model = modelFromConfig(raw, `${path} (GGUF metadata)`);
  const names = new Set(f.tensors.map((t) => t.name));
  const read = (n: string): Tensor | undefined => {
    if (!names.has(n)) return undefined;
    const info = f.tensors.find((t) => t.name === n)!;
    return info.typeName === "F32" || info.typeName === "F16" || info.typeName === "BF16" ? f.get(n) : f.dequantize(n);
  };
  const need = (n: string) => { const t = read(n); if (!t) throw new FormatError("gguf", `${path}: missing tensor '${n}'`); return t; };
  const hf = new Map<string, Tensor>();
  hf.set("model.embed_tokens.weight", need("token_embd.weight"));
  hf.set("model.norm.weight", need("output_norm.weight"));
  if (names.has("output.weight")) hf.set("lm_head.weight", need("output.weight"));
  const arch = f.getString("general.architecture");
  const L = Number(raw.num_hidden_layers), H = Number(raw.num_attention_heads);
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`, b = `blk.${i}.`;
    hf.set(p + "input_layernorm.weight", need(b + "attn_norm.weight"));
    hf.set(p + "post_attention_layernorm.weight", need(b + "ffn_norm.weight"));
    hf.set(p + "self_attn.o_proj.weight", need(b + "attn_output.weight"));
    if (arch === "llama" || arch === "qwen2") {
      const Hkv = Number(raw.num_key_value_heads);
      const qk = (t: Tensor, heads: number) => (arch === "llama" ? unpermuteQK(t, heads) : t);
      hf.set(p + "self_attn.q_proj.weight", qk(need(b + "attn_q.weight"), H));
      hf.set(p + "self_attn.k_proj.weight", qk(need(b + "attn_k.weight"), Hkv));
      hf.set(p + "self_attn.v_proj.weight", need(b + "attn_v.weight"));
      if (names.has(b + "attn_q.bias")) {
        hf.set(p + "self_attn.q_proj.bias", qk(need(b + "attn_q.bias"), H));
        hf.set(p + "self_attn.k_proj.bias", qk(need(b + "attn_k.bias"), Hkv));
        hf.set(p + "self_attn.v_proj.bias", need(b + "attn_v.bias"));
      }
      if (names.has(b + "attn_output.bias")) hf.set(p + "self_attn.o_proj.bias", need(b + "attn_output.bias"));
      for (const [g, n] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) hf.set(`${p}mlp.${n}.weight`, need(`${b}ffn_${g}.weight`));
      continue;
    }
    const dn = Number(raw.qk_nope_head_dim), dv = Number(raw.v_head_dim), r = Number(raw.kv_lora_rank);
    if (raw.q_lora_rank) {
      hf.set(p + "self_attn.q_a_proj.weight", need(b + "attn_q_a.weight"));
      hf.set(p + "self_attn.q_a_layernorm.weight", need(b + "attn_q_a_norm.weight"));
      hf.set(p + "self_attn.q_b_proj.weight", need(b + "attn_q_b.weight"));
    } else hf.set(p + "self_attn.q_proj.weight", need(b + "attn_q.weight"));
    hf.set(p + "self_attn.kv_a_proj_with_mqa.weight", need(b + "attn_kv_a_mqa.weight"));
    hf.set(p + "self_attn.kv_a_layernorm.weight", need(b + "attn_kv_a_norm.weight"));
    if (names.has(b + "attn_kv_b.weight")) hf.set(p + "self_attn.kv_b_proj.weight", need(b + "attn_kv_b.weight"));
    else {
      const kb = transpose(need(b + "attn_k_b.weight"), 1, 2);                        // (H, dn, r)
      const vb = need(b + "attn_v_b.weight");                                           // (H, dv, r)
      hf.set(p + "self_attn.kv_b_proj.weight", reshape(concat([contiguous(kb), vb], 1), [H * (dn + dv), r]));
    }
    if (names.has(b + "ffn_gate_inp.weight")) {
      hf.set(p + "mlp.gate.weight", need(b + "ffn_gate_inp.weight"));
      if (names.has(b + "exp_probs_b.bias")) hf.set(p + "mlp.gate.e_score_correction_bias", need(b + "exp_probs_b.bias"));
      for (const [g, n] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) {
        const stack = need(`${b}ffn_${g}_exps.weight`);
        for (let e = 0; e < stack.shape[0]; e++) hf.set(`${p}mlp.experts.${e}.${n}.weight`, reshape(slice(stack, 0, e, e + 1), stack.shape.slice(1)));
        if (names.has(`${b}ffn_${g}_shexp.weight`)) hf.set(`${p}mlp.shared_experts.${n}.weight`, need(`${b}ffn_${g}_shexp.weight`));
      }
    } else for (const [g, n] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) hf.set(`${p}mlp.${n}.weight`, need(`${b}ffn_${g}.weight`));
  }
  model.loadStateDict(hf, { dtype: o.dtype, source: path, onProgress: o.onProgress });
  return model;
}
