// matmul and batched matmul with broadcasting batch dims. Transposed views go to the GEMM kernel as
// transpose flags (no copy); bf16 @ bf16 runs the bf16 GEMM (f32 accumulation) and rounds to bf16.
import { allocate, isFloat, promote } from "../dtype.js";
import { DTypeError, ShapeError, fmtShape } from "../errors.js";
import { broadcastShapes, numel } from "../shape.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import type { Backend, FArr } from "../backend/backend.js";
import { cast } from "./elementwise.js";
import { contiguous, expand, reshape, squeeze, transpose, unsqueeze } from "./movement.js";
import { sumTo } from "./reduce.js";

interface MatView { data: Tensor["data"]; offset: number; stride: number; ld: number; trans: boolean }

/** How the kernel can read the last two dims [rows, cols] of t with the batch dims flattened; null if it cannot. */
function asMatrix(t: Tensor, batchShape: number[]): MatView | null {
  const nd = t.ndim, rows = t.shape[nd - 2], cols = t.shape[nd - 1];
  const sr = t.strides[nd - 2], sc = cols === 1 ? 1 : t.strides[nd - 1];
  let trans: boolean, ld: number;
  if (sc === 1 && (rows === 1 || sr >= cols)) { trans = false; ld = rows === 1 ? Math.max(cols, 1) : sr; }
  else if ((sr === 1 || rows === 1) && (cols === 1 || sc >= rows)) { trans = true; ld = cols === 1 ? Math.max(rows, 1) : sc; }
  else return null;
  // Batch dims must collapse to a single stride (all-broadcast gives stride 0).
  let stride: number | null = null, expect = 0;
  for (let i = batchShape.length - 1; i >= 0; i--) {
    if (batchShape[i] === 1) continue;
    const s = t.strides[i];
    if (stride === null) stride = s;
    else if (s !== expect) return null;
    expect = s * batchShape[i];
  }
  return { data: t.data, offset: t.offset, stride: stride ?? 0, ld, trans };
}

export interface MatmulOptions {
  /**
   * Every output row the same bits whatever the number of rows (and whichever rows come with it), so that one token
   * decoded alone gives what the same token gives inside a prefill. Slower for many rows; for small products such as
   * MoE routers. Gradients are unchanged.
   */
  rowInvariant?: boolean;
}

export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new ShapeError("matmul", `both operands need at least 1 dim: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
  if (a.ndim === 1 && b.ndim === 1) return reshape(matmul(unsqueeze(a, 0), unsqueeze(b, -1), o), []);
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b, o), -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, -1), o), -1);
  const K = a.shape[a.ndim - 1];
  if (b.shape[b.ndim - 2] !== K) throw new ShapeError("matmul", `inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
  if (!isFloat(a.dtype) || !isFloat(b.dtype)) throw new DTypeError("matmul", `needs floating operands, got ${a.dtype} @ ${b.dtype}`);
  const dtype = promote(a.dtype, b.dtype, "matmul");
  if (dtype === "f16") return cast(matmul(cast(a, "f32"), cast(b, "f32"), o), "f16");
  const ac = cast(a, dtype), bc = cast(b, dtype);
  const M = a.shape[a.ndim - 2], N = b.shape[b.ndim - 1];
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), "matmul");
  const batch = numel(batchShape);
  const bf16 = dtype === "bf16";
  const view = (t: Tensor, r: number, c: number): MatView => {
    const e = expand(t, [...batchShape, r, c]);
    return asMatrix(e, batchShape) ?? asMatrix(contiguous(e), batchShape)!;
  };
  const av = view(ac, M, K), bv = view(bc, K, N);
  const cdt = bf16 ? "f32" : dtype;
  const C = allocate(cdt, batch * M * N) as FArr;
  if (batch * M * N > 0) {
    getBackend().gemm({
      batch, M, N, K,
      A: av.data.subarray(av.offset) as FArr, strideA: av.stride, lda: av.ld, transA: av.trans,
      B: bv.data.subarray(bv.offset) as FArr, strideB: bv.stride, ldb: bv.ld, transB: bv.trans,
      C, strideC: M * N, ldc: N, alpha: 1, beta: 0, bf16, rowInvariant: o.rowInvariant === true,
    });
  }
  let y = new Tensor(C, cdt, [...batchShape, M, N]);
  if (bf16) y = cast(y, "bf16");
  return record(y, "matmul", [ac, bc], (g) => [
    ac.requiresGrad ? sumTo(matmul(g, transpose(bc, -2, -1)), ac.shape) : null,
    bc.requiresGrad ? sumTo(matmul(transpose(ac, -2, -1), g), bc.shape) : null,
  ]);
}

/**
 * A weight packed once for repeated `x @ op(w)` (inference: the packed copy takes no gradient, x does).
 * `transpose: true` takes w as [N, K] (nn.Linear's layout) and multiplies by its transpose.
 */
export class PackedWeight {
  private packed: object | null = null;
  private packedFor: Backend | null = null;
  readonly K: number;
  readonly N: number;
  constructor(readonly weight: Tensor, readonly transpose: boolean) {
    if (weight.ndim !== 2) throw new ShapeError("packWeight", `weight must be 2-D, got ${fmtShape(weight.shape)}`);
    if (weight.dtype !== "f32" && weight.dtype !== "bf16") throw new DTypeError("packWeight", `weight must be f32 or bf16, got ${weight.dtype}`);
    [this.K, this.N] = transpose ? [weight.shape[1], weight.shape[0]] : [weight.shape[0], weight.shape[1]];
  }
  /** The backend's packed copy (made on first use, and again if the backend changed), or null without a packing kernel. */
  packedFor_(be: Backend): object | null {
    if (!be.packB) return null;
    if (this.packedFor !== be) {
      const w = this.weight.contiguous();
      this.packed = be.packB(this.weight.dtype === "bf16", this.K, this.N, w.buffer() as Float32Array | Uint16Array, w.shape[1], this.transpose);
      this.packedFor = be;
    }
    return this.packed;
  }
}

export function packWeight(w: Tensor, o: { transpose?: boolean } = {}): PackedWeight {
  const p = new PackedWeight(w.detach(), !!o.transpose);
  p.packedFor_(getBackend());
  return p;
}

/** x [..., K] @ op(w) → [..., N] through a packed weight. */
export function matmulPacked(x: Tensor, p: PackedWeight): Tensor {
  const K = x.shape[x.ndim - 1];
  if (x.ndim === 0 || K !== p.K) throw new ShapeError("matmul", `inner dimensions differ: ${fmtShape(x.shape)} @ [${p.K}, ${p.N}]`);
  const be = getBackend();
  const wt = p.transpose ? transpose(p.weight, 0, 1) : p.weight;
  const dt = p.weight.dtype;
  const packed = x.dtype === dt ? p.packedFor_(be) : null;
  if (!packed || !be.gemmPacked) return matmul(x, wt);
  const M = x.numel / Math.max(K, 1);
  const C = new Float32Array(M * p.N);
  if (M > 0) be.gemmPacked(M, x.buffer() as Float32Array | Uint16Array, K, packed, C);
  let y = new Tensor(C, "f32", [...x.shape.slice(0, -1), p.N]);
  if (dt === "bf16") y = cast(y, "bf16");
  return record(y, "matmulPacked", [x], (g) => [matmul(g, transpose(wt, 0, 1))]);
}

