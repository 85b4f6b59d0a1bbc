// Scaled-dot-product attention. q [B, Hq, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] → [B, Hq, Tq, Dv].
// Grouped-query heads (Hq a multiple of Hkv), causal masking with a query offset (query i sees keys
// j ≤ i + qOffset; by default qOffset = Tk − Tq, as with a KV cache), and an additive (float) or boolean
// (true = attend) mask broadcastable to [B, Hq, Tq, Tk]. A query that sees no key outputs 0.
// The native kernel is tiled (memory O(T·block)); the reference builds the full score matrix.
//
// Layouts the native forward pass takes without a copy: q any contiguous f32 [B, Hq, Tq, D]; k and v any f32 view
// whose last axis is contiguous (stride 1, or size 1) and whose other strides are ≥ 0 — in particular a KV cache
// preallocated as [B, Hkv, capacity, hd] and narrowed/sliced along T to [B, Hkv, T, hd] (head stride capacity·hd,
// row stride hd), a [B, T, Hkv, hd] buffer permuted to [B, Hkv, T, hd], MLA's single [B, 1, cap, r + dr] latent
// cache with v = its narrow to the first r values of each row (row stride r + dr), or an expanded (stride 0) batch. Anything
// else (a transposed last axis, negative strides, f16/bf16) is copied to contiguous f32 first. The backward pass
// (training) takes contiguous copies of k and v.
import { DTypeError, ShapeError, fmtShape } from "../errors.js";
import { allocate, isHalf, isFloat } from "../dtype.js";
import { broadcastShapes, broadcastStrides } from "../shape.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import { add, cast, compare, mul, scalarTensor, where } from "../ops/elementwise.js";
import { max, softmax } from "../ops/reduce.js";
import { expand, reshape, transpose, unsqueeze } from "../ops/movement.js";
import { matmul } from "../ops/linalg.js";
import { arange } from "../ops/create.js";

export interface SdpaOptions { causal?: boolean; mask?: Tensor | null; scale?: number; qOffset?: number }

function dims(q: Tensor, k: Tensor, v: Tensor, o: SdpaOptions) {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new ShapeError("sdpa", `q, k, v must be 4-D [B, H, T, D], got ${fmtShape(q.shape)}, ${fmtShape(k.shape)}, ${fmtShape(v.shape)}`);
  const [B, Hq, Tq, D] = q.shape, [, Hkv, Tk] = k.shape, Dv = v.shape[3];
  if (k.shape[0] !== B || v.shape[0] !== B || k.shape[3] !== D || v.shape[1] !== Hkv || v.shape[2] !== Tk || Hkv === 0 || Hq % Hkv !== 0)
    throw new ShapeError("sdpa", `incompatible q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} (need k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], Hq % Hkv = 0)`);
  const qOffset = o.qOffset ?? Math.max(Tk - Tq, 0);
  if (!Number.isInteger(qOffset) || qOffset < 0) throw new ShapeError("sdpa", `qOffset must be an integer ≥ 0, got ${qOffset}`);
  const scale = o.scale ?? 1 / Math.sqrt(D);
  const full = [B, Hq, Tq, Tk];
  if (o.mask) {
    if (o.mask.dtype !== "bool" && !isFloat(o.mask.dtype)) throw new DTypeError("sdpa", `mask must be bool or float, got ${o.mask.dtype}`);
    const s = broadcastShapes(o.mask.shape, full, "sdpa");
    if (s.some((d, i) => d !== full[i])) throw new ShapeError("sdpa", `mask ${fmtShape(o.mask.shape)} does not broadcast to ${fmtShape(full)}`);
  }
  return { B, Hq, Hkv, Tq, Tk, D, Dv, qOffset, scale, full };
}

