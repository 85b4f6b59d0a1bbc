// Shape arithmetic: sizes, row-major strides, broadcasting, axis normalisation.
import { ShapeError, fmtShape } from "./errors.js";

export type Shape = readonly number[];

export const numel = (s: Shape): number => s.reduce((a, b) => a * b, 1);

export function rowMajorStrides(s: Shape): number[] {
  const st = new Array<number>(s.length);
  let acc = 1;
  for (let i = s.length - 1; i >= 0; i--) { st[i] = acc; acc *= s[i]; }
  return st;
}

export function checkShape(s: readonly number[], op: string): number[] {
  for (const d of s) if (!Number.isInteger(d) || d < 0) throw new ShapeError(op, `invalid shape ${fmtShape(s)}: sizes must be integers ≥ 0`);
  return [...s];
}

export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1, db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new ShapeError(op, `shapes cannot broadcast: ${fmtShape(a)} and ${fmtShape(b)}`);
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides that read a tensor of shape `s` (strides `st`) as if broadcast to `to` (0 on broadcast axes). */
export function broadcastStrides(s: Shape, st: readonly number[], to: Shape): number[] {
  const out = new Array<number>(to.length).fill(0);
  const off = to.length - s.length;
  for (let i = 0; i < s.length; i++) out[off + i] = s[i] === 1 && to[off + i] !== 1 ? 0 : st[i];
  return out;
}

export function normDim(dim: number, ndim: number, op: string): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= ndim) throw new ShapeError(op, `dim ${dim} out of range for a tensor of ${ndim} dims`);
  return d;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
