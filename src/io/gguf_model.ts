// Models ⇄ GGUF files for llama.cpp: architectures `llama` (DeepSeek-LLM/Coder, with llama.cpp's Q/K row
// permutation applied here and nowhere else), `qwen2` and `deepseek2` (MLA in the newer layout with separate
// attn_k_b / attn_v_b; the older attn_kv_b is read too; routed experts stacked). Hugging Face names and config
// fields inside, GGUF names and keys at this boundary only. See shared/docs/deepseek-spec.md §5.
import { closeSync, openSync, readSync } from "node:fs";
import { FathomError, FormatError } from "../core/errors.js";
import type { DType } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { getBackend } from "../core/backend/index.js";
import { concat, contiguous, reshape, slice, transpose } from "../core/ops/movement.js";
import type { CausalLM } from "../models/decoder.js";
import { modelFromConfig } from "../models/registry.js";
import type { RawConfig } from "../models/config.js";
import type { LlamaForCausalLM } from "../models/llama/model.js";
import type { DeepseekV2ForCausalLM } from "../models/deepseek_v2/model.js";
import { isMoeLayer } from "../models/deepseek_v2/config.js";
import { GGUFFile, writeGGUF, type GGUFMetadataEntry } from "./gguf.js";
import { tokenizerToGGUF } from "./gguf_tokenizer.js";
import { Embedding, Linear } from "../nn/layers.js";
import { arange } from "../core/ops/create.js";
import { isFloat } from "../core/dtype.js";
import { QEmbedding, QLinear, SplitKvB, chooseType, dequantizeWeight, gatherQRows, qkindOf, quantizeWeight, sliceQ, stackQ, type QWeight } from "../quant/qlinear.js";
import { QUANT_KINDS, type QuantKind } from "../quant/qmatmul.js";

/**
 * A quantized matrix on its way to or from a file; output row i is stored row perm[i] (null: the identity). `at`: where
 * its bytes lie in the source file (loading packs from a read copy, leaving the mapped pages untouched).
 */
interface QSrc { q: QWeight; perm: Int32Array | null; at?: { offset: number; bytes: number } }
type Src = Tensor | QSrc;
const isQ = (x: Src): x is QSrc => !(x instanceof Tensor);
const qkIndex = (rows: number, heads: number, inverse: boolean): Int32Array => {
  const idx = arange(0, rows).to("f32").reshape(rows, 1);
  return Int32Array.from((inverse ? unpermuteQK(idx, heads) : permuteQK(idx, heads)).toArray());
};
/** Resolves a QSrc's row order (copying rows only when it is not the identity). */
function qInOrder(s: QSrc): QWeight {
  if (!s.perm || s.perm.every((v, i) => v === i)) return s.q;
  return gatherQRows(s.q, s.perm);
}
const scaleName = (n: string) => n.replace(/\.weight$/, ".scale");

