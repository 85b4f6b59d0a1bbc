// DeepseekV2ForCausalLM / DeepseekV3ForCausalLM: MLA attention, DeepSeekMoE feed-forward after the first
// first_k_dense_replace dense layers, YaRN RoPE on the rope part, and (V3) multi-token-prediction modules stored as
// model.layers.{num_hidden_layers + k}.
import { Tensor } from "../../core/tensor.js";
import { concat } from "../../core/ops/movement.js";
import { arange } from "../../core/ops/create.js";
import { MultiHeadLatentAttention } from "../../nn/mla.js";
import { DeepseekMoE } from "../../nn/moe.js";
import { Embedding, Linear, MLP, RMSNorm } from "../../nn/layers.js";
import { Module } from "../../nn/module.js";
import { RotaryEmbedding } from "../../nn/rope.js";
import { CausalLM, DecoderLayer, DecoderModel, type ModelInfo } from "../decoder.js";
import type { RawConfig } from "../config.js";
import { isMoeLayer, mlaSoftmaxScale, parseDeepseekConfig, type DeepseekV2Config } from "./config.js";

class SharedHead extends Module {
  declare norm: RMSNorm;
  declare head: Linear;
  constructor(c: DeepseekV2Config) {
    super();
    this.child("norm", new RMSNorm(c.hidden_size, c.rms_norm_eps));
    this.child("head", new Linear(c.hidden_size, c.vocab_size));
  }
}

/** One multi-token-prediction depth: h' = eh_proj([enorm(emb(t_{i+k})); hnorm(h_i)]) → decoder block → shared head. */
export class MTPLayer extends DecoderLayer {
  declare enorm: RMSNorm;
  declare hnorm: RMSNorm;
  declare eh_proj: Linear;
  declare embed_tokens: Embedding;
  declare shared_head: SharedHead;
  constructor(c: DeepseekV2Config, attn: MultiHeadLatentAttention, mlp: DeepseekMoE | MLP) {
    super(c.hidden_size, c.rms_norm_eps, attn, mlp);
    this.child("enorm", new RMSNorm(c.hidden_size, c.rms_norm_eps));
    this.child("hnorm", new RMSNorm(c.hidden_size, c.rms_norm_eps));
    this.child("eh_proj", new Linear(2 * c.hidden_size, c.hidden_size));
    this.child("embed_tokens", new Embedding(c.vocab_size, c.hidden_size));
    this.child("shared_head", new SharedHead(c));
  }
}

export class DeepseekV2ForCausalLM extends CausalLM {
  readonly modelType: string;
  readonly architecture: string;
  readonly config: DeepseekV2Config;

  constructor(readonly rawConfig: RawConfig, source = "config.json", modelType: "deepseek_v2" | "deepseek_v3" = "deepseek_v2") {
    const c = parseDeepseekConfig(rawConfig, source, modelType);
    const rotary = new RotaryEmbedding(c.qk_rope_head_dim, c.rope_theta, c.rope_scaling, c.max_position_embeddings);
    const scale = mlaSoftmaxScale(c);
    const block = (i: number) => {
      const attn = new MultiHeadLatentAttention(c, rotary, scale);
      const mlp = isMoeLayer(c, i) ? new DeepseekMoE(c) : new MLP(c.hidden_size, c.intermediate_size);
      return { attn, mlp };
    };
    const layers: DecoderLayer[] = [];
    for (let i = 0; i < c.num_hidden_layers; i++) { const b = block(i); layers.push(new DecoderLayer(c.hidden_size, c.rms_norm_eps, b.attn, b.mlp)); }
    for (let k = 0; k < c.num_nextn_predict_layers; k++) { const b = block(c.num_hidden_layers + k); layers.push(new MTPLayer(c, b.attn, b.mlp)); }
    super(new DecoderModel(c.vocab_size, c.hidden_size, c.rms_norm_eps, layers), c.vocab_size, c.hidden_size, c.tie_word_embeddings);
    this.config = c;
    this.modelType = modelType;
    this.architecture = modelType === "deepseek_v3" ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM";
  }

  override get layers(): DecoderLayer[] { return (this.model.layers as DecoderLayer[]).slice(0, this.config.num_hidden_layers); }
  get mtpLayers(): MTPLayer[] { return (this.model.layers as DecoderLayer[]).slice(this.config.num_hidden_layers) as MTPLayer[]; }

  /** Sum of the MoE auxiliary losses of the last training-mode forward (V2), or null. */
  auxLoss(): Tensor | null {
    let total: Tensor | null = null;
    for (const l of this.layers) { const a = (l.mlp as DeepseekMoE).auxLoss; if (a) total = total ? total.add(a) : a; }
    return total;
  }

  /**
   * Multi-token prediction: logits of depth k (1-based) for ids (B, T) from the main model's final hidden states
   * (B, T, D). Depth k at position i predicts token i + k + 1; the result has T − k positions.
   */
  mtpLogits(hidden: Tensor, ids: Tensor): Tensor[] {
    const T = ids.shape[1];
    const out: Tensor[] = [];
    let h = hidden;
    this.mtpLayers.forEach((m, j) => {
      const k = j + 1, n = T - k;
      const e = m.enorm.forward(m.embed_tokens.forward(ids.slice(1, k, T)));         // (B, n, D) embeddings of t_{i+k}
      const hp = m.eh_proj.forward(concat([e, m.hnorm.forward(h.slice(1, 0, n))], 2));
      h = m.forward(hp, { positions: arange(0, n).reshape(1, n), pastLength: 0 });
      out.push(m.shared_head.head.forward(m.shared_head.norm.forward(h)));
    });
    return out;
  }

  info(): ModelInfo {
    const c = this.config;
    const bytes = this.model.embed_tokens.weight.dtype === "f32" ? 4 : 2;
    const mainParams = this.numParameters() - this.mtpLayers.reduce((a, m) => a + m.numParameters(), 0);
    const routedUnused = this.layers.reduce((a, l) => {
      const moe = l.mlp as DeepseekMoE;
      return moe.experts ? a + moe.experts[0].numParameters() * (c.n_routed_experts - c.num_experts_per_tok) : a;
    }, 0);
    return { architecture: this.architecture, model_type: this.modelType, parameters: mainParams, activated_parameters: mainParams - routedUnused,
      dtype: this.model.embed_tokens.weight.dtype, context_length: c.max_position_embeddings, layers: c.num_hidden_layers,
      hidden_size: c.hidden_size, vocab_size: c.vocab_size,
      kv_cache_bytes_per_token: c.num_hidden_layers * (c.kv_lora_rank + c.qk_rope_head_dim) * bytes,
      mha_kv_cache_bytes_per_token: c.num_hidden_layers * c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim + c.v_head_dim) * bytes };
  }
}

export class DeepseekV3ForCausalLM extends DeepseekV2ForCausalLM {
  constructor(rawConfig: RawConfig, source = "config.json") { super(rawConfig, source, "deepseek_v3"); }
}
