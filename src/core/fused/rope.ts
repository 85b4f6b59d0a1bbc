// Rotary position embedding. The first rotDim values of each row of x (last axis D) rotate by the angles of
// that row's position; the rest pass through. Two conventions:
//  - half-split (Hugging Face's rotate_half): pairs (i, i + rotDim/2);
//  - interleaved (GGUF / DeepSeek MLA rope part): pairs (2i, 2i + 1).
// cos/sin are tables [P, rotDim/2] (any scaling — linear, YaRN's frequencies and attention factor — is baked in
// by whoever builds them); `positions` (i32) broadcasts to x.shape[:-1], so either [B, H, T, D] with positions
// [B, 1, T] or [B, T, H, D] with positions [B, T, 1] works, with any offset (a KV cache's) already added.
import { DTypeError, FathomError, ShapeError, fmtShape } from "../errors.js";
import { allocate, isHalf } from "../dtype.js";
import { Tensor } from "../tensor.js";
import { record } from "../autograd.js";
import { getBackend } from "../backend/index.js";
import { add, cast, mul, sub } from "../ops/elementwise.js";
import { concat, reshape, slice } from "../ops/movement.js";
import { broadcastStrides } from "../shape.js";
import { indexSelect } from "../ops/index_ops.js";

export interface RopeOptions { interleaved?: boolean; rotDim?: number }

function check(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, o: RopeOptions) {
  const D = x.shape[x.ndim - 1], rotDim = o.rotDim ?? D;
  if (rotDim % 2 !== 0 || rotDim > D || rotDim < 0) throw new ShapeError("rope", `rotDim ${rotDim} must be even and ≤ the last dim of ${fmtShape(x.shape)}`);
  if (cos.ndim !== 2 || cos.shape[1] !== rotDim / 2 || sin.ndim !== 2 || sin.shape[0] !== cos.shape[0] || sin.shape[1] !== rotDim / 2)
    throw new ShapeError("rope", `cos ${fmtShape(cos.shape)} / sin ${fmtShape(sin.shape)} must be [P, ${rotDim / 2}]`);
  if (positions.dtype !== "i32") throw new DTypeError("rope", `positions must be i32, got ${positions.dtype}`);
  const rowShape = x.shape.slice(0, -1);
  const pos = rowPositions(positions, rowShape);
  const P = cos.shape[0];
  for (let i = 0; i < pos.length; i++) if (pos[i] < 0 || pos[i] >= P) throw new FathomError("rope", `position ${pos[i]} outside the table of ${P} positions`);
  return { D, rotDim, rowShape, pos, P };
}

/** positions broadcast to rowShape, one per row in row-major order (a plain loop over the view: a decode step's few
 * rows must not pay for an expand + copy). */
function rowPositions(positions: Tensor, rowShape: number[]): Int32Array {
  if (positions.ndim > rowShape.length || positions.shape.some((d, i) => d !== 1 && d !== rowShape[rowShape.length - positions.ndim + i]))
    throw new ShapeError("rope", `positions ${fmtShape(positions.shape)} do not broadcast to ${fmtShape(rowShape)}`);
  const st = broadcastStrides(positions.shape, positions.strides, rowShape);
  const n = rowShape.reduce((a, b) => a * b, 1), out = allocate("i32", n) as Int32Array, src = positions.data as Int32Array, nd = rowShape.length;
  if (nd === 0) { if (n) out[0] = src[positions.offset]; return out; }
  const idx = new Array<number>(nd).fill(0);
  let off = positions.offset;
  const inner = rowShape[nd - 1], s1 = st[nd - 1];
  for (let r = 0; r < n; r += inner) {
    for (let j = 0; j < inner; j++) out[r + j] = src[off + j * s1];
    for (let d = nd - 2; d >= 0; d--) {           // odometer over the outer dims
      off += st[d];
      if (++idx[d] < rowShape[d]) break;
      off -= st[d] * rowShape[d];
      idx[d] = 0;
    }
  }
  return out;
}

export function ropeReference(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, o: RopeOptions = {}): Tensor {
  const { D, rotDim, rowShape, pos } = check(x, cos, sin, positions, o);
  const half = rotDim / 2;
  const idx = new Tensor(pos, "i32", [pos.length]);
  const c = reshape(indexSelect(cast(cos, x.dtype), 0, idx), [...rowShape, half]);
  const s = reshape(indexSelect(cast(sin, x.dtype), 0, idx), [...rowShape, half]);
  const rot = slice(x, -1, 0, rotDim);
  let x1: Tensor, x2: Tensor;
  if (o.interleaved) { x1 = slice(rot, -1, 0, rotDim, 2); x2 = slice(rot, -1, 1, rotDim, 2); }
  else { x1 = slice(rot, -1, 0, half); x2 = slice(rot, -1, half, rotDim); }
  const y1 = sub(mul(x1, c), mul(x2, s));        // x1 cos θ − x2 sin θ
  const y2 = add(mul(x2, c), mul(x1, s));        // x2 cos θ + x1 sin θ
  let y = o.interleaved
    ? reshape(concat([reshape(y1, [...rowShape, half, 1]), reshape(y2, [...rowShape, half, 1])], -1), [...rowShape, rotDim])
    : concat([y1, y2], -1);
  if (rotDim < D) y = concat([y, slice(x, -1, rotDim, D)], -1);
  return y;
}

export function rope(x: Tensor, cos: Tensor, sin: Tensor, positions: Tensor, o: RopeOptions = {}): Tensor {
  if (isHalf(x.dtype)) return cast(rope(cast(x, "f32"), cos, sin, positions, o), x.dtype);
  const be = getBackend();
  if (!be.rope || x.dtype !== "f32") return ropeReference(x, cos, sin, positions, o);
  const { D, rotDim, pos, P } = check(x, cos, sin, positions, o);
  const rows = pos.length;
  const cb = cast(cos, "f32").buffer() as Float32Array, sb = cast(sin, "f32").buffer() as Float32Array;
  const y = allocate("f32", x.numel) as Float32Array;
  be.rope(rows, D, rotDim, x.buffer() as Float32Array, y, cb, sb, P, pos, !!o.interleaved, false);
  return record(new Tensor(y, "f32", x.shape), "rope", [x], (g) => {
    const dx = new Float32Array(x.numel);
    be.rope!(rows, D, rotDim, g.buffer() as Float32Array, dx, cb, sb, P, pos, !!o.interleaved, true);   // Rᵀ = R(−θ)
    return [new Tensor(dx, "f32", x.shape)];
  });
}
