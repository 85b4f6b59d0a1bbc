// Tiny configs of each architecture, shared by the model, file-format and llama.cpp tests.
export const TINY_LLAMA = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 288, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000,
  rope_scaling: { type: "linear", factor: 2 }, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 1,
};

export const TINY_QWEN2 = {
  architectures: ["Qwen2ForCausalLM"], model_type: "qwen2", vocab_size: 288, hidden_size: 64, intermediate_size: 96, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256, rms_norm_eps: 1e-6, rope_theta: 10000,
  tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 1,
};

/** DeepSeek-V3 layout: q_lora, YaRN, sigmoid noaux_tc routing over groups, a dense first layer, shared experts, MTP. */
export const TINY_DEEPSEEK_V3 = {
  architectures: ["DeepseekV3ForCausalLM"], model_type: "deepseek_v3", vocab_size: 288, hidden_size: 64, intermediate_size: 96,
  moe_intermediate_size: 32, num_hidden_layers: 3, num_attention_heads: 4, num_key_value_heads: 4, q_lora_rank: 48, kv_lora_rank: 32,
  qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16, n_routed_experts: 8, n_shared_experts: 1, num_experts_per_tok: 2,
  n_group: 4, topk_group: 2, topk_method: "noaux_tc", scoring_func: "sigmoid", norm_topk_prob: true, routed_scaling_factor: 2.5,
  first_k_dense_replace: 1, moe_layer_freq: 1, num_nextn_predict_layers: 1, max_position_embeddings: 1024, rms_norm_eps: 1e-6,
  rope_theta: 10000, rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 256, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 },
  tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 1,
};

/** DeepSeek-V2-Lite layout: plain q_proj, softmax greedy routing, two shared experts. */
export const TINY_DEEPSEEK_V2 = {
  architectures: ["DeepseekV2ForCausalLM"], model_type: "deepseek_v2", vocab_size: 288, hidden_size: 64, intermediate_size: 96,
  moe_intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4, q_lora_rank: null, kv_lora_rank: 32,
  qk_nope_head_dim: 16, qk_rope_head_dim: 8, v_head_dim: 16, n_routed_experts: 6, n_shared_experts: 2, num_experts_per_tok: 2,
  topk_method: "greedy", scoring_func: "softmax", norm_topk_prob: false, routed_scaling_factor: 1.0, first_k_dense_replace: 1,
  max_position_embeddings: 512, rms_norm_eps: 1e-6, rope_theta: 10000, aux_loss_alpha: 0.001, seq_aux: true,
  rope_scaling: { type: "yarn", factor: 4, original_max_position_embeddings: 128, beta_fast: 32, beta_slow: 1, mscale: 0.707, mscale_all_dim: 0.707 },
  tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 1,
};

export const TINY_CONFIGS = { llama: TINY_LLAMA, qwen2: TINY_QWEN2, deepseek_v2: TINY_DEEPSEEK_V2, deepseek_v3: TINY_DEEPSEEK_V3 };
