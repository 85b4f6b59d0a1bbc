// Quantization is a pass over a model: quantizeModel (and model.quantize(type)) swaps each Linear for a QLinear and the
// token embedding for a QEmbedding, in place. A QLinear holds the quantized weight [N, K] (a ggml block tensor, or int8
// with per-row f32 scales), packs it once through the backend (quantPack) and multiplies with quantMatmul: the native
// kernels when the addon has them, else dequantize-then-multiply. Inference only: no gradient flows to the weight.
//
// What stays float (llama.cpp's choices): 1-D tensors, norms, the MoE router (its weight is not a Linear) and
// exp_probs_b. MLA's kv_b_proj becomes a SplitKvB: attn_k_b and attn_v_b, each quantized, multiplied per head in the
// absorbed form as llama.cpp does. Rows whose length does not fit the block fall back: q4_K → q8_0 when K % 32 == 0,
// else f16 (as are q8_0/q4_0 when K % 32 != 0). int8 never needs a fallback.
import { FathomError, ShapeError } from "../core/errors.js";
import { allocate, isBlock, type BlockDType } from "../core/dtype.js";
import { outsideArena } from "../core/arena.js";
import { Tensor } from "../core/tensor.js";
import { concat } from "../core/ops/movement.js";
import { matmul } from "../core/ops/linalg.js";
import { getBackend } from "../core/backend/index.js";
import type { Backend } from "../core/backend/backend.js";
import { Module } from "../nn/module.js";
import { Embedding, Linear } from "../nn/layers.js";
import { CausalLM } from "../models/decoder.js";
import { MultiHeadLatentAttention } from "../nn/mla.js";
import { QUANT_TYPES } from "./types.js";
import { QUANT_KINDS, dequantizeRows, rowBytes, type QuantKind, type QuantWeightData } from "./qmatmul.js";

export type { QuantKind };

/** A quantized matrix [rows..., K]: block tensor (q8_0/q4_0/q4_K) or int8 tensor with f32 scales [rows...]. */
export interface QWeight { weight: Tensor; scale: Tensor | null }

export const qkindOf = (w: Tensor): QuantKind => {
  if (isBlock(w.dtype)) return w.dtype;
  if (w.dtype === "i8") return "int8";
  throw new FathomError("quant", `expected a block or i8 tensor, got ${w.dtype}`);
};

/** The raw bytes of a (contiguous) quantized tensor. */
export function qbytes(t: Tensor): Uint8Array {
  const b = t.buffer();
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Quantizes a float matrix [..., K] (rows independent) into `type`. */
export function quantizeWeight(w: Tensor, type: QuantKind): QWeight {
  if (type !== "int8") {
    const q = QUANT_TYPES[type];
    return { weight: Tensor.from(q.quantizeRef(w.float().buffer() as Float32Array), type, w.shape), scale: null };
  }
  const K = w.shape[w.ndim - 1], x = w.float().buffer() as Float32Array, rows = x.length / K;
  const q = new Int8Array(x.length), s = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[r * K + k]));
    const d = Math.fround(amax / 127), inv = d ? 1 / d : 0;
    s[r] = d;
    for (let k = 0; k < K; k++) { const v = x[r * K + k] * inv; q[r * K + k] = v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5); }
  }
  return { weight: Tensor.from(q, "i8", w.shape), scale: Tensor.from(s, "f32", w.shape.slice(0, -1)) };
}

/** f32 copy of a quantized matrix. */
export function dequantizeWeight(q: QWeight): Tensor {
  const K = q.weight.shape[q.weight.ndim - 1], N = q.weight.numel / K;
  const data: QuantWeightData = { type: qkindOf(q.weight), N, K, data: qbytes(q.weight), scales: q.scale ? (q.scale.buffer() as Float32Array) : null };
  return Tensor.from(dequantizeRows(data, 0, N, new Float32Array(N * K)), "f32", q.weight.shape);
}

