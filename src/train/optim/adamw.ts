// AdamW (PyTorch semantics: decoupled weight decay, bias-corrected moments) over a list of parameters, one
// fused kernel call per parameter. Moments are kept in the parameter's dtype (f32 or f64).
import { FathomError } from "../../core/errors.js";
import { Tensor } from "../../core/tensor.js";
import { getBackend } from "../../core/backend/index.js";
import type { FArr } from "../../core/backend/backend.js";

export interface AdamWOptions { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number }

export class AdamW {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  stepCount = 0;
  private state = new Map<Tensor, { m: FArr; v: FArr }>();

  constructor(readonly params: Tensor[], o: AdamWOptions = {}) {
    this.lr = o.lr ?? 1e-3;
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? 0.01;
    for (const p of params) {
      if (p.dtype !== "f32" && p.dtype !== "f64") throw new FathomError("AdamW", `parameter of dtype ${p.dtype}: AdamW updates f32 or f64 parameters (keep f32 master weights for bf16 training)`);
      if (!p.isContiguous || p.gradFn) throw new FathomError("AdamW", "parameters must be contiguous leaf tensors");
    }
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    this.stepCount++;
    const be = getBackend();
    for (const p of this.params) {
      if (!p.grad) continue;
      const pb = p.buffer() as FArr;
      let s = this.state.get(p);
      if (!s) {
        const Ctor = p.dtype === "f64" ? Float64Array : Float32Array;
        s = { m: new Ctor(pb.length), v: new Ctor(pb.length) };
        this.state.set(p, s);
      }
      const g = p.grad.dtype === p.dtype ? p.grad : p.grad.to(p.dtype);
      be.adamw(pb, g.buffer() as FArr, s.m, s.v, { lr: this.lr, beta1: this.betas[0], beta2: this.betas[1], eps: this.eps,
        weightDecay: this.weightDecay, step: this.stepCount });
    }
  }

  zeroGrad(): void { for (const p of this.params) p.grad = null; }
}
