// Basic layers: Linear (HF weight layout [out, in]), Embedding, RMSNorm and the SwiGLU MLP.
import { Tensor } from "../core/tensor.js";
import { zeros } from "../core/ops/create.js";
import { embedding } from "../core/ops/index_ops.js";
import { matmul } from "../core/ops/linalg.js";
import { rmsNorm } from "../core/fused/rms_norm.js";
import { swiglu } from "../core/fused/swiglu.js";
import { Module } from "./module.js";

export class Linear extends Module {
  declare weight: Tensor;
  declare bias: Tensor | null;
  /**
   * Each output row the same bits whatever the number of rows (see matmul's rowInvariant): set on the float matrices
   * left in a quantized model, whose quantized products are row-invariant already, so that decode equals prefill.
   */
  rowInvariant = false;
  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = false) {
    super();
    this.param("weight", zeros([outFeatures, inFeatures]));
    this.param("bias", bias ? zeros([outFeatures]) : null);
  }
  /** In the weight's dtype, as a Hugging Face model loaded in bf16 computes (bf16 GEMM with f32 accumulation). */
  forward(x: Tensor): Tensor {
    const w = this.weight;
    if (x.dtype !== w.dtype && (w.dtype === "bf16" || w.dtype === "f16")) x = x.to(w.dtype);
    const y = matmul(x, w.T, { rowInvariant: this.rowInvariant });   // (..., in) @ (in, out)
    return this.bias ? y.add(this.bias) : y;
  }
}

export class Embedding extends Module {
  declare weight: Tensor;
  constructor(readonly num: number, readonly dim: number) {
    super();
    this.param("weight", zeros([num, dim]));
  }
  forward(ids: Tensor): Tensor { return embedding(this.weight, ids); }
}

export class RMSNorm extends Module {
  declare weight: Tensor;
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.param("weight", zeros([dim]).add(1));
  }
  /** Computed in f32 and returned in x's dtype (HF LlamaRMSNorm). */
  forward(x: Tensor): Tensor {
    const w = this.weight.dtype === x.dtype || x.dtype !== "f32" ? this.weight : this.weight.to(x.dtype);
    return rmsNorm(x, w, this.eps);
  }
}

/**
 * A layer that can run together with layers of its kind on one input in a single backend call (quantized linears:
 * the input is quantized once and one parallel pass covers every weight). Layers with the same non-null fuseKey fuse.
 */
export interface Fusable { fuseKey(): string | null; forwardGroup(group: readonly Module[], x: Tensor): Tensor[] }

/** x through each layer (as each layer's forward gives it), in one call where the layers can fuse (see Fusable). */
export function forwardMany(layers: readonly Module[], x: Tensor): Tensor[] {
  const first = layers[0] as Module & Partial<Fusable>, key = layers.length > 1 ? first.fuseKey?.() : null;
  if (key && layers.every((l) => (l as Module & Partial<Fusable>).fuseKey?.() === key)) return first.forwardGroup!(layers, x);
  return layers.map((l) => (l as Module & { forward(x: Tensor): Tensor }).forward(x));
}

/** down(silu(gate(x)) * up(x)). */
export class MLP extends Module {
  declare gate_proj: Linear;
  declare up_proj: Linear;
  declare down_proj: Linear;
  constructor(hidden: number, intermediate: number) {
    super();
    this.child("gate_proj", new Linear(hidden, intermediate));
    this.child("up_proj", new Linear(hidden, intermediate));
    this.child("down_proj", new Linear(intermediate, hidden));
  }
  forward(x: Tensor): Tensor {
    const [gate, up] = forwardMany([this.gate_proj, this.up_proj], x);
    return this.down_proj.forward(swiglu(gate, up));
  }
}