/** Rows of a quantized [R, K] matrix in a new order (bytes copied): row i of the result is row order[i]. */
export function gatherQRows(q: QWeight, order: ArrayLike<number>): QWeight {
  const K = q.weight.shape[q.weight.ndim - 1], R = q.weight.numel / K, rb = rowBytes(qkindOf(q.weight), K);
  const src = qbytes(q.weight), out = new Uint8Array(src.length), sc = q.scale ? (q.scale.buffer() as Float32Array) : null;
  const s2 = sc ? new Float32Array(R) : null;
  for (let i = 0; i < R; i++) { out.set(src.subarray(order[i] * rb, (order[i] + 1) * rb), i * rb); if (s2) s2[i] = sc![order[i]]; }
  return { weight: Tensor.from(out.buffer, q.weight.dtype, q.weight.shape), scale: s2 ? Tensor.from(s2, "f32", q.scale!.shape) : null };
}

/** Row `e` of a stacked [E, N, K] quantized tensor as [N, K], sharing memory. */
export function sliceQ(q: QWeight, e: number): QWeight {
  const [, N, K] = q.weight.shape, rb = rowBytes(qkindOf(q.weight), K), b = qbytes(q.weight);
  const part = b.subarray(e * N * rb, (e + 1) * N * rb);
  const weight = Tensor.from(part.buffer, q.weight.dtype, [N, K], part.byteOffset);
  const scale = q.scale ? Tensor.from((q.scale.buffer() as Float32Array).subarray(e * N, (e + 1) * N), "f32", [N]) : null;
  return { weight, scale };
}

/** Stacks quantized [N, K] matrices into [E, N, K] (bytes copied). */
export function stackQ(parts: QWeight[]): QWeight {
  const bytes = parts.map((p) => qbytes(p.weight)), out = new Uint8Array(bytes.reduce((a, b) => a + b.length, 0));
  let o = 0;
  for (const b of bytes) { out.set(b, o); o += b.length; }
  const shape = [parts.length, ...parts[0].weight.shape];
  let scale: Tensor | null = null;
  if (parts[0].scale) {
    const s = new Float32Array(parts.length * parts[0].scale.numel);
    parts.forEach((p, i) => s.set(p.scale!.buffer() as Float32Array, i * p.scale!.numel));
    scale = Tensor.from(s, "f32", shape.slice(0, -1));
  }
  return { weight: Tensor.from(out.buffer, parts[0].weight.dtype, shape), scale };
}

