// The decoder every supported architecture shares: embeddings → pre-norm layers (attention, then MLP or MoE, each
// with a residual) → final norm → lm_head. Architectures differ only in the attention and feed-forward modules they
// put in each layer (llama/qwen2: GQA + SwiGLU; deepseek_v2/v3: MLA + DeepSeekMoE).
import { Tensor } from "../core/tensor.js";
import { arange } from "../core/ops/create.js";
import { noGrad } from "../core/autograd.js";
import { Module } from "../nn/module.js";
import { Embedding, Linear, RMSNorm } from "../nn/layers.js";
import { KVCache, type AttentionContext, type KVCacheOptions, type LayerCache } from "../nn/attention.js";
import { FathomError } from "../core/errors.js";
import { indexSelect } from "../core/ops/index_ops.js";
import { allocate } from "../core/dtype.js";
import { StepArena } from "../core/arena.js";
import type { RawConfig } from "./config.js";

export interface AttentionModule extends Module { forward(x: Tensor, ctx: AttentionContext, cache?: LayerCache): Tensor }
export interface FeedForward extends Module { forward(x: Tensor): Tensor }

export class DecoderLayer extends Module {
  declare input_layernorm: RMSNorm;
  declare self_attn: AttentionModule;
  declare post_attention_layernorm: RMSNorm;
  declare mlp: FeedForward;
  constructor(hidden: number, eps: number, attn: AttentionModule, mlp: FeedForward) {
    super();
    this.child("input_layernorm", new RMSNorm(hidden, eps));
    this.child("self_attn", attn);
    this.child("post_attention_layernorm", new RMSNorm(hidden, eps));
    this.child("mlp", mlp);
  }
  forward(x: Tensor, ctx: AttentionContext, cache?: LayerCache): Tensor {
    const h = x.add(this.self_attn.forward(this.input_layernorm.forward(x), ctx, cache));
    return h.add(this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

export class DecoderModel extends Module {
  declare embed_tokens: Embedding;
  declare layers: Module[];
  declare norm: RMSNorm;
  constructor(vocab: number, hidden: number, eps: number, layers: DecoderLayer[]) {
    super();
    this.child("embed_tokens", new Embedding(vocab, hidden));
    this.child("layers", layers);
    this.child("norm", new RMSNorm(hidden, eps));
  }
}

export interface ForwardOptions {
  cache?: KVCache;
  /** Extra attention mask broadcastable to (B, H, T, past + T): boolean (true = attend) or additive. */
  mask?: Tensor | null;
  /** Positions (i32, (B or 1, T)); default past … past + T − 1. */
  positions?: Tensor;
}

/** One sequence of a ragged batch: its new tokens and its own batch-1 cache (they continue what it holds). */
export interface RaggedSequence { ids: readonly number[]; cache: KVCache }

export interface RaggedOptions {
  /** Which sequences need last-position logits (default all); the rest only fill their caches. */
  logitsFor?: readonly number[];
  /** Also return the final hidden states (1, N, D) of all new tokens (embeddings). */
  hidden?: boolean;
}

export interface RaggedResult {
  /** Last-position logits, (k, vocab), row i for sequence logitsFor[i]. */
  logits: Tensor | null;
  /** Final hidden states (1, N, D) after the last norm, sequences laid end to end. */
  hidden?: Tensor;
}

/** What `fathom info` reports. */
export interface ModelInfo {
  architecture: string; model_type: string; parameters: number; activated_parameters: number; dtype: string;
  context_length: number; layers: number; hidden_size: number; vocab_size: number;
  kv_cache_bytes_per_token: number; mha_kv_cache_bytes_per_token?: number;
}

export abstract class CausalLM extends Module {
  declare model: DecoderModel;
  declare lm_head: Linear;
  abstract readonly modelType: string;
  abstract readonly architecture: string;
  /** config.json as read (unknown keys kept, so saving writes them back). */
  abstract readonly rawConfig: RawConfig;
  readonly tieWordEmbeddings: boolean;

  constructor(model: DecoderModel, vocab: number, hidden: number, tie: boolean) {
    super();
    this.child("model", model);
    this.tieWordEmbeddings = tie;
    const head = new Linear(hidden, vocab);
    if (tie) head.weight = model.embed_tokens.weight;          // shared, and not saved twice
    else this.child("lm_head", head);
    (this as { lm_head: Linear }).lm_head = head;
  }

  get layers(): DecoderLayer[] { return this.model.layers as DecoderLayer[]; }

  /** Final hidden states (B, T, D) after the last norm. */
  hidden(ids: Tensor, o: ForwardOptions = {}): Tensor {
    const T = ids.shape[1];
    const past = o.cache?.length ?? 0;
    const positions = o.positions ?? arange(past, past + T).reshape(1, T);
    const ctx: AttentionContext = { positions, pastLength: past, mask: o.mask };
    let h = this.model.embed_tokens.forward(ids);
    this.layers.forEach((layer, i) => { h = layer.forward(h, ctx, o.cache?.layers[i]); });
    if (o.cache) o.cache.length += T;
    return this.model.norm.forward(h);
  }

  /** Logits (B, T, vocab) for token ids (B, T). With a cache, ids are the new tokens after what it holds. */
  forward(ids: Tensor, o: ForwardOptions = {}): Tensor {
    if (this.tieWordEmbeddings) this.lm_head.weight = this.model.embed_tokens.weight;
    return this.lm_head.forward(this.hidden(ids, o));
  }

  /**
   * One forward pass over several sequences, each with its own cache and length: all new tokens are flattened to
   * (1, N, D), so every projection reads its weights once per step; only the cache append and attention run per
   * sequence. Positions continue each cache. Inference only (use under noGrad).
   */
  forwardRagged(seqs: readonly RaggedSequence[], o: RaggedOptions = {}): RaggedResult {
    if (!seqs.length || seqs.some((s) => s.ids.length === 0)) throw new FathomError("forwardRagged", "every sequence needs at least one new token");
    if (this.tieWordEmbeddings) this.lm_head.weight = this.model.embed_tokens.weight;
    const N = seqs.reduce((a, s) => a + s.ids.length, 0);
    const ids = allocate("i32", N) as Int32Array, pos = allocate("i32", N) as Int32Array;
    const segs: { start: number; length: number; pastLength: number }[] = [];
    let at = 0;
    for (const s of seqs) {
      if (s.cache.layers.length !== this.layers.length) throw new FathomError("forwardRagged", `cache has ${s.cache.layers.length} layers, model ${this.layers.length}`);
      const past = s.cache.length;
      for (let i = 0; i < s.ids.length; i++) { ids[at + i] = s.ids[i]; pos[at + i] = past + i; }
      segs.push({ start: at, length: s.ids.length, pastLength: past });
      at += s.ids.length;
    }
    const positions = new Tensor(pos, "i32", [1, N]);
    let h = this.model.embed_tokens.forward(new Tensor(ids, "i32", [1, N]));
    this.layers.forEach((layer, i) => {
      const ctx: AttentionContext = { positions, pastLength: 0, segments: segs.map((g, j) => ({ ...g, cache: seqs[j].cache.layers[i] })) };
      h = layer.forward(h, ctx);
    });
    seqs.forEach((s) => { s.cache.length += s.ids.length; });
    h = this.model.norm.forward(h);
    const want = o.logitsFor ?? seqs.map((_, i) => i);
    let logits: Tensor | null = null;
    if (want.length) {
      const rows = new Tensor(allocate("i32", want.length), "i32", [want.length]);
      want.forEach((i, k) => { rows.data[k] = segs[i].start + segs[i].length - 1; });
      logits = this.lm_head.forward(indexSelect(h, 1, rows)).reshape(want.length, -1);
    }
    return o.hidden ? { logits, hidden: h } : { logits };
  }

  /** A KV cache; `dtype` f32 (default), bf16 or q8_0 sets how keys and values are stored. */
  newCache(o: KVCacheOptions = {}): KVCache { return new KVCache(this.layers.length, o); }

  /**
   * Greedy decoding: the new ids and each one's log-probability (no sampling; see generate() for the knobs). Each step
   * runs in a step arena over a preallocated cache, so a warm step allocates no typed arrays.
   */
  generateGreedy(promptIds: number[], maxNewTokens: number, eos: number[] = []): { tokenIds: number[]; logprobs: number[] } {
    return noGrad(() => {
      const cache = this.newCache({ capacity: promptIds.length + maxNewTokens }), arena = new StepArena();
      const tokenIds: number[] = [], logprobs: number[] = [];
      let feed = promptIds;
      for (let step = 0; step < maxNewTokens; step++) {
        const next = arena.run(() => {
          const ids = allocate("i32", feed.length) as Int32Array;
          ids.set(feed);
          const logits = this.forward(new Tensor(ids, "i32", [1, feed.length]), { cache });
          const lp = logits.slice(1, logits.shape[1] - 1).reshape(-1).to("f32").logSoftmax(-1);
          const t = lp.argmax().item();
          logprobs.push(lp.buffer()[t]);
          return t;
        });
        tokenIds.push(next);
        if (eos.includes(next)) break;
        feed = [next];
      }
      return { tokenIds, logprobs };
    });
  }

  abstract info(): ModelInfo;
}
