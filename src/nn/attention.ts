// Grouped-query attention (Llama / Qwen2 layout) with a KV cache, and the cache types shared by the models.
// Shapes: x (B, T, D) → q (B, H, T, hd), k/v (B, Hkv, T, hd); RoPE is applied in (B, T, H, hd) layout.
import { Tensor } from "../core/tensor.js";
import { FathomError } from "../core/errors.js";
import { rope } from "../core/fused/rope.js";
import { sdpa } from "../core/fused/sdpa.js";
import { concat } from "../core/ops/movement.js";
import { indexSelect } from "../core/ops/index_ops.js";
import { Module } from "./module.js";
import { Linear } from "./layers.js";
import type { RotaryEmbedding } from "./rope.js";
import { QUANT_TYPES } from "../quant/types.js";

/** Storage type of cached keys/values: f32 (exact), bf16 (half the bytes), q8_0 (34 bytes per 32 values). */
export type KVCacheDType = "f32" | "bf16" | "q8_0";
export interface KVCacheOptions { dtype?: KVCacheDType }

/**
 * q8_0 storage of a (B, H, T, d) tensor: each (b, h, t) row of d values as q8_0 blocks, d zero-padded to a multiple
 * of 32 (zeros change no block scale). Dequantized on read (in TypeScript for now).
 */
export interface Q8Store { B: number; H: number; T: number; d: number; blocks: Uint8Array }

/** Per-layer cached keys/values (or, for MLA, the compressed latent and the rope key). */
export interface LayerCache { k?: Tensor; v?: Tensor; dtype?: KVCacheDType; qk?: Q8Store; qv?: Q8Store }

/** A KV cache for one batch of sequences: one entry per layer and the number of positions already cached. */
export class KVCache {
  layers: LayerCache[];
  length = 0;
  readonly dtype: KVCacheDType;
  constructor(numLayers: number, o: KVCacheOptions = {}) {
    this.dtype = o.dtype ?? "f32";
    if (!["f32", "bf16", "q8_0"].includes(this.dtype)) throw new FathomError("KVCache", `unknown cache dtype '${this.dtype}' (expected f32, bf16 or q8_0)`);
    this.layers = Array.from({ length: numLayers }, () => (this.dtype === "f32" ? {} : { dtype: this.dtype }));
  }
  /** Keeps rows `index` of every cached tensor, in that order (beam search follows its chosen beams). */
  reorder(index: number[]): void {
    const idx = new Tensor(Int32Array.from(index), "i32", [index.length]);
    for (const l of this.layers) {
      for (const k of ["k", "v"] as const) if (l[k]) l[k] = indexSelect(l[k]!, 0, idx);
      for (const k of ["qk", "qv"] as const) if (l[k]) l[k] = q8Reorder(l[k]!, index);
    }
  }
  /** Bytes held by the cache now. */
  bytes(): number {
    let b = 0;
    for (const l of this.layers) {
      for (const t of [l.k, l.v]) if (t) b += t.numel * (t.dtype === "f32" ? 4 : 2);
      for (const q of [l.qk, l.qv]) if (q) b += q.blocks.length;
    }
    return b;
  }
}

const padTo32 = (d: number) => Math.ceil(d / 32) * 32;
const q8RowBytes = (d: number) => (padTo32(d) / 32) * 34;

function q8Append(prev: Q8Store | undefined, t: Tensor): Q8Store {
  const [B, H, Tn, d] = t.shape, rb = q8RowBytes(d), dp = padTo32(d);
  const x = t.float().contiguous().buffer() as Float32Array, row = new Float32Array(dp);
  const T0 = prev?.T ?? 0, T = T0 + Tn, blocks = new Uint8Array(B * H * T * rb);
  for (let bh = 0; bh < B * H; bh++) {
    if (prev) blocks.set(prev.blocks.subarray(bh * T0 * rb, (bh + 1) * T0 * rb), bh * T * rb);
    for (let i = 0; i < Tn; i++) {
      row.set(x.subarray((bh * Tn + i) * d, (bh * Tn + i + 1) * d));
      QUANT_TYPES.q8_0.quantizeRef(row, blocks.subarray((bh * T + T0 + i) * rb, (bh * T + T0 + i + 1) * rb));
    }
  }
  return { B, H, T, d, blocks };
}

function q8Read(s: Q8Store): Tensor {
  const { B, H, T, d } = s, dp = padTo32(d), rows = B * H * T, all = QUANT_TYPES.q8_0.dequantizeRef(s.blocks);
  if (dp === d) return new Tensor(all, "f32", [B, H, T, d]);
  const out = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) out.set(all.subarray(r * dp, r * dp + d), r * d);
  return new Tensor(out, "f32", [B, H, T, d]);
}

function q8Reorder(s: Q8Store, index: number[]): Q8Store {
  const per = s.H * s.T * q8RowBytes(s.d), blocks = new Uint8Array(index.length * per);
  index.forEach((b, i) => blocks.set(s.blocks.subarray(b * per, (b + 1) * per), i * per));
  return { ...s, B: index.length, blocks };
}

/** Appends new (B, H, T, d) entries to a cached tensor along T; returns everything cached, in t's dtype. */
export function appendCache(cache: LayerCache | undefined, key: "k" | "v", t: Tensor): Tensor {
  if (!cache) return t;
  if (cache.dtype === "q8_0") {
    const qk = key === "k" ? "qk" : "qv";
    cache[qk] = q8Append(cache[qk], t.detach());
    const all = q8Read(cache[qk]!);
    return t.dtype === "f32" ? all : all.to(t.dtype);
  }
  const prev = cache[key];
  const add = cache.dtype === "bf16" ? t.detach().to("bf16") : t;
  const all = prev ? concat([prev, add], 2) : add;
  cache[key] = all.detach();
  return cache.dtype === "bf16" && t.dtype !== "bf16" ? all.to(t.dtype) : all;
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