export class QLinear extends Module {
  declare weight: Tensor;
  declare weight_scale: Tensor | null;
  declare bias: Tensor | null;
  /** When set, output j is stored row outPerm[j] (a llama GGUF's Q/K rows stay in the file's order, zero-copy; packing reorders them). */
  outPerm: Int32Array | null = null;
  private packed: object | null = null;
  private packedKey: [Backend, Tensor] | null = null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, q: QWeight, bias: Tensor | null = null) {
    super();
    if (q.weight.ndim !== 2 || q.weight.shape[0] !== outFeatures || q.weight.shape[1] !== inFeatures)
      throw new ShapeError("QLinear", `weight has shape [${q.weight.shape.join(", ")}], expected [${outFeatures}, ${inFeatures}]`);
    this.param("weight", q.weight);
    this.param("weight_scale", q.scale);
    this.param("bias", bias);
  }

  get qtype(): QuantKind { return qkindOf(this.weight); }

  /** The weight in the backend's packed form, made on first use (again if the backend or the weight changed). */
  private packedFor(be: Backend): object {
    if (!this.packed || this.packedKey![0] !== be || this.packedKey![1] !== this.weight) {
      this.packed = outsideArena(() => this.pack(be, qbytes(this.weight.contiguous())));   // kept across steps
      this.packedKey = [be, this.weight];
    }
    return this.packed;
  }

  /**
   * Packs now from `bytes`, a copy of the weight's contents read elsewhere, so that the weight's own memory (a mapped
   * file) is never touched by inference: memory then holds the packed copy only. The caller may reuse `bytes` after
   * the call when the backend's quantPackCopies is true.
   */
  prepack(bytes: Uint8Array): void {
    const be = getBackend();
    this.packed = this.pack(be, bytes);
    this.packedKey = [be, this.weight];
  }

  /** Packs stored rows in output order (outPerm applied to the rows here, so products come out in order). */
  private pack(be: Backend, bytes: Uint8Array): object {
    const N = this.outFeatures, p = this.outPerm;
    let scale = this.weight_scale ? (this.weight_scale.float().buffer() as Float32Array) : null;
    if (p) {
      const rb = bytes.length / N, rows = new Uint8Array(bytes.length);
      if (!Number.isInteger(rb)) throw new ShapeError("QLinear", `${bytes.length} weight bytes do not split into ${N} rows`);
      for (let j = 0; j < N; j++) rows.set(bytes.subarray(p[j] * rb, (p[j] + 1) * rb), j * rb);
      bytes = rows;
      if (scale) { const s = scale; scale = Float32Array.from(p, (r) => s[r]); }
    }
    return be.quantPack!(this.qtype, N, this.inFeatures, bytes, scale);
  }

  forward(x: Tensor): Tensor { return QLinear.project([this], x, getBackend())[0]; }

  /** Fusable (nn/layers.ts): QLinears of one type and input size run together when the backend has quantMatmulMany. */
  fuseKey(): string | null { return getBackend().quantMatmulMany ? `qlinear:${this.qtype}:${this.inFeatures}` : null; }
  forwardGroup(group: readonly Module[], x: Tensor): Tensor[] { return QLinear.project(group as readonly QLinear[], x, getBackend()); }

  /**
   * Rows (M, K) of xs[i] through layer i into outs[i] (M, N_i), for layers of one type and input size without bias or
   * row order (MLA's per-head k_b / v_b): one backend call when the backend has quantMatmulMany.
   */
  static projectEach(qs: readonly QLinear[], M: number, xs: Float32Array[], outs: Float32Array[]): void {
    const be = getBackend();
    if (M === 0) return;
    if (be.quantMatmulMany && qs.length > 1) be.quantMatmulMany(M, xs, qs.map((l) => l.packedFor(be)), outs);
    else qs.forEach((l, i) => be.quantMatmul!(M, xs[i], l.packedFor(be), outs[i]));
  }

  /** x through layers of one type and input size (one backend call). */
  private static project(qs: readonly QLinear[], x: Tensor, be: Backend): Tensor[] {
    const K = qs[0].inFeatures;
    if (x.shape[x.ndim - 1] !== K) throw new ShapeError("QLinear", `input [${x.shape.join(", ")}] does not end in ${K}`);
    const xf = (x.dtype === "f32" ? x : x.to("f32")).detach().contiguous();
    const M = xf.numel / K, xb = xf.buffer() as Float32Array;
    const outs = qs.map((l) => allocate("f32", M * l.outFeatures) as Float32Array);
    if (M > 0) {
      if (qs.length === 1) be.quantMatmul!(M, xb, qs[0].packedFor(be), outs[0]);
      else be.quantMatmulMany!(M, xb, qs.map((l) => l.packedFor(be)), outs);
    }
    return qs.map((l, i) => {
      let y = new Tensor(outs[i], "f32", [...x.shape.slice(0, -1), l.outFeatures]);
      if (l.bias) y = y.add(l.bias.to("f32"));
      return x.dtype === "f32" ? y : y.to(x.dtype);
    });
  }

  /** The weight as f32 [N, K] in output order (tests, and code that needs the dense matrix). */
  dequantized(): Tensor {
    const w = dequantizeWeight({ weight: this.weight, scale: this.weight_scale });
    if (!this.outPerm) return w;
    return w.indexSelect(0, new Tensor(this.outPerm, "i32", [this.outPerm.length]));
  }
}

/** A token embedding whose table is quantized: looked-up rows are dequantized. */
export class QEmbedding extends Module {
  declare weight: Tensor;
  declare weight_scale: Tensor | null;
  constructor(readonly num: number, readonly dim: number, q: QWeight) {
    super();
    this.param("weight", q.weight);
    this.param("weight_scale", q.scale);
  }
  forward(ids: Tensor): Tensor {
    const idx = ids.to("i32").buffer() as Int32Array, D = this.dim, out = allocate("f32", idx.length * D) as Float32Array;
    const data: QuantWeightData = { type: qkindOf(this.weight), N: this.num, K: D, data: qbytes(this.weight.contiguous()),
      scales: this.weight_scale ? (this.weight_scale.buffer() as Float32Array) : null };
    idx.forEach((id, i) => {
      if (id < 0 || id >= this.num) throw new FathomError("embedding", `token id ${id} is outside the vocabulary of ${this.num}`);
      const row = out.subarray(i * D, (i + 1) * D);
      if (data.type === "int8") dequantizeRowsSingle(data, id, row); else dequantizeRows(data, id, id + 1, row);
    });
    return new Tensor(out, "f32", [...ids.shape, D]);
  }
}

