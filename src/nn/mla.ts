// Multi-head Latent Attention (DeepSeek-V2/V3). Two forms over the same weights:
//  - expanded (training, prefill): keys and values are decompressed per head from the latent;
//  - absorbed (inference with a cache): W_UK folds into the query and W_UV into the output, so the cache holds only
//    the normalised latent c (kv_lora_rank) and the roped key k_pe (qk_rope_head_dim) per token: 576 values for V3.
// The rope part rotates adjacent pairs (2i, 2i+1), as the released weights expect. Shapes: (B, T, H, d) until the
// attention call, which takes (B, H, T, d).
import { Tensor } from "../core/tensor.js";
import { rope } from "../core/fused/rope.js";
import { sdpa, type SdpaOptions } from "../core/fused/sdpa.js";
import { concat, expand } from "../core/ops/movement.js";
import { matmul } from "../core/ops/linalg.js";
import { Module } from "./module.js";
import { Linear, RMSNorm } from "./layers.js";
import { appendCache, segmentsEnd, type AttentionContext, type LayerCache, type Segment } from "./attention.js";
import type { RotaryEmbedding } from "./rope.js";

export interface MLAConfig {
  hidden_size: number; num_attention_heads: number; q_lora_rank: number | null; kv_lora_rank: number;
  qk_nope_head_dim: number; qk_rope_head_dim: number; v_head_dim: number; attention_bias?: boolean; rms_norm_eps: number;
}

/**
 * kv_b_proj as two per-head products instead of a dense Linear (quant/qlinear.ts SplitKvB: a quantized GGUF's attn_k_b and
 * attn_v_b, multiplied as llama.cpp does). With these the absorbed form is used with or without a cache.
 */
export interface LatentProducts {
  /** q_nope (B, H, T, dn) → (B, H, T, r) */
  absorbQuery(qNope: Tensor): Tensor;
  /** latent attention output (B, H, T, r) → (B, H, T, dv) */
  expandValue(oLat: Tensor): Tensor;
}
const isLatentProducts = (m: unknown): m is LatentProducts => typeof (m as Partial<LatentProducts>).absorbQuery === "function";

export class MultiHeadLatentAttention extends Module {
  declare q_proj: Linear | undefined;
  declare q_a_proj: Linear | undefined;
  declare q_a_layernorm: RMSNorm | undefined;
  declare q_b_proj: Linear | undefined;
  declare kv_a_proj_with_mqa: Linear;
  declare kv_a_layernorm: RMSNorm;
  declare kv_b_proj: Linear | (Module & LatentProducts);
  declare o_proj: Linear;
  readonly H: number; readonly dn: number; readonly dr: number; readonly dv: number; readonly r: number;
  /** Use the absorbed form whenever a cache is given (the cache then holds latents). */
  absorb = true;

  constructor(c: MLAConfig, readonly rotary: RotaryEmbedding, readonly scale: number) {
    super();
    this.H = c.num_attention_heads; this.dn = c.qk_nope_head_dim; this.dr = c.qk_rope_head_dim; this.dv = c.v_head_dim; this.r = c.kv_lora_rank;
    const qk = this.dn + this.dr, D = c.hidden_size, bias = !!c.attention_bias;
    if (c.q_lora_rank) {
      this.child("q_a_proj", new Linear(D, c.q_lora_rank, bias));
      this.child("q_a_layernorm", new RMSNorm(c.q_lora_rank, c.rms_norm_eps));
      this.child("q_b_proj", new Linear(c.q_lora_rank, this.H * qk));
    } else this.child("q_proj", new Linear(D, this.H * qk));
    this.child("kv_a_proj_with_mqa", new Linear(D, this.r + this.dr, bias));
    this.child("kv_a_layernorm", new RMSNorm(this.r, c.rms_norm_eps));
    this.child("kv_b_proj", new Linear(this.r, this.H * (this.dn + this.dv)));
    this.child("o_proj", new Linear(this.H * this.dv, D, bias));
  }

  /** Per-head query (B, T, H, dn + dr), split into its nope and rope parts (rope applied). */
  private query(x: Tensor, cos: Tensor, sin: Tensor, pos: Tensor): { qNope: Tensor; qPe: Tensor } {
    const [B, T] = x.shape;
    const q = (this.q_proj ? this.q_proj.forward(x)
      : this.q_b_proj!.forward(this.q_a_layernorm!.forward(this.q_a_proj!.forward(x)))).reshape(B, T, this.H, this.dn + this.dr);
    const qNope = q.slice(3, 0, this.dn);
    const qPe = rope(q.slice(3, this.dn), cos, sin, pos, { interleaved: true });
    return { qNope, qPe };
  }