export interface GGUFExportOptions {
  /**
   * Type of the matrices (1-D tensors, norms, the router and exp_probs_b stay f32, as llama.cpp's converter does). Default
   * f32. Quantized types: rows that do not fit the block fall back (q4_K → q8_0 if K % 32 == 0, else f16), reported
   * through onFallback. int8 (per-row symmetric + `<name>.scale` f32 tensors) is readable by Fathom only. Matrices a
   * quantized model already holds in a type are written as they are (no requantization).
   */
  dtype?: "f32" | "f16" | "bf16" | QuantKind;
  /** Called for each tensor written in another type than asked. */
  onFallback?: (name: string, type: string, reason: string) => void;
  /** Extra metadata entries (e.g. the tokenizer.* keys of a source GGUF file). */
  metadata?: GGUFMetadataEntry[];
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

const FILE_TYPE: Record<string, number> = { f32: 0, f16: 1, bf16: 32, q8_0: 7, q4_0: 2, q4_K: 14 };

export function exportGGUF(model: CausalLM, path: string, o: GGUFExportOptions = {}): void {
  const dtype = o.dtype ?? "f32";
  const sd = model.stateDict();
  const qmods = new Map<string, QSrc>();
  for (const [n, t, mod, local] of model.namedTensors())
    if ((mod instanceof QLinear || mod instanceof QEmbedding) && local === "weight")
      qmods.set(n, { q: { weight: t, scale: mod.weight_scale }, perm: mod instanceof QLinear ? mod.outPerm : null });
    else if (mod instanceof SplitKvB && (local === "k_b" || local === "v_b") && SplitKvB.isQuantized(t))
      qmods.set(n, { q: { weight: t, scale: mod[`${local}_scale`] }, perm: null });
  const tensors: { name: string; tensor: Tensor }[] = [];
  const quant = QUANT_KINDS.includes(dtype as QuantKind);
  const putQ = (name: string, q: QWeight) => {
    tensors.push({ name, tensor: q.weight.contiguous() });
    if (q.scale) tensors.push({ name: scaleName(name), tensor: q.scale.contiguous() });
  };
  const put = (name: string, t: Src, keepF32 = false): void => {
    if (isQ(t)) {
      const K = t.q.weight.shape[t.q.weight.ndim - 1];
      const c = quant && !keepF32 ? chooseType(dtype as QuantKind, K) : null;
      if (c && qkindOf(t.q.weight) === c.type) {
        if (c.reason) o.onFallback?.(name, c.type, c.reason);
        putQ(name, qInOrder(t));
        return;
      }
      put(name, dequantizeWeight(qInOrder(t)), keepF32);
      return;
    }
    if (t.ndim === 1 || keepF32 || !quant) {
      tensors.push({ name, tensor: contiguous((t.ndim === 1 || keepF32 ? t.to("f32") : t.to(dtype as "f32")).detach()) });
      return;
    }
    const c = chooseType(dtype as QuantKind, t.shape[t.ndim - 1]);
    if (c.reason) o.onFallback?.(name, c.type, c.reason);
    if (c.type === "f16") tensors.push({ name, tensor: contiguous(t.to("f16").detach()) });
    else putQ(name, quantizeWeight(contiguous(t.detach()), c.type));
  };
  const w = (n: string): Src => {
    const q = qmods.get(n);
    if (q) return q;
    const t = sd.get(n); if (!t) throw new FathomError("gguf", `model has no tensor '${n}'`); return t;
  };
  const wf = (n: string): Tensor => { const t = w(n); return isQ(t) ? dequantizeWeight(qInOrder(t)) : t; };
  const exportQK = (t: Src, heads: number): Src => {
    if (!isQ(t)) return permuteQK(t, heads);
    const P = qkIndex(t.q.weight.shape[0], heads, false);
    return { q: t.q, perm: t.perm ? P.map((r) => t.perm![r]) : P };
  };
  const stack = (parts: Src[]): Src => (parts.every(isQ) ? { q: stackQ(parts.map((p) => qInOrder(p as QSrc))), perm: null }
    : concat(parts.map((p) => (isQ(p) ? dequantizeWeight(qInOrder(p)) : p).unsqueeze(0)), 0));
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
      const qk = (t: Src, heads: number) => (mt === "llama" ? exportQK(t, heads) : t);
      put(b + "attn_norm.weight", w(p + "input_layernorm.weight"));
      put(b + "attn_q.weight", qk(w(p + "self_attn.q_proj.weight"), c.num_attention_heads));
      put(b + "attn_k.weight", qk(w(p + "self_attn.k_proj.weight"), c.num_key_value_heads));
      put(b + "attn_v.weight", w(p + "self_attn.v_proj.weight"));
      if (c.attention_bias) {
        put(b + "attn_q.bias", qk(wf(p + "self_attn.q_proj.bias"), c.num_attention_heads));
        put(b + "attn_k.bias", qk(wf(p + "self_attn.k_proj.bias"), c.num_key_value_heads));
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
      if (sd.has(p + "self_attn.kv_b_proj.k_b")) {                                   // a SplitKvB: its halves as they are
        put(b + "attn_k_b.weight", w(p + "self_attn.kv_b_proj.k_b"));
        put(b + "attn_v_b.weight", w(p + "self_attn.kv_b_proj.v_b"));
      } else {
        const kvb = reshape(wf(p + "self_attn.kv_b_proj.weight"), [H, dn + dv, r]);
        put(b + "attn_k_b.weight", transpose(slice(kvb, 1, 0, dn), 1, 2));          // (H, r, dn)
        put(b + "attn_v_b.weight", slice(kvb, 1, dn));                                // (H, dv, r)
      }
      put(b + "attn_output.weight", w(p + "self_attn.o_proj.weight"));
      put(b + "ffn_norm.weight", w(p + "post_attention_layernorm.weight"));
      if (isMoeLayer(c, i)) {
        put(b + "ffn_gate_inp.weight", w(p + "mlp.gate.weight"), true);
        if (c.topk_method === "noaux_tc") put(b + "exp_probs_b.bias", w(p + "mlp.gate.e_score_correction_bias"));
        for (const [g, hf] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) {
          put(`${b}ffn_${g}_exps.weight`, stack(Array.from({ length: c.n_routed_experts }, (_, e) => w(`${p}mlp.experts.${e}.${hf}.weight`))));   // (E, out, in)
          if (c.n_shared_experts) put(`${b}ffn_${g}_shexp.weight`, w(`${p}mlp.shared_experts.${hf}.weight`));
        }
      } else for (const [g, hf] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) put(`${b}ffn_${g}.weight`, w(`${p}mlp.${hf}.weight`));
    }
  } else throw new FathomError("gguf", `cannot export model_type '${mt}' to GGUF`);
  put("output_norm.weight", w("model.norm.weight"));
  if (!model.tieWordEmbeddings) put("output.weight", w("lm_head.weight"));
  meta.splice(1, 0, str("general.name", o.name ?? "fathom-export"));
  if (dtype in FILE_TYPE) meta.splice(2, 0, u32("general.file_type", FILE_TYPE[dtype]));
  else meta.push(str("fathom.quantization", dtype));
  if (o.metadata) for (const e of o.metadata) if (!meta.some((m) => m.key === e.key)) meta.push(e);
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

/**
 * A model from a GGUF file. Quantized matrices (Q8_0, Q4_0, Q4_K; I8 with a `.scale` tensor) stay quantized, viewing the
 * mapped file: their Linear layers become QLinear (the embedding a QEmbedding), MLA's attn_k_b/attn_v_b a SplitKvB
 * (multiplied per head as stored, as llama.cpp does). Tensors the model needs dense (norms, the router) are dequantized. `dtype` converts the float tensors only.
 */
export function loadGGUF(path: string, o: GGUFLoadOptions = {}): CausalLM {
  const f = GGUFFile.open(path);
  const raw = configFromGGUF(f);
  const model = modelFromConfig(raw, `${path} (GGUF metadata)`);
  const names = new Set(f.tensors.map((t) => t.name));
  const read = (n: string): Src | undefined => {
    if (!names.has(n)) return undefined;
    const info = f.tensorInfo(n);
    if (info.typeName === "F32" || info.typeName === "F16" || info.typeName === "BF16") return f.get(n);
    const at = { offset: info.fileOffset, bytes: info.byteSize };
    if (info.typeName === "Q8_0" || info.typeName === "Q4_0" || info.typeName === "Q4_K") return { q: { weight: f.get(n), scale: null }, perm: null, at };
    if (info.typeName === "I8") {
      if (!names.has(scaleName(n))) throw new FormatError("gguf", `${path}: I8 tensor '${n}' has no '${scaleName(n)}' scale tensor`);
      return { q: { weight: f.get(n), scale: f.get(scaleName(n)).to("f32") }, perm: null, at };
    }
    return f.dequantize(n);
  };
  const need = (n: string): Src => { const t = read(n); if (!t) throw new FormatError("gguf", `${path}: missing tensor '${n}'`); return t; };
  const needF = (n: string): Tensor => { const t = need(n); return isQ(t) ? dequantizeWeight(qInOrder(t)) : t; };
  const hf = new Map<string, Src>();
  const splits: { prefix: string; H: number; dn: number; dv: number; r: number; kb: Src; vb: Src }[] = [];
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
      const qk = (t: Src, heads: number): Src => (arch !== "llama" ? t : !isQ(t) ? unpermuteQK(t, heads)
        : { q: t.q, perm: qkIndex(t.q.weight.shape[0], heads, true), at: t.at });   // packed from the file's rows (outPerm reorders)
      hf.set(p + "self_attn.q_proj.weight", qk(need(b + "attn_q.weight"), H));
      hf.set(p + "self_attn.k_proj.weight", qk(need(b + "attn_k.weight"), Hkv));
      hf.set(p + "self_attn.v_proj.weight", need(b + "attn_v.weight"));
      if (names.has(b + "attn_q.bias")) {
        hf.set(p + "self_attn.q_proj.bias", qk(needF(b + "attn_q.bias"), H));
        hf.set(p + "self_attn.k_proj.bias", qk(needF(b + "attn_k.bias"), Hkv));
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
    if (names.has(b + "attn_kv_b.weight")) hf.set(p + "self_attn.kv_b_proj.weight", needF(b + "attn_kv_b.weight"));
    else {
      const kbS = need(b + "attn_k_b.weight"), vbS = need(b + "attn_v_b.weight");
      if (isQ(kbS) || isQ(vbS)) splits.push({ prefix: p + "self_attn.kv_b_proj", H, dn, dv, r, kb: kbS, vb: vbS });   // multiplied as stored
      else {
        const kb = transpose(kbS.float(), 1, 2);                                       // (H, dn, r)
        hf.set(p + "self_attn.kv_b_proj.weight", reshape(concat([contiguous(kb), vbS.float()], 1), [H * (dn + dv), r]));
      }
    }
    if (names.has(b + "ffn_gate_inp.weight")) {
      hf.set(p + "mlp.gate.weight", needF(b + "ffn_gate_inp.weight"));
      if (names.has(b + "exp_probs_b.bias")) hf.set(p + "mlp.gate.e_score_correction_bias", need(b + "exp_probs_b.bias"));
      for (const [g, n] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) {
        const stack = need(`${b}ffn_${g}_exps.weight`);
        const E = isQ(stack) ? stack.q.weight.shape[0] : stack.shape[0];
        for (let e = 0; e < E; e++) hf.set(`${p}mlp.experts.${e}.${n}.weight`, isQ(stack)
          ? { q: sliceQ(stack.q, e), perm: null, at: stack.at && { offset: stack.at.offset + (e * stack.at.bytes) / E, bytes: stack.at.bytes / E } }
          : reshape(slice(stack, 0, e, e + 1), stack.shape.slice(1)));
        if (names.has(`${b}ffn_${g}_shexp.weight`)) hf.set(`${p}mlp.shared_experts.${n}.weight`, need(`${b}ffn_${g}_shexp.weight`));
      }
    } else for (const [g, n] of [["gate", "gate_proj"], ["up", "up_proj"], ["down", "down_proj"]]) hf.set(`${p}mlp.${n}.weight`, need(`${b}ffn_${g}.weight`));
  }
  // Quantized matrices are packed from a read copy of their bytes. When the backend's quantPack copies its input, one
  // buffer (as large as the largest read) serves every tensor; else each read is a buffer of its own that the packed
  // weight keeps. (A buffer per tensor that only waits for the collector would add ~12% of the file to peak memory.)
  const fd = openSync(path, "r");
  const reuse = getBackend().quantPackCopies === true;
  let scratch = new Uint8Array(0);
  const readAt = (at: { offset: number; bytes: number }): Uint8Array => {
    if (reuse && scratch.length < at.bytes) scratch = new Uint8Array(Math.max(at.bytes, maxRead(hf, splits)));
    const b = reuse ? scratch.subarray(0, at.bytes) : new Uint8Array(at.bytes);
    readSync(fd, b, 0, at.bytes, at.offset);
    return b;
  };
  const sd = new Map<string, Tensor>();
  // In a quantized file, f16 tensors are fallbacks of matrices whose rows do not fit a block: computed in f32.
  const quantized = [...hf.values()].some(isQ);
  for (const [name, t] of hf) {
    const dt = o.dtype ?? (quantized && (t as Tensor).dtype === "f16" ? "f32" : undefined);
    // In a quantized file the float tensors (norms, biases, fallbacks) are small: copied out of the mapping, so that
    // inference never faults in the mapped pages (nor their read-around) next to weights already packed in memory.
    if (!isQ(t)) { sd.set(name, dt && isFloat(t.dtype) ? t.to(dt).detach() : quantized ? t.clone().detach() : t); continue; }
    const q = installQuantized(model, name, t, readAt);
    if (!q) { sd.set(name, dequantizeWeight(qInOrder(t))); continue; }
    sd.set(name, q.weight);
    if (q.scale) sd.set(name + "_scale", q.scale);
  }
  for (const sp of splits) {
    const half = (t: Src): QWeight => (isQ(t) ? t.q : { weight: t, scale: null });      // float halves keep their dtype (f16: activations too)
    const mod = new SplitKvB(sp.H, sp.dn, sp.dv, sp.r, half(sp.kb), half(sp.vb));
    for (const [name, t] of [["k_b", sp.kb], ["v_b", sp.vb]] as const) {
      if (isQ(t) && t.at) for (let h = 0; h < sp.H; h++) mod.prepack(name, h, readAt({ offset: t.at.offset + (h * t.at.bytes) / sp.H, bytes: t.at.bytes / sp.H }));
      sd.set(`${sp.prefix}.${name}`, mod[name]);
      const sc = mod[`${name}_scale`];
      if (sc) sd.set(`${sp.prefix}.${name}_scale`, sc);
    }
    setModule(model, sp.prefix, mod);
  }
  closeSync(fd);
  model.loadStateDict(sd, { source: path, onProgress: o.onProgress });
  // the float matrices of a quantized file (fallbacks) multiply row-invariantly, as its quantized ones do
  if (quantized) for (const [, , m] of model.namedTensors()) if (m instanceof Linear) m.rowInvariant = true;
  return model;
}

/** The most bytes one prepack reads (an expert's or an MLA head's share of its stack, or a whole matrix). */
function maxRead(hf: Map<string, Src>, splits: { H: number; kb: Src; vb: Src }[]): number {
  let m = 0;
  for (const t of hf.values()) if (isQ(t) && t.at) m = Math.max(m, t.at.bytes);
  for (const sp of splits) for (const t of [sp.kb, sp.vb]) if (isQ(t) && t.at) m = Math.max(m, t.at.bytes / sp.H);
  return m;
}

function setModule(model: CausalLM, path: string, m: unknown): void {
  const segs = path.split(".");
  let parent = model as unknown as Record<string, unknown>;
  for (const seg of segs.slice(0, -1)) parent = parent[seg] as Record<string, unknown>;
  parent[segs[segs.length - 1]] = m;
}

/** Swaps the Linear (or Embedding) owning `name` ("….weight") for its quantized form; null if it is neither. */
function installQuantized(model: CausalLM, name: string, s: QSrc, readAt: (at: { offset: number; bytes: number }) => Uint8Array): QWeight | null {
  const path = name.replace(/\.weight$/, "").split(".");
  let parent = model as unknown as Record<string, unknown>;
  for (const seg of path.slice(0, -1)) parent = parent[seg] as Record<string, unknown>;
  const key = path[path.length - 1], cur = parent[key];
  if (cur instanceof Linear) {
    const q = new QLinear(cur.inFeatures, cur.outFeatures, s.q, cur.bias);
    q.outPerm = s.perm;
    if (s.at) q.prepack(readAt(s.at));
    parent[key] = q;
    return s.q;
  }
  if (cur instanceof Embedding) {
    const q = qInOrder(s);
    parent[key] = new QEmbedding(cur.num, cur.dim, q);
    if (model.tieWordEmbeddings) {
      const head = new QLinear(cur.dim, cur.num, q);
      if (s.at && !s.perm) head.prepack(readAt(s.at));
      (model as unknown as Record<string, unknown>).lm_head = head;
    }
    return q;
  }
  return null;
}
