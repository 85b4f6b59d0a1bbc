// Grouped-query attention (Llama / Qwen2 layout) with a KV cache, and the cache types shared by the models.
// Shapes: x (B, T, D) → q (B, H, T, hd), k/v (B, Hkv, T, hd); RoPE is applied in (B, T, H, hd) layout.
import { Tensor } from "../core/tensor.js";
import { rope } from "../core/fused/rope.js";
import { sdpa } from "../core/fused/sdpa.js";
import { concat } from "../core/ops/movement.js";
import { indexSelect } from "../core/ops/index_ops.js";
import { Module } from "./module.js";
import { Linear } from "./layers.js";
import type { RotaryEmbedding } from "./rope.js";

/** Per-layer cached keys/values (or, for MLA, the compressed latent and the rope key). */
export interface LayerCache { k?: Tensor; v?: Tensor }

/** A KV cache for one batch of sequences: one entry per layer and the number of positions already cached. */
export class KVCache {
  layers: LayerCache[];
  length = 0;
  constructor(numLayers: number) { this.layers = Array.from({ length: numLayers }, () => ({})); }
  /** Keeps rows `index` of every cached tensor, in that order (beam search follows its chosen beams). */
  reorder(index: number[]): void {
    const idx = new Tensor(Int32Array.from(index), "i32", [index.length]);
    for (const l of this.layers) for (const k of Object.keys(l) as (keyof LayerCache)[]) if (l[k]) l[k] = indexSelect(l[k]!, 0, idx);
  }
  /** Bytes held by the cache now. */
  bytes(): number {
    let b = 0;
    for (const l of this.layers) for (const t of Object.values(l)) if (t) b += t.numel * (t.dtype === "f32" ? 4 : 2);
    return b;
  }
}

/** Appends new (B, H, T, d) entries to a cached tensor along T. */
export function appendCache(cache: LayerCache | undefined, key: keyof LayerCache, t: Tensor): Tensor {
  if (!cache) return t;
  const prev = cache[key];
  const all = prev ? concat([prev, t], 2) : t;
  cache[key] = all.detach();
  return all;
}

export interface AttentionContext {
  /** Positions (i32) of the new tokens, shape (B or 1, T). */
  positions: Tensor;
  /** Tokens already in the cache (query 0 sits at this position among the keys). */
  pastLength: number;
  /** Optional extra mask broadcastable to (B, H, T, pastLength + T): boolean (true = attend) or additive. */
  mask?: Tensor | null;
}

export class Attention extends Module {
  declare q_proj: Linear;
  declare k_proj: Linear;
  declare v_proj: Linear;
  declare o_proj: Linear;
  constructor(readonly hidden: number, readonly heads: number, readonly kvHeads: number, readonly headDim: number,
    readonly rotary: RotaryEmbedding, bias: boolean, oBias = false) {
    super();
    this.child("q_proj", new Linear(hidden, heads * headDim, bias));
    this.child("k_proj", new Linear(hidden, kvHeads * headDim, bias));
    this.child("v_proj", new Linear(hidden, kvHeads * headDim, bias));
    this.child("o_proj", new Linear(heads * headDim, hidden, oBias));
  }

  forward(x: Tensor, ctx: AttentionContext, cache?: LayerCache): Tensor {
    const [B, T] = x.shape;
    const { H, Hkv, hd } = { H: this.heads, Hkv: this.kvHeads, hd: this.headDim };
    const { cos, sin } = this.rotary.tables(ctx.pastLength + T);
    const pos = ctx.positions.reshape(ctx.positions.shape[0], T, 1);
    let q = this.q_proj.forward(x).reshape(B, T, H, hd);                  // (B, T, H, hd)
    let k = this.k_proj.forward(x).reshape(B, T, Hkv, hd);
    const v = this.v_proj.forward(x).reshape(B, T, Hkv, hd);
    q = rope(q, cos, sin, pos).permute(0, 2, 1, 3).contiguous();          // (B, H, T, hd)
    k = rope(k, cos, sin, pos).permute(0, 2, 1, 3).contiguous();          // (B, Hkv, T, hd)
    const kAll = appendCache(cache, "k", k);
    const vAll = appendCache(cache, "v", v.permute(0, 2, 1, 3).contiguous());
    const o = sdpa(q, kAll, vAll, { causal: true, qOffset: ctx.pastLength, mask: ctx.mask });   // (B, H, T, hd)
    return this.o_proj.forward(o.permute(0, 2, 1, 3).reshape(B, T, H * hd));
  }
}
