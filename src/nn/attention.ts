// Grouped-query attention (Llama / Qwen2 layout) with a KV cache, and the cache types shared by the models.
// Shapes: x (B, T, D) → q (B, H, T, hd), k/v (B, Hkv, T, hd); RoPE is applied in (B, T, H, hd) layout.
import { Tensor } from "../core/tensor.js";
import { FathomError } from "../core/errors.js";
import { rope } from "../core/fused/rope.js";
import { sdpa } from "../core/fused/sdpa.js";
import { concat } from "../core/ops/movement.js";
import { indexSelect } from "../core/ops/index_ops.js";
import { Module } from "./module.js";
import { Linear, forwardMany } from "./layers.js";
import type { RotaryEmbedding } from "./rope.js";
import { QUANT_TYPES } from "../quant/types.js";
import { DTYPES, allocate, type TypedArray } from "../core/dtype.js";
import { inArena, outsideArena } from "../core/arena.js";
import { getBackend } from "../core/backend/index.js";
import { isGradEnabled } from "../core/autograd.js";

/** Storage type of cached keys/values: f32 (exact), bf16 (half the bytes), q8_0 (34 bytes per 32 values). */
export type KVCacheDType = "f32" | "bf16" | "q8_0";
export interface KVCacheOptions {
  dtype?: KVCacheDType;
  /**
   * Positions to preallocate per layer (e.g. the generation's max length): keys and values are then written in
   * place into (B, H, capacity, d) buffers, and attention reads a view of the first T positions (no per-step
   * concat). The buffers grow (doubling) if more positions arrive. Absent: every append concatenates.
   */
  capacity?: number;
}

/**
 * q8_0 storage of a (B, H, T, d) tensor: each (b, h, t) row of d values as q8_0 blocks, d zero-padded to a multiple
 * of 32 (zeros change no block scale); rows of one (b, h) sit `cap` rows apart (cap ≥ T, room to append in place).
 * Dequantized on read by the backend (dequantQ8Rows) into a scratch buffer shared by every cache (see q8Read).
 */
export interface Q8Store { B: number; H: number; T: number; cap: number; d: number; blocks: Uint8Array }

/**
 * Per-layer cached keys/values (or, for MLA, the compressed latent and the rope key). `k`/`v` are everything
 * cached, (B, H, T, d); with a preallocated cache they are views of `kBuf`/`vBuf` (B, H, cap, d).
 */
export interface LayerCache {
  k?: Tensor; v?: Tensor; dtype?: KVCacheDType; qk?: Q8Store; qv?: Q8Store;
  /** Preallocate this many positions on the first append. */
  cap?: number;
  kBuf?: Tensor; vBuf?: Tensor;
}

