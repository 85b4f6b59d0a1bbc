// config.json of model_type "llama" (DeepSeek-LLM, DeepSeek-Coder, R1-Distill-Llama), with transformers' defaults.
import { ConfigReader, type RawConfig } from "../config.js";
import type { RopeScaling } from "../../nn/rope.js";

export interface LlamaConfig {
  vocab_size: number; hidden_size: number; intermediate_size: number; num_hidden_layers: number;
  num_attention_heads: number; num_key_value_heads: number; head_dim: number; max_position_embeddings: number;
  rms_norm_eps: number; rope_theta: number; rope_scaling: RopeScaling | null; tie_word_embeddings: boolean;
  attention_bias: boolean; /** derived: HF Llama puts the attention bias on o_proj too, Qwen2 does not */ o_proj_bias: boolean; mlp_bias: boolean; hidden_act: string; initializer_range: number;
  bos_token_id: number | null; eos_token_id: number | number[] | null;
}

export function parseLlamaConfig(raw: RawConfig, source: string, o: { qkvBias?: boolean } = {}): LlamaConfig {
  const r = new ConfigReader(raw, source);
  const H = r.int("num_attention_heads", undefined, 1), D = r.int("hidden_size", undefined, 1);
  const c: LlamaConfig = {
    vocab_size: r.int("vocab_size", undefined, 1), hidden_size: D, intermediate_size: r.int("intermediate_size", undefined, 1),
    num_hidden_layers: r.int("num_hidden_layers", undefined, 1), num_attention_heads: H,
    num_key_value_heads: r.int("num_key_value_heads", H, 1), head_dim: r.int("head_dim", Math.floor(D / H), 1),
    max_position_embeddings: r.int("max_position_embeddings", 2048, 1), rms_norm_eps: r.num("rms_norm_eps", 1e-6),
    rope_theta: r.num("rope_theta", 10000), rope_scaling: r.obj<RopeScaling>("rope_scaling"),
    tie_word_embeddings: r.bool("tie_word_embeddings", false), attention_bias: o.qkvBias ?? r.bool("attention_bias", false),
    o_proj_bias: o.qkvBias ? false : r.bool("attention_bias", false),
    mlp_bias: r.bool("mlp_bias", false), hidden_act: r.str("hidden_act", "silu", ["silu"]), initializer_range: r.num("initializer_range", 0.02),
    bos_token_id: r.intOrNull("bos_token_id"), eos_token_id: (raw.eos_token_id as number | number[] | undefined) ?? null,
  };
  r.check(c.num_attention_heads % c.num_key_value_heads === 0, `num_attention_heads (${H}) must be a multiple of num_key_value_heads (${c.num_key_value_heads})`);
  r.check(c.head_dim % 2 === 0, `head_dim (${c.head_dim}) must be even for rotary embeddings`);
  r.check(!c.mlp_bias, "mlp_bias = true is not supported");
  return c;
}
