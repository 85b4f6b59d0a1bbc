// Cross entropy over the last axis with ignore_index (Hugging Face / PyTorch semantics: the mean is over the
// targets that are not ignored; all ignored gives NaN, as PyTorch does).
import { DTypeError, ShapeError, fmtShape } from "../errors.js";
import { Tensor } from "../tensor.js";
import { cast, compare, div, unary, where } from "./elementwise.js";
import { logSoftmax, sum } from "./reduce.js";
import { gather } from "./index_ops.js";
import { squeeze, unsqueeze } from "./movement.js";

export interface CrossEntropyOptions { ignoreIndex?: number; reduction?: "mean" | "sum" | "none" }

/** logits [..., C], targets i32 [...] → scalar (mean/sum) or per-target losses (none). */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100, reduction = opts.reduction ?? "mean";
  if (targets.dtype !== "i32") throw new DTypeError("crossEntropy", `targets must be i32, got ${targets.dtype}`);
  const C = logits.shape[logits.ndim - 1];
  if (logits.ndim !== targets.ndim + 1 || targets.shape.some((s, i) => s !== logits.shape[i]))
    throw new ShapeError("crossEntropy", `logits ${fmtShape(logits.shape)} do not match targets ${fmtShape(targets.shape)} (expected [..., C] and [...])`);
  const tb = targets.buffer() as Int32Array;
  for (const t of tb) if (t !== ignore && (t < 0 || t >= C)) throw new ShapeError("crossEntropy", `target ${t} out of range for ${C} classes (ignore_index ${ignore})`);
  const keep = compare(targets, ignore, "ne");
  const safe = where(keep, targets, 0);
  const lp = squeeze(gather(logSoftmax(logits, -1), -1, unsqueeze(safe, -1)), -1);
  const losses = where(keep, unary(lp, "neg"), 0);
  if (reduction === "none") return losses;
  const total = sum(losses);
  if (reduction === "sum") return total;
  return div(total, sum(cast(keep, losses.dtype)));
}