/** A KV cache for one batch of sequences: one entry per layer and the number of positions already cached. */
export class KVCache {
  layers: LayerCache[];
  length = 0;
  readonly dtype: KVCacheDType;
  readonly capacity: number | undefined;
  constructor(numLayers: number, o: KVCacheOptions = {}) {
    this.dtype = o.dtype ?? "f32";
    if (!["f32", "bf16", "q8_0"].includes(this.dtype)) throw new FathomError("KVCache", `unknown cache dtype '${this.dtype}' (expected f32, bf16 or q8_0)`);
    if (o.capacity !== undefined && !(Number.isInteger(o.capacity) && o.capacity > 0)) throw new FathomError("KVCache", `capacity must be a positive integer, got ${o.capacity}`);
    this.capacity = o.capacity;
    this.layers = Array.from({ length: numLayers }, () => {
      const l: LayerCache = this.dtype === "f32" ? {} : { dtype: this.dtype };
      if (o.capacity !== undefined) l.cap = o.capacity;
      return l;
    });
  }
  /** Keeps rows `index` of every cached tensor, in that order (beam search follows its chosen beams). */
  reorder(index: number[]): void { outsideArena(() => this.reorderImpl(index)); }
  private reorderImpl(index: number[]): void {
    const idx = new Tensor(Int32Array.from(index), "i32", [index.length]);
    for (const l of this.layers) {
      for (const k of ["k", "v"] as const) {
        const bk = k === "k" ? "kBuf" : "vBuf", buf = l[bk];
        if (buf && l[k]) { l[bk] = indexSelect(buf, 0, idx).contiguous(); l[k] = bufView(l[bk]!, l[k]!.shape[2]); }
        else if (l[k]) l[k] = indexSelect(l[k]!, 0, idx);
      }
      for (const k of ["qk", "qv"] as const) if (l[k]) l[k] = q8Reorder(l[k]!, index);
    }
  }
  /** Bytes held by the cache now (preallocated buffers count in full). */
  bytes(): number {
    let b = 0;
    for (const l of this.layers) {
      for (const [t, buf] of [[l.k, l.kBuf], [l.v, l.vBuf]] as const) {
        const held = buf ?? t;
        if (held) b += held.numel * (held.dtype === "f32" ? 4 : 2);
      }
      for (const q of [l.qk, l.qv]) if (q) b += q.blocks.length;
    }
    return b;
  }
  /** Forgets every position from `n` on (the buffers stay allocated for reuse). */
  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.length) throw new FathomError("KVCache", `cannot truncate ${this.length} cached positions to ${n}`);
    for (const l of this.layers) {
      for (const k of ["k", "v"] as const) {
        const t = l[k];
        if (!t) continue;
        const buf = l[k === "k" ? "kBuf" : "vBuf"];
        l[k] = n === 0 && !buf ? undefined : buf ? bufView(buf, n) : t.slice(2, 0, n);
      }
      for (const k of ["qk", "qv"] as const) if (l[k]) l[k] = { ...l[k]!, T: n };
    }
    this.length = n;
  }
  /** Replaces this cache's content with the first `n` positions of `src` (same layer count and dtype; batch 1 or equal). */
  copyFrom(src: KVCache, n: number): void { outsideArena(() => this.copyFromImpl(src, n)); }
  private copyFromImpl(src: KVCache, n: number): void {
    if (src.layers.length !== this.layers.length || src.dtype !== this.dtype) throw new FathomError("KVCache", "copyFrom needs a cache of the same model and dtype");
    if (n > src.length) throw new FathomError("KVCache", `copyFrom: source holds ${src.length} positions, asked for ${n}`);
    this.truncate(0);
    if (n === 0) return;
    this.layers.forEach((l, i) => {
      const s = src.layers[i];
      for (const k of ["k", "v"] as const) if (s[k]) appendCache(l, k, s[k]!.slice(2, 0, n));
      for (const k of ["qk", "qv"] as const) if (s[k]) l[k] = q8Copy(s[k]!, n, l[k], l.cap);
    });
    this.length = n;
  }
  /** A compact copy of the first `n` positions (for a prefix cache). */
  snapshot(n: number): KVCache {
    const c = new KVCache(this.layers.length, { dtype: this.dtype, capacity: Math.max(n, 1) });
    c.copyFrom(this, n);
    return c;
  }
}

/** The first T positions of a preallocated (B, H, cap, d) buffer, as a view. */
function bufView(buf: Tensor, T: number): Tensor {
  const [B, H, , d] = buf.shape;
  return new Tensor(buf.data, buf.dtype, [B, H, T, d], buf.strides, buf.offset);
}

const padTo32 = (d: number) => Math.ceil(d / 32) * 32;
const q8RowBytes = (d: number) => (padTo32(d) / 32) * 34;