  forward(x: Tensor, ctx: AttentionContext, cache?: LayerCache): Tensor {
    if (ctx.segments) return this.forwardRagged(x, ctx.positions, ctx.segments);
    const [B, T] = x.shape;
    const { H, dn, dr, dv, r } = this;
    const { cos, sin } = this.rotary.tables(ctx.pastLength + T);
    const pos = ctx.positions.reshape(ctx.positions.shape[0], T, 1);
    const { qNope, qPe } = this.query(x, cos, sin, pos);                            // (B, T, H, dn), (B, T, H, dr)
    const ckv = this.kv_a_proj_with_mqa.forward(x);                                 // (B, T, r + dr)
    const c = this.kv_a_layernorm.forward(ckv.slice(2, 0, r));                      // (B, T, r) normalised latent
    const kPe = rope(ckv.slice(2, r).reshape(B, T, 1, dr), cos, sin, pos, { interleaved: true });   // (B, T, 1, dr)
    const opts = { causal: true, qOffset: ctx.pastLength, mask: ctx.mask, scale: this.scale };

    if (isLatentProducts(this.kv_b_proj) || (cache && this.absorb)) {
      // Absorbed form: score = (W_UKᵀ q_nope)·c + q_pe·k_pe ; out_h = W_UV (Σ p c).
      const p = this.latentProducts();
      const qCat = concat([p.absorbQuery(qNope.permute(0, 2, 1, 3)), qPe.permute(0, 2, 1, 3)], 3).contiguous();   // (B, H, T, r + dr)
      const ckpe = concat([c.reshape(B, 1, T, r), kPe.permute(0, 2, 1, 3)], 3);       // (B, 1, T, r + dr)
      const o = p.expandValue(this.latentAttend(qCat, ckpe, opts, cache));           // (B, H, T, dv)
      return this.o_proj.forward(o.permute(0, 2, 1, 3).reshape(B, T, H * dv));
    }
    // Expanded form.
    const kv = (this.kv_b_proj as Linear).forward(c).reshape(B, T, H, dn + dv);
    const q = concat([qNope, qPe], 3).permute(0, 2, 1, 3).contiguous();            // (B, H, T, dn + dr)
    const k = concat([kv.slice(3, 0, dn), expand(kPe, [B, T, H, dr])], 3).permute(0, 2, 1, 3).contiguous();
    const v = kv.slice(3, dn).permute(0, 2, 1, 3).contiguous();                    // (B, H, T, dv)
    const kAll = appendCache(cache, "k", k), vAll = appendCache(cache, "v", v);
    const o = sdpa(q, kAll, vAll, opts);                                           // (B, H, T, dv)
    return this.o_proj.forward(o.permute(0, 2, 1, 3).reshape(B, T, H * dv));
  }

  /**
   * Ragged batch (see AttentionContext.segments), always in the absorbed form: x (1, N, D); projections and the
   * W_UK / W_UV products run on all N tokens, the latent-cache append and attention per segment.
   */
  private forwardRagged(x: Tensor, positions: Tensor, segs: readonly Segment[]): Tensor {
    const N = x.shape[1];
    const { H, dr, dv, r } = this;
    const { cos, sin } = this.rotary.tables(segmentsEnd(segs));
    const pos = positions.reshape(1, N, 1);
    const { qNope, qPe } = this.query(x, cos, sin, pos);                            // (1, N, H, dn), (1, N, H, dr)
    const ckv = this.kv_a_proj_with_mqa.forward(x);                                 // (1, N, r + dr)
    const c = this.kv_a_layernorm.forward(ckv.slice(2, 0, r));                      // (1, N, r)
    const kPe = rope(ckv.slice(2, r).reshape(1, N, 1, dr), cos, sin, pos, { interleaved: true });   // (1, N, 1, dr)
    const p = this.latentProducts();
    const qCat = concat([p.absorbQuery(qNope.permute(0, 2, 1, 3)), qPe.permute(0, 2, 1, 3)], 3);    // (1, H, N, r + dr)
    const ckpe = concat([c.reshape(1, 1, N, r), kPe.permute(0, 2, 1, 3)], 3);          // (1, 1, N, r + dr)
    const outs = segs.map((s) => {
      const e = s.start + s.length, opts = { causal: true, qOffset: s.pastLength, scale: this.scale };
      return this.latentAttend(qCat.slice(2, s.start, e).contiguous(), ckpe.slice(2, s.start, e), opts, s.cache);   // (1, H, len, r)
    });
    const o = p.expandValue(outs.length === 1 ? outs[0] : concat(outs, 2));          // (1, H, N, dv)
    return this.o_proj.forward(o.permute(0, 2, 1, 3).reshape(1, N, H * dv));
  }

  /** W_UK and W_UV as products: a quantized file's per-head attn_k_b / attn_v_b (as llama.cpp multiplies), or the dense kv_b_proj. */
  private latentProducts(): LatentProducts {
    if (isLatentProducts(this.kv_b_proj)) return this.kv_b_proj;
    const { H, dn, dv, r } = this;
    const wkv = (this.kv_b_proj as Linear).weight.reshape(H, dn + dv, r);
    return {
      absorbQuery: (qNope) => matmul(qNope, wkv.slice(1, 0, dn)),                    // W_UK (H, dn, r)
      expandValue: (oLat) => matmul(oLat, wkv.slice(1, dn).transpose(1, 2)),         // W_UV (H, dv, r)
    };
  }

  /**
   * Attention over the latent: [c | k_pe] rows (B, 1, T, r + dr) are cached together under "k", so the keys are a view
   * of one buffer and the values its first r columns (no per-step concat of the cache). qCat (B, H, T, r + dr) → (B, H, T, r).
   */
  private latentAttend(qCat: Tensor, ckpe: Tensor, opts: SdpaOptions, cache?: LayerCache): Tensor {
    const kAll = cache ? appendCache(cache, "k", ckpe) : ckpe;
    return sdpa(qCat, kAll, kAll.slice(3, 0, this.r), opts);
  }
}
