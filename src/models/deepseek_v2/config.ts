// config.json of model_type "deepseek_v2" (V2, V2-Lite, V2.5, Coder-V2) and "deepseek_v3" (V3, R1, V3.1): MLA and
// DeepSeekMoE fields with transformers' defaults for each type.
import { ConfigReader, type RawConfig } from "../config.js";
import type { RopeScaling } from "../../nn/rope.js";
import { yarnGetMscale } from "../../nn/rope.js";
import type { MLAConfig } from "../../nn/mla.js";
import type { MoEConfig } from "../../nn/moe.js";

export interface DeepseekV2Config extends MLAConfig, MoEConfig {
  model_type: "deepseek_v2" | "deepseek_v3";
  vocab_size: number; intermediate_size: number; num_hidden_layers: number; num_key_value_heads: number;
  max_position_embeddings: number; rope_theta: number; rope_scaling: RopeScaling | null;
  first_k_dense_replace: number; moe_layer_freq: number; num_nextn_predict_layers: number;
  tie_word_embeddings: boolean; initializer_range: number;
  bos_token_id: number | null; eos_token_id: number | number[] | null;
}

export function parseDeepseekConfig(raw: RawConfig, source: string, modelType: "deepseek_v2" | "deepseek_v3"): DeepseekV2Config {
  const r = new ConfigReader(raw, source);
  const v3 = modelType === "deepseek_v3";
  const H = r.int("num_attention_heads", undefined, 1);
  const c: DeepseekV2Config = {
    model_type: modelType,
    vocab_size: r.int("vocab_size", undefined, 1), hidden_size: r.int("hidden_size", undefined, 1),
    intermediate_size: r.int("intermediate_size", undefined, 1), moe_intermediate_size: r.int("moe_intermediate_size", 1, 1),
    num_hidden_layers: r.int("num_hidden_layers", undefined, 1), num_attention_heads: H, num_key_value_heads: r.int("num_key_value_heads", H, 1),
    q_lora_rank: r.intOrNull("q_lora_rank"), kv_lora_rank: r.int("kv_lora_rank", 512, 1),
    qk_nope_head_dim: r.int("qk_nope_head_dim", 128, 0), qk_rope_head_dim: r.int("qk_rope_head_dim", 64, 2), v_head_dim: r.int("v_head_dim", 128, 1),
    n_routed_experts: r.int("n_routed_experts", 0, 0), n_shared_experts: r.intOrNull("n_shared_experts"),
    num_experts_per_tok: r.int("num_experts_per_tok", 1, 1),
    topk_method: r.str("topk_method", v3 ? "noaux_tc" : "greedy", ["greedy", "group_limited_greedy", "noaux_tc"]),
    n_group: r.intOrNull("n_group", 1), topk_group: r.intOrNull("topk_group", 1),
    scoring_func: r.str("scoring_func", v3 ? "sigmoid" : "softmax", ["softmax", "sigmoid"]),
    norm_topk_prob: r.bool("norm_topk_prob", v3), routed_scaling_factor: r.num("routed_scaling_factor", 1),
    aux_loss_alpha: r.num("aux_loss_alpha", 0.001), seq_aux: r.bool("seq_aux", true),
    first_k_dense_replace: r.int("first_k_dense_replace", 0), moe_layer_freq: r.int("moe_layer_freq", 1, 1),
    num_nextn_predict_layers: r.int("num_nextn_predict_layers", 0),
    max_position_embeddings: r.int("max_position_embeddings", 2048, 1), rms_norm_eps: r.num("rms_norm_eps", 1e-6),
    rope_theta: r.num("rope_theta", 10000), rope_scaling: r.obj<RopeScaling>("rope_scaling"),
    attention_bias: r.bool("attention_bias", false), tie_word_embeddings: r.bool("tie_word_embeddings", false),
    initializer_range: r.num("initializer_range", 0.02),
    bos_token_id: r.intOrNull("bos_token_id"), eos_token_id: (raw.eos_token_id as number | number[] | undefined) ?? null,
  };
  r.check(c.qk_rope_head_dim % 2 === 0, `qk_rope_head_dim (${c.qk_rope_head_dim}) must be even`);
  if (c.n_routed_experts) {
    r.check(c.num_experts_per_tok <= c.n_routed_experts, `num_experts_per_tok (${c.num_experts_per_tok}) exceeds n_routed_experts (${c.n_routed_experts})`);
    if (c.topk_method !== "greedy") {
      r.check(c.n_routed_experts % (c.n_group ?? 1) === 0, `n_routed_experts (${c.n_routed_experts}) must be divisible by n_group (${c.n_group})`);
      r.check((c.topk_group ?? 1) <= (c.n_group ?? 1), `topk_group (${c.topk_group}) exceeds n_group (${c.n_group})`);
    }
  }
  return c;
}

/** Softmax scale: (qk_nope + qk_rope)^-½, times mscale² under YaRN with mscale_all_dim (transformers, DeepSeek reference). */
export function mlaSoftmaxScale(c: DeepseekV2Config): number {
  let scale = 1 / Math.sqrt(c.qk_nope_head_dim + c.qk_rope_head_dim);
  const rs = c.rope_scaling;
  if (rs && (rs.rope_type ?? rs.type) === "yarn" && rs.mscale_all_dim) {
    const m = yarnGetMscale(rs.factor ?? 1, rs.mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

/** Whether layer i uses the MoE block (else the dense MLP). */
export function isMoeLayer(c: DeepseekV2Config, i: number): boolean {
  return c.n_routed_experts > 0 && i >= c.first_k_dense_replace && i % c.moe_layer_freq === 0;
}