function q8Append(prev: Q8Store | undefined, t: Tensor, capHint?: number): Q8Store {
  const [B, H, Tn, d] = t.shape, rb = q8RowBytes(d), dp = padTo32(d);
  const x = t.float().contiguous().buffer() as Float32Array, row = allocate("f32", dp) as Float32Array;
  const T0 = prev?.T ?? 0, T = T0 + Tn;
  let s: Q8Store;
  if (prev && prev.cap >= T) s = { ...prev, T };
  else if (prev) s = { ...q8Copy(prev, T0, undefined, capHint !== undefined ? Math.max(T, 2 * prev.cap) : T), T };   // grown
  else { const cap = Math.max(T, capHint ?? 0); s = { B, H, T, cap, d, blocks: new Uint8Array(B * H * cap * rb) }; }
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < Tn; i++) {
      row.set(x.subarray((bh * Tn + i) * d, (bh * Tn + i + 1) * d));
      const r = bh * s.cap + T0 + i;
      QUANT_TYPES.q8_0.quantizeRef(row, s.blocks.subarray(r * rb, (r + 1) * rb));
    }
  }
  return s;
}

// f32 scratch for keys and values read out of q8_0 and bf16 caches, shared by every cache and layer (each read is
// consumed by the attention that follows before the next read of the same key), grown by doubling: a step allocates nothing.
const kvScratch = { k: new Float32Array(0), v: new Float32Array(0) };
function scratchFor(key: "k" | "v", n: number): Float32Array {
  if (kvScratch[key].length < n) kvScratch[key] = new Float32Array(Math.max(n, 2 * kvScratch[key].length));
  return kvScratch[key];
}

/** Everything `s` holds as f32 (B, H, T, d): a view of the `key` scratch, valid until the next read of that key. */
function q8Read(s: Q8Store, key: "k" | "v"): Tensor {
  const { B, H, T, cap, d } = s, n = B * H * T * d;
  const out = scratchFor(key, n);
  getBackend().dequantQ8Rows(B * H, T, cap, d, s.blocks, out);
  return new Tensor(out, "f32", [B, H, T, d]);
}

/**
 * The first T positions of a preallocated bf16 buffer (B, H, cap, d) as f32, converted natively into the `key` scratch
 * (valid until the next read of that key): one conversion over the span the runs cover when the gaps between heads are
 * small (a strided view of it, which attention reads in place), else one per (b, h) run.
 */
function bf16Read(buf: Tensor, T: number, key: "k" | "v"): Tensor {
  const [B, H, cap, d] = buf.shape, runs = B * H, be = getBackend(), src = buf.data as Uint16Array;
  if ((cap - T) * (runs - 1) <= runs * T) {
    const n = ((runs - 1) * cap + T) * d, out = scratchFor(key, n).subarray(0, n);
    be.cast("bf16", src.subarray(0, n), "f32", out);
    return new Tensor(out, "f32", [B, H, cap, d]).narrow(2, 0, T);
  }
  const out = scratchFor(key, runs * T * d);
  for (let r = 0; r < runs; r++) be.cast("bf16", src.subarray(r * cap * d, (r * cap + T) * d), "f32", out.subarray(r * T * d, (r + 1) * T * d));
  return new Tensor(out.subarray(0, runs * T * d), "f32", [B, H, T, d]);
}

/** A scratch read as returned to the caller: under autograd a copy (the backward pass keeps k and v past the next read). */
function kept(read: Tensor): Tensor { return isGradEnabled() ? read.clone() : read; }

function q8Reorder(s: Q8Store, index: number[]): Q8Store {
  const per = s.H * s.cap * q8RowBytes(s.d), blocks = new Uint8Array(index.length * per);
  index.forEach((b, i) => blocks.set(s.blocks.subarray(b * per, (b + 1) * per), i * per));
  return { ...s, B: index.length, blocks };
}

/** The first n positions of `src`, written into `dst`'s storage when it has room (else a new store). */
function q8Copy(src: Q8Store, n: number, dst: Q8Store | undefined, capHint?: number): Q8Store {
  const rb = q8RowBytes(src.d);
  const fits = dst && dst.B === src.B && dst.H === src.H && dst.d === src.d && dst.cap >= n;
  const cap = fits ? dst!.cap : Math.max(n, capHint ?? 0);
  const s: Q8Store = fits ? { ...dst!, T: n } : { B: src.B, H: src.H, T: n, cap, d: src.d, blocks: new Uint8Array(src.B * src.H * cap * rb) };
  for (let bh = 0; bh < src.B * src.H; bh++) s.blocks.set(src.blocks.subarray(bh * src.cap * rb, (bh * src.cap + n) * rb), bh * cap * rb);
  return s;
}