export function sdpaReference(q: Tensor, k: Tensor, v: Tensor, o: SdpaOptions = {}): Tensor {
  const { B, Hq, Hkv, Tq, Tk, D, Dv, qOffset, scale } = dims(q, k, v, o);
  const g = Hq / Hkv;
  const rep = (t: Tensor, d: number) => (g === 1 ? t : reshape(expand(unsqueeze(t, 2), [B, Hkv, g, Tk, d]), [B, Hq, Tk, d]));
  let s = mul(matmul(q, transpose(rep(k, D), -2, -1)), scale);                     // (B, Hq, Tq, Tk)
  let allowed: Tensor | null = null;
  if (o.causal) {
    const qi = reshape(arange(qOffset, qOffset + Tq), [Tq, 1]), kj = reshape(arange(0, Tk), [1, Tk]);
    allowed = compare(kj, qi, "le");                                               // j ≤ i + qOffset
  }
  if (o.mask && o.mask.dtype === "bool") allowed = allowed ? where(o.mask, allowed, scalarTensor(0, "bool")) : o.mask;
  if (o.mask && o.mask.dtype !== "bool") s = add(s, cast(o.mask, s.dtype));
  if (allowed) s = where(allowed, s, -Infinity);
  // Rows with no finite score attend to nothing: output 0 (softmax alone would give NaN).
  const live = compare(max(s.detach(), -1, true), -Infinity, "gt");
  const p = where(live, softmax(where(live, s, 0), -1), 0);
  return matmul(p, rep(v, Dv));
}

/** An f32 [B, H, T, d] k or v for the native kernel: contiguous data and null strides, or (a view whose last axis is
 * contiguous) its storage from the view's offset and strides [batch, head, row], read in place. */
function kvView(t: Tensor): [Float32Array, Float64Array | null] {
  if (t.isContiguous) return [t.buffer() as Float32Array, null];
  const st = t.strides;
  if ((st[3] === 1 || t.shape[3] === 1) && st[0] >= 0 && st[1] >= 0 && st[2] >= 0 && t.data instanceof Float32Array)
    return [t.data.subarray(t.offset), strides3(st[0], st[1], st[2])];
  return [t.buffer() as Float32Array, null];
}

function strides3(a: number, b: number, c: number): Float64Array {
  const s = allocate("f64", 3) as Float64Array;
  s[0] = a; s[1] = b; s[2] = c;
  return s;
}

export function sdpa(q: Tensor, k: Tensor, v: Tensor, o: SdpaOptions = {}): Tensor {
  const d = dims(q, k, v, o);
  if (isHalf(q.dtype)) return cast(sdpa(cast(q, "f32"), cast(k, "f32"), cast(v, "f32"), o), q.dtype);
  const be = getBackend();
  if (!be.attention || q.dtype !== "f32" || k.dtype !== "f32" || v.dtype !== "f32") return sdpaReference(q, k, v, o);
  const { B, Hq, Hkv, Tq, Tk, D, Dv, qOffset, scale, full } = d;
  let mask: Float32Array | Uint8Array | null = null, maskStrides: Int32Array | null = null;
  if (o.mask) {
    const m = o.mask.dtype === "bool" || o.mask.dtype === "f32" ? o.mask : cast(o.mask, "f32");
    mask = m.data.subarray(m.offset) as Float32Array | Uint8Array;
    const bs = broadcastStrides(m.shape, m.strides, full);
    maskStrides = allocate("i32", bs.length) as Int32Array;
    maskStrides.set(bs);
  }
  const qb = q.buffer() as Float32Array;
  const [kv, ks] = kvView(k), [vv, vs] = kvView(v);
  const out = allocate("f32", B * Hq * Tq * Dv) as Float32Array, lse = allocate("f32", B * Hq * Tq) as Float32Array;
  const args = { B, Hq, Hkv, Tq, Tk, D, Dv, q: qb, k: kv, v: vv, out, lse, scale, causal: !!o.causal, qOffset, mask, maskStrides };
  be.attention({ ...args, kStrides: ks, vStrides: vs });
  return record(new Tensor(out, "f32", [B, Hq, Tq, Dv]), "sdpa", [q, k, v], (g) => {
    const kb = k.buffer() as Float32Array, vb = v.buffer() as Float32Array;
    const dq = new Float32Array(qb.length), dk = new Float32Array(kb.length), dv = new Float32Array(vb.length);
    be.attentionBackward!({ ...args, k: kb, v: vb, dout: g.buffer() as Float32Array, dq, dk, dv });
    return [new Tensor(dq, "f32", q.shape), new Tensor(dk, "f32", k.shape), new Tensor(dv, "f32", v.shape)];
  });
}