/**
 * MLA's kv_b_proj as llama.cpp stores and multiplies it (deepseek2, absorbed MLA): attn_k_b [H, r, dn] folds each head's
 * q_nope into the latent (q_nope·k_bᵀ → r values) and attn_v_b [H, dv, r] decompresses each head's attention output
 * (latent → dv values). Each half is quantized (a block or int8 weight: the products quantize their activations as
 * QLinear does) or float (a fallback whose rows do not fit a block: f16/bf16 weights see their activations rounded to
 * that type first, as ggml converts src1 to the weight's vec_dot_type). Inference only. The MLA module uses these
 * products in its absorbed form, with or without a cache (llama.cpp runs MLA absorbed for prefill too).
 */
export class SplitKvB extends Module {
  declare k_b: Tensor;
  declare k_b_scale: Tensor | null;
  declare v_b: Tensor;
  declare v_b_scale: Tensor | null;
  private heads = new Map<string, { of: Tensor; lin: QLinear[] }>();
  private dense32 = new Map<string, { of: Tensor; w: Tensor }>();

  constructor(readonly H: number, readonly dn: number, readonly dv: number, readonly r: number, kb: QWeight, vb: QWeight) {
    super();
    const want = (q: QWeight, s: number[], what: string) => {
      if (q.weight.ndim !== 3 || q.weight.shape.some((d, i) => d !== s[i]))
        throw new ShapeError("SplitKvB", `${what} has shape [${q.weight.shape.join(", ")}], expected [${s.join(", ")}]`);
    };
    want(kb, [H, r, dn], "k_b"); want(vb, [H, dv, r], "v_b");
    this.param("k_b", kb.weight);
    this.param("k_b_scale", kb.scale);
    this.param("v_b", vb.weight);
    this.param("v_b_scale", vb.scale);
  }

  static isQuantized(w: Tensor): boolean { return isBlock(w.dtype) || w.dtype === "i8"; }

  /** The per-head QLinear views of a quantized half (sharing its memory), made on first use. */
  private headsOf(half: "k_b" | "v_b"): QLinear[] {
    const w = this[half], sc = this[`${half}_scale`], cur = this.heads.get(half);
    if (cur && cur.of === w) return cur.lin;
    const [, N, K] = w.shape, q = outsideArena(() => ({ weight: w.contiguous(), scale: sc }));
    const lin = Array.from({ length: this.H }, (_, h) => new QLinear(K, N, sliceQ(q, h)));
    this.heads.set(half, { of: w, lin });
    return lin;
  }

  /** Packs head h of a quantized half now from a copy of its bytes (see QLinear.prepack). */
  prepack(half: "k_b" | "v_b", h: number, bytes: Uint8Array): void { this.headsOf(half)[h].prepack(bytes); }

  /** x (B, H, T, K) → (B, H, T, N) through half [H, N, K], head by head. */
  private product(half: "k_b" | "v_b", x: Tensor): Tensor {
    const w = this[half], [B, H, T, K] = x.shape, N = w.shape[1];
    if (!SplitKvB.isQuantized(w)) {
      let d = this.dense32.get(half);
      if (!d || d.of !== w) { d = { of: w, w: outsideArena(() => w.float().transpose(1, 2).contiguous()) }; this.dense32.set(half, d); }   // (H, K, N), kept
      const xr = w.dtype === "f16" || w.dtype === "bf16" ? x.to(w.dtype).float() : x.float();
      // row-invariant (one FMA chain per output over K): a decoded token gets the bits it gets inside a prefill
      return matmul(xr, d.w, { rowInvariant: true });
    }
    // every head in one backend call: head h's rows (B·T, K) and output (B·T, N) are slices of (H, B, T, ·) buffers
    const lin = this.headsOf(half), M = B * T;
    const xb = x.float().permute(1, 0, 2, 3).contiguous().buffer() as Float32Array;
    const out = allocate("f32", H * M * N) as Float32Array;
    QLinear.projectEach(lin, M, lin.map((_, h) => xb.subarray(h * M * K, (h + 1) * M * K)), lin.map((_, h) => out.subarray(h * M * N, (h + 1) * M * N)));
    return new Tensor(out, "f32", [H, B, T, N]).permute(1, 0, 2, 3);
  }