/** Writes (B, H, Tn, d) entries into a preallocated buffer after T0 positions, growing it when full; returns the view. */
function bufAppend(cache: LayerCache, key: "k" | "v", t: Tensor, storage: Tensor["dtype"]): Tensor {
  const bk = key === "k" ? "kBuf" : "vBuf";
  const [B, H, Tn, d] = t.shape, T0 = cache[key]?.shape[2] ?? 0, T = T0 + Tn;
  let buf = cache[bk];
  const same = buf && buf.shape[0] === B && buf.shape[1] === H && buf.shape[3] === d && buf.dtype === storage;
  if (!same && T0 > 0) throw new FathomError("KVCache", `cannot append ${t.dtype} [${t.shape.join(", ")}] to a cache holding [${cache[key]!.shape.join(", ")}]`);
  if (!same || buf!.shape[2] < T) {
    const cap = Math.max(T, same ? 2 * buf!.shape[2] : cache.cap ?? T);
    const info = DTYPES[storage];
    const grown = new Tensor(new info.array(B * H * cap * d) as TypedArray, storage, [B, H, cap, d]);
    if (same && T0 > 0) {
      const oc = buf!.shape[2];
      for (let bh = 0; bh < B * H; bh++) grown.data.set(buf!.data.subarray(bh * oc * d, (bh * oc + T0) * d), bh * cap * d);
    }
    buf = cache[bk] = grown;
  }
  const cap = buf!.shape[2];
  const src = (t.dtype === storage ? t : t.to(storage)).contiguous().buffer();
  if (Tn === cap && T0 === 0) buf!.data.set(src, 0);
  else for (let bh = 0; bh < B * H; bh++) buf!.data.set(src.subarray(bh * Tn * d, (bh + 1) * Tn * d), (bh * cap + T0) * d);
  return (cache[key] = bufView(buf!, T));
}

/**
 * Appends new (B, H, T, d) entries to a cached tensor along T; returns everything cached, in t's dtype. For a q8_0
 * cache, or a preallocated bf16 one read as f32, that is a view of a scratch buffer that the next such read of the same
 * key overwrites: use it at once.
 */
export function appendCache(cache: LayerCache | undefined, key: "k" | "v", t: Tensor): Tensor {
  if (!cache) return t;
  if (cache.dtype === "q8_0") {
    const qk = key === "k" ? "qk" : "qv";
    cache[qk] = q8Append(cache[qk], t.detach(), cache.cap);
    const all = q8Read(cache[qk]!, key);
    return t.dtype === "f32" ? kept(all) : all.to(t.dtype);
  }
  if (cache.cap !== undefined) {
    const storage = cache.dtype === "bf16" ? "bf16" : t.dtype;
    const all = bufAppend(cache, key, t.detach(), storage);
    if (all.dtype === t.dtype) return all;
    return storage === "bf16" && t.dtype === "f32" ? kept(bf16Read(cache[key === "k" ? "kBuf" : "vBuf"]!, all.shape[2], key)) : all.to(t.dtype);
  }
  // Not preallocated: the cache keeps the concatenation, so it is made outside any step arena.
  const prev = cache[key];
  const all = outsideArena(() => {
    const add = cache.dtype === "bf16" ? t.detach().to("bf16") : t;
    return prev ? concat([prev, add], 2) : add;
  });
  // `all` may share t's storage (no concatenation, no cast: t itself or a same-dtype to()), which may be step storage
  cache[key] = all.data === t.data && inArena() ? outsideArena(() => all.detach().clone()) : all.detach();
  return cache.dtype === "bf16" && t.dtype !== "bf16" ? all.to(t.dtype) : all;
}

