// Tiny configs of each architecture, shared by the model, file-format and llama.cpp tests.
import { BYTE_TO_CHAR } from "../src/tokenizers/byte_level.js";

export const TINY_LLAMA = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 288, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000,
  rope_scaling: { type: "linear", factor: 2 }, tie_word_embeddings: false, bos_token_id: 286, eos_token_id: 287,
};

export const TINY_QWEN2 = {
  architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: 288, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000,
  tie_word_embeddings: false, bos_token_id: 286, eos_token_id: 287,
};

/** DeepSeek-V3 layout: q_lora, YaRN, sigmoid noaux_tc routing over groups, a dense first layer, shared experts, MTP. */
export const TINY_DEEPSEEK_V3 = {
  architectures: ["DeepseekV3ForCausalLM"], model_type: "deepseek_v3", vocab_size: 288, hidden_size: 64, intermediate_size: 96,
  moe_intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: 48, kv_lora_rank: 32,
  qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16, n_routed_experts: 8, n_shared_experts: 1, num_experts_per_tok: 2,
  n_group: 4, topk_group: 2, topk_method: "noaux_tc", scoring_func: "sigmoid", norm_topk_prob: true, routed_scaling_factor: 2.5,
  first_k_dense_replace: 1, moe_layer_freq: 1, num_nextn_predict_layers: 1, max_position_embeddings: 1024, rms_norm_eps: 1e-6,
  rope_theta: 10000, rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 256, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
  tie_word_embeddings: false, bos_token_id: 286, eos_token_id: 287,
};

/** DeepSeek-V2-Lite layout: plain q_proj, softmax greedy routing, two shared experts. */
export const TINY_DEEPSEEK_V2 = {
  architectures: ["DeepseekV2ForCausalLM"], model_type: "deepseek_v2", vocab_size: 288, hidden_size: 64, intermediate_size: 96,
  moe_intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, q_lora_rank: null, kv_lora_rank: 32,
  qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16, n_routed_experts: 6, n_shared_experts: 2, num_experts_per_tok: 2,
  topk_method: "greedy", scoring_func: "softmax", norm_topk_prob: false, routed_scaling_factor: 1.0, first_k_dense_replace: 1,
  max_position_embeddings: 512, rms_norm_eps: 1e-6, rope_theta: 10000, aux_loss_alpha: 0.001, seq_aux: true,
  rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 128, beta_fast: 32, beta_slow: 1, mscale: 0.707, mscale_all_dim: 0.707 },
  tie_word_embeddings: false, bos_token_id: 286, eos_token_id: 287,
};

export const TINY_CONFIGS = { llama: TINY_LLAMA, qwen2: TINY_QWEN2, deepseek_v2: TINY_DEEPSEEK_V2, deepseek_v3: TINY_DEEPSEEK_V3 };

/**
 * A small byte-level BPE tokenizer.json with exactly `vocab` tokens: 256 byte tokens, merges of common English
 * pairs, and two special tokens at the end (<|begin_of_text|> as BOS, <|endoftext|> as EOS), for GGUF export and
 * llama.cpp cross-checks of tiny models.
 */
export function tinyTokenizer(vocab = 288): { tokenizer: Record<string, unknown>; config: Record<string, unknown>; bos: number; eos: number } {
  const u = BYTE_TO_CHAR;
  const vocabMap: Record<string, number> = {};
  u.forEach((c, i) => { vocabMap[c] = i; });
  const merges: string[] = [];
  const pairs = ["t h", "th e", "Ġ t", "Ġt he", "i n", "a n", "e r", "o n", "Ġ a", "r e", "a t", "e n", "o r", "e s", "Ġ s", "i s", "Ġ w", "e d",
    "Ġ o", "i t", "a r", "a l", "Ġ b", "Ġ c", "Ġ f", "o u", "Ġ m", "Ġ p", "l e", "i on"];
  let next = 256;
  for (const p of pairs) {
    if (next >= vocab - 2) break;
    const merged = p.replace(" ", "");
    if (merged in vocabMap) continue;
    merges.push(p);
    vocabMap[merged] = next++;
  }
  while (next < vocab - 2) { const tok = `<extra_${next}>`; vocabMap[tok] = next++; }
  const bos = vocab - 2, eos = vocab - 1;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const tokenizer = {
    version: "1.0", truncation: null, padding: null,
    added_tokens: [special(bos, "<|begin_of_text|>"), special(eos, "<|endoftext|>")],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ignore_merges: false, vocab: vocabMap, merges },
  };
  const config = { bos_token: "<|begin_of_text|>", eos_token: "<|endoftext|>", add_bos_token: true, add_eos_token: false,
    model_max_length: 1024, tokenizer_class: "PreTrainedTokenizerFast" };
  return { tokenizer, config, bos, eos };
}