  /** q_nope (B, H, T, dn) → its absorbed form (B, H, T, r). */
  absorbQuery(qNope: Tensor): Tensor { return this.product("k_b", qNope); }
  /** The attention's latent output (B, H, T, r) → the heads' values (B, H, T, dv). */
  expandValue(oLat: Tensor): Tensor { return this.product("v_b", oLat); }

  /** kv_b_proj's dense weight [H·(dn + dv), r] in f32 (Hugging Face order), e.g. to save or re-export it. */
  dense(): Tensor {
    const f = (half: "k_b" | "v_b") => {
      const w = this[half];
      return SplitKvB.isQuantized(w) ? dequantizeWeight({ weight: w, scale: this[`${half}_scale`] }) : w.float();
    };
    const kb = f("k_b").transpose(1, 2).contiguous();                                // (H, dn, r)
    return concat([kb, f("v_b")], 1).reshape(this.H * (this.dn + this.dv), this.r);
  }
}

function dequantizeRowsSingle(d: QuantWeightData, r: number, out: Float32Array): void {
  const q = new Int8Array(d.data.buffer, d.data.byteOffset + r * d.K, d.K), s = d.scales![r];
  for (let k = 0; k < d.K; k++) out[k] = q[k] * s;
}

// ---- the pass

/** The type a matrix with rows of K values gets when `type` is asked for (llama.cpp-style fallback), and why. */
export function chooseType(type: QuantKind, K: number): { type: QuantKind | "f16"; reason?: string } {
  if (type === "int8") return { type };
  const bs = QUANT_TYPES[type].blockSize;
  if (K % bs === 0) return { type };
  if (type === "q4_K" && K % 32 === 0) return { type: "q8_0", reason: `row length ${K} is not a multiple of 256` };
  return { type: "f16", reason: `row length ${K} is not a multiple of ${type === "q4_K" ? 256 : 32}${type === "q4_K" ? " or 32" : ""}` };
}

export interface QuantizeReport {
  type: QuantKind;
  /** Tensors (Hugging Face names) stored in another type than asked, and why. */
  fallbacks: { name: string; type: QuantKind | "f16"; reason: string }[];
  /** Matrices kept in float on purpose (not fallbacks): names and why. */
  kept: { name: string; reason: string }[];
  quantized: number;
}

export interface QuantizeOptions { /** Leave the token embedding (and a tied head) in float. Default false (llama.cpp quantizes it too). */ keepEmbedding?: boolean }

type Parent = Record<string, unknown>;

