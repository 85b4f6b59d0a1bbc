// LlamaForCausalLM: DeepSeek-LLM, DeepSeek-Coder (linear RoPE scaling) and the Llama R1-distills.
// Qwen2 reuses it with biases on q/k/v (src/models/qwen2).
import { Attention } from "../../nn/attention.js";
import { MLP } from "../../nn/layers.js";
import { RotaryEmbedding } from "../../nn/rope.js";
import { CausalLM, DecoderLayer, DecoderModel, type ModelInfo } from "../decoder.js";
import type { RawConfig } from "../config.js";
import { parseLlamaConfig, type LlamaConfig } from "./config.js";

export class LlamaForCausalLM extends CausalLM {
  readonly modelType: string = "llama";
  readonly architecture: string = "LlamaForCausalLM";
  readonly config: LlamaConfig;

  constructor(readonly rawConfig: RawConfig, source = "config.json", config?: LlamaConfig) {
    const c = config ?? parseLlamaConfig(rawConfig, source);
    const rotary = new RotaryEmbedding(c.head_dim, c.rope_theta, c.rope_scaling, c.max_position_embeddings);
    const layers = Array.from({ length: c.num_hidden_layers }, () => new DecoderLayer(c.hidden_size, c.rms_norm_eps,
      new Attention(c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, rotary, c.attention_bias, c.o_proj_bias),
      new MLP(c.hidden_size, c.intermediate_size)));
    super(new DecoderModel(c.vocab_size, c.hidden_size, c.rms_norm_eps, layers), c.vocab_size, c.hidden_size, c.tie_word_embeddings);
    this.config = c;
  }

  info(): ModelInfo {
    const c = this.config;
    const bytes = this.model.embed_tokens.weight.dtype === "f32" ? 4 : 2;
    const kv = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * bytes;
    return { architecture: this.architecture, model_type: this.modelType, parameters: this.numParameters(), activated_parameters: this.numParameters(),
      dtype: this.model.embed_tokens.weight.dtype, context_length: c.max_position_embeddings, layers: c.num_hidden_layers,
      hidden_size: c.hidden_size, vocab_size: c.vocab_size, kv_cache_bytes_per_token: kv };
  }
}