export interface AttentionContext {
  /** Positions (i32) of the new tokens, shape (B or 1, T). */
  positions: Tensor;
  /** Tokens already in the cache (query 0 sits at this position among the keys). */
  pastLength: number;
  /** Optional extra mask broadcastable to (B, H, T, pastLength + T): boolean (true = attend) or additive. */
  mask?: Tensor | null;
  /**
   * Ragged batch: x is (1, N, D), the new tokens of several sequences laid end to end, `positions` (1, N). Each
   * segment is one sequence with its own cache; projections run on all N tokens at once, the cache append and
   * attention per segment (pastLength and mask are then unused).
   */
  segments?: Segment[];
}

/** One sequence of a ragged batch: tokens [start, start + length) of the flattened batch. */
export interface Segment { start: number; length: number; pastLength: number; cache?: LayerCache }

/** The end of the longest segment (rope tables must cover positions up to it). */
export const segmentsEnd = (segs: readonly Segment[]) => segs.reduce((m, s) => Math.max(m, s.pastLength + s.length), 0);

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
    if (ctx.segments) return this.forwardRagged(x, ctx.positions, ctx.segments);
    const [B, T] = x.shape;
    const { H, Hkv, hd } = { H: this.heads, Hkv: this.kvHeads, hd: this.headDim };
    const { cos, sin } = this.rotary.tables(ctx.pastLength + T);
    const pos = ctx.positions.reshape(ctx.positions.shape[0], T, 1);
    const [qp, kp, vp] = forwardMany([this.q_proj, this.k_proj, this.v_proj], x);
    let q = qp.reshape(B, T, H, hd);                                      // (B, T, H, hd)
    let k = kp.reshape(B, T, Hkv, hd);
    const v = vp.reshape(B, T, Hkv, hd);
    q = rope(q, cos, sin, pos).permute(0, 2, 1, 3).contiguous();          // (B, H, T, hd)
    k = rope(k, cos, sin, pos).permute(0, 2, 1, 3).contiguous();          // (B, Hkv, T, hd)
    const kAll = appendCache(cache, "k", k);
    const vAll = appendCache(cache, "v", v.permute(0, 2, 1, 3).contiguous());
    const o = sdpa(q, kAll, vAll, { causal: true, qOffset: ctx.pastLength, mask: ctx.mask });   // (B, H, T, hd)
    return this.o_proj.forward(o.permute(0, 2, 1, 3).reshape(B, T, H * hd));
  }

  /** Ragged batch (see AttentionContext.segments): x (1, N, D). */
  private forwardRagged(x: Tensor, positions: Tensor, segs: readonly Segment[]): Tensor {
    const N = x.shape[1];
    const { H, Hkv, hd } = { H: this.heads, Hkv: this.kvHeads, hd: this.headDim };
    const { cos, sin } = this.rotary.tables(segmentsEnd(segs));
    const pos = positions.reshape(1, N, 1);
    const [qp, kp, vp] = forwardMany([this.q_proj, this.k_proj, this.v_proj], x);
    const q = rope(qp.reshape(1, N, H, hd), cos, sin, pos);                            // (1, N, H, hd)
    const k = rope(kp.reshape(1, N, Hkv, hd), cos, sin, pos);
    const v = vp.reshape(1, N, Hkv, hd);
    const heads = (t: Tensor, s: Segment) => t.slice(1, s.start, s.start + s.length).permute(0, 2, 1, 3).contiguous();
    const outs = segs.map((s) => {
      const kAll = appendCache(s.cache, "k", heads(k, s));
      const vAll = appendCache(s.cache, "v", heads(v, s));
      return sdpa(heads(q, s), kAll, vAll, { causal: true, qOffset: s.pastLength }).permute(0, 2, 1, 3);   // (1, len, H, hd)
    });
    const o = outs.length === 1 ? outs[0] : concat(outs, 1);
    return this.o_proj.forward(o.reshape(1, N, H * hd));
  }
}