/** Replaces Linear layers (and the token embedding) by quantized ones, in place; returns what was done. */
export function quantizeModel(model: CausalLM, type: QuantKind, o: QuantizeOptions = {}): QuantizeReport {
  if (!QUANT_KINDS.includes(type)) throw new FathomError("quantize", `unknown type '${type}' (expected ${QUANT_KINDS.join(", ")})`);
  const rep: QuantizeReport = { type, fallbacks: [], kept: [], quantized: 0 };
  const visit = (m: Module, prefix: string): void => {
    const rec = m as unknown as Parent;
    for (const key of Object.keys(rec)) {
      const v = rec[key];
      const kids: [string, unknown, (x: Module) => void][] = Array.isArray(v)
        ? v.map((c, i) => [`${prefix}${key}.${i}`, c, (x: Module) => { v[i] = x; }])
        : [[`${prefix}${key}`, v, (x: Module) => { rec[key] = x; }]];
      for (const [name, c, set] of kids) {
        if (key === "lm_head" && m === model && model.tieWordEmbeddings) continue;     // handled with the embedding
        if (c instanceof Linear) {
          if (m instanceof MultiHeadLatentAttention && key === "kv_b_proj") { set(splitKvB(m, c.weight, type, name, rep)); continue; }
          const q = quantizeLinearWeight(c.weight, type, name + ".weight", rep);
          if (q === "f16") { c.weight = c.weight.to("f16").to(c.weight.dtype).detach(); c.rowInvariant = true; continue; }   // f16 values, same dtype
          set(new QLinear(c.inFeatures, c.outFeatures, q, c.bias));
        } else if (c instanceof SplitKvB && m instanceof MultiHeadLatentAttention) {
          set(splitKvB(m, c.dense(), type, name, rep));
        } else if (c instanceof QLinear) {
          const q = quantizeLinearWeight(c.dequantized(), type, name + ".weight", rep);
          if (q === "f16") continue;
          set(new QLinear(c.inFeatures, c.outFeatures, q, c.bias));
        } else if (c instanceof Module && key !== "lm_head") visit(c, `${name}.`);
      }
    }
  };
  visit(model, "");
  const emb = model.model.embed_tokens as Embedding | QEmbedding;
  if (!o.keepEmbedding) {
    const w = emb instanceof QEmbedding ? dequantizeWeight({ weight: emb.weight, scale: emb.weight_scale }) : emb.weight;
    const q = quantizeLinearWeight(w, type, "model.embed_tokens.weight", rep);
    if (q !== "f16") {
      const qe = new QEmbedding(w.shape[0], w.shape[1], q);
      (model.model as unknown as Parent).embed_tokens = qe;
      if (model.tieWordEmbeddings) (model as unknown as Parent).lm_head = new QLinear(w.shape[1], w.shape[0], q);
    } else if (emb instanceof Embedding) emb.weight = emb.weight.to("f16").to("f32").detach();
  }
  return rep;
}

/** kv_b_proj [H·(dn + dv), r] → attn_k_b [H, r, dn] and attn_v_b [H, dv, r], each quantized (or its f16 fallback). */
function splitKvB(m: MultiHeadLatentAttention, w: Tensor, type: QuantKind, name: string, rep: QuantizeReport): SplitKvB {
  const { H, dn, dv, r } = m;
  const kvb = w.float().reshape(H, dn + dv, r);
  const half = (t: Tensor, n: string): QWeight => {
    const q = quantizeLinearWeight(t, type, `${name}.${n}`, rep);
    return q === "f16" ? { weight: t.to("f16").detach(), scale: null } : q;
  };
  return new SplitKvB(H, dn, dv, r, half(kvb.slice(1, 0, dn).transpose(1, 2).contiguous(), "k_b"), half(kvb.slice(1, dn).contiguous(), "v_b"));
}

function quantizeLinearWeight(w: Tensor, type: QuantKind, name: string, rep: QuantizeReport): QWeight | "f16" {
  const c = chooseType(type, w.shape[w.ndim - 1]);
  if (c.reason) rep.fallbacks.push({ name, type: c.type, reason: c.reason });
  if (c.type === "f16") return "f16";
  rep.quantized++;
  return quantizeWeight(w, c.type);
}

export function formatReport(r: QuantizeReport): string {
  const lines = [`quantized ${r.quantized} matrices to ${r.type}`];
  for (const f of r.fallbacks) lines.push(`  fallback: ${f.name} → ${f.type} (${f.reason})`);
  for (const k of r.kept) lines.push(`  kept float: ${k.name} (${k.reason})`);
  return lines.join("\n");
}

declare module "../models/decoder.js" {
  interface CausalLM {
    /** Quantizes the model in place (Linear → QLinear, embedding → QEmbedding); returns the model. See quantizeModel. */
    quantize(type: QuantKind, o?: QuantizeOptions): this;
  }
}
CausalLM.prototype.quantize = function (this: CausalLM, type: QuantKind, o?: QuantizeOptions) {
  quantizeModel(this, type, o);
  return this;
};

export type { BlockDType };
