// DeepSeekMoE: shared experts plus routed experts chosen per token by a router. Scoring is softmax (V2) or sigmoid
// (V3); selection is greedy, group-limited greedy (V2) or bias-corrected group-limited (noaux_tc, V3: the bias only
// chooses, the unbiased scores weight). Router math runs in f32. Training extras: the V2 auxiliary balance loss
// (sequence-wise or batch-wise) and V3's auxiliary-loss-free bias update (updateBias after each step).
import { FathomError } from "../core/errors.js";
import { allocate } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import { zeros } from "../core/ops/create.js";
import { concat } from "../core/ops/movement.js";
import { gather, indexAdd, indexSelect } from "../core/ops/index_ops.js";
import { sum } from "../core/ops/reduce.js";
import { matmul } from "../core/ops/linalg.js";
import { Module } from "./module.js";
import { MLP } from "./layers.js";

export interface MoEConfig {
  hidden_size: number; moe_intermediate_size: number; n_routed_experts: number; n_shared_experts: number | null;
  num_experts_per_tok: number; topk_method: string; n_group: number | null; topk_group: number | null;
  scoring_func: string; norm_topk_prob: boolean; routed_scaling_factor: number;
  aux_loss_alpha?: number; seq_aux?: boolean;
}

export class MoEGate extends Module {
  declare weight: Tensor;
  declare e_score_correction_bias: Tensor | null;
  constructor(readonly c: MoEConfig) {
    super();
    this.param("weight", zeros([c.n_routed_experts, c.hidden_size]));
    this.buffer("e_score_correction_bias", c.topk_method === "noaux_tc" ? zeros([c.n_routed_experts]) : null);
  }

  /** x (N, D) → chosen experts (N·K, row-major), their weights (N, K) and all scores (N, E). */
  route(x: Tensor): { idx: Int32Array; weights: Tensor; scores: Tensor } {
    const c = this.c, E = c.n_routed_experts, K = c.num_experts_per_tok, N = x.shape[0];
    // (N, E); row-invariant so that a token routed alone (decode) gets the scores it gets inside a prefill, bit for bit
    const logits = matmul(x.to("f32"), this.weight.to("f32").T, { rowInvariant: true });
    const scores = c.scoring_func === "sigmoid" ? logits.sigmoid() : logits.softmax(-1);
    const s = scores.detach().toArray();
    const bias = this.e_score_correction_bias?.to("f32").toArray();
    const groups = c.topk_method === "greedy" ? 1 : c.n_group ?? 1, keepGroups = c.topk_method === "greedy" ? 1 : c.topk_group ?? groups;
    if (E % groups !== 0) throw new FathomError("moe", `n_routed_experts ${E} is not divisible by n_group ${groups}`);
    const per = E / groups;
    const idx = new Int32Array(N * K);
    const sc = new Float64Array(E), order = Array.from({ length: E }, (_, i) => i), gOrder = Array.from({ length: groups }, (_, i) => i);
    const gScore = new Float64Array(groups);
    for (let n = 0; n < N; n++) {
      for (let e = 0; e < E; e++) sc[e] = s[n * E + e] + (bias ? bias[e] : 0);
      if (groups > 1) {
        for (let g = 0; g < groups; g++) {
          // group score: max (group_limited_greedy) or the sum of the top two (noaux_tc)
          let a = -Infinity, b = -Infinity;
          for (let e = g * per; e < (g + 1) * per; e++) { const v = sc[e]; if (v > a) { b = a; a = v; } else if (v > b) b = v; }
          gScore[g] = c.topk_method === "noaux_tc" ? a + (per > 1 ? b : 0) : a;
        }
        gOrder.sort((p, q) => gScore[q] - gScore[p] || p - q);
        for (let j = keepGroups; j < groups; j++) for (let e = gOrder[j] * per; e < (gOrder[j] + 1) * per; e++) sc[e] = -Infinity;
      }
      order.sort((p, q) => sc[q] - sc[p] || p - q);
      for (let k = 0; k < K; k++) idx[n * K + k] = order[k];
    }
    let weights = gather(scores, 1, new Tensor(idx, "i32", [N, K]));               // unbiased scores of the chosen
    if (c.norm_topk_prob && K > 1) weights = weights.div(sum(weights, -1, true).add(1e-20));
    if (c.routed_scaling_factor !== 1) weights = weights.mul(c.routed_scaling_factor);
    return { idx, weights, scores };
  }
}

/** A 1-D i32 tensor of the given values (its storage from allocate: a decode step's arena). */
function i32(v: readonly number[]): Tensor {
  const a = allocate("i32", v.length) as Int32Array;
  for (let i = 0; i < v.length; i++) a[i] = v[i];
  return new Tensor(a, "i32", [v.length]);
}

export class DeepseekMoE extends Module {
  declare gate: MoEGate;
  declare experts: MLP[];
  declare shared_experts: MLP | undefined;
  /** The auxiliary balance loss of the last forward in training mode (V2), else null. */
  auxLoss: Tensor | null = null;
  /** Tokens routed to each expert in the last forward (for V3's bias update). */
  lastLoad: Float64Array;

  constructor(readonly c: MoEConfig) {
    super();
    this.child("gate", new MoEGate(c));
    this.child("experts", Array.from({ length: c.n_routed_experts }, () => new MLP(c.hidden_size, c.moe_intermediate_size)));
    if (c.n_shared_experts) this.child("shared_experts", new MLP(c.hidden_size, c.moe_intermediate_size * c.n_shared_experts));
    this.lastLoad = new Float64Array(c.n_routed_experts);
  }

  forward(x: Tensor): Tensor {
    const [B, T, D] = x.shape;
    const N = B * T, K = this.c.num_experts_per_tok, E = this.c.n_routed_experts;
    const flat = x.reshape(N, D);
    const { idx, weights, scores } = this.gate.route(flat);
    const wFlat = weights.reshape(N * K);
    const rows: number[][] = Array.from({ length: E }, () => []), slots: number[][] = Array.from({ length: E }, () => []);
    for (let p = 0; p < N * K; p++) { rows[idx[p]].push(Math.floor(p / K)); slots[idx[p]].push(p); }
    const outs: Tensor[] = [], dest: Tensor[] = [];
    if (this.lastLoad.length !== E) this.lastLoad = new Float64Array(E);
    for (let e = 0; e < E; e++) this.lastLoad[e] = rows[e].length;
    for (let e = 0; e < E; e++) {
      if (!rows[e].length) continue;
      const at = i32(rows[e]);
      const w = indexSelect(wFlat, 0, i32(slots[e])).reshape(-1, 1);
      outs.push(this.experts[e].forward(indexSelect(flat, 0, at)).mul(w.to(x.dtype)));
      dest.push(at);
    }
    let y = outs.length ? indexAdd(zeros([N, D], x.dtype), 0, concat(dest, 0), concat(outs, 0)) : zeros([N, D], x.dtype);
    if (this.shared_experts) y = y.add(this.shared_experts.forward(flat));
    this.auxLoss = this.training && (this.c.aux_loss_alpha ?? 0) > 0 ? this.balanceLoss(scores, idx, B, T) : null;
    return y.reshape(B, T, D);
  }

  /** V2: α·Σ_i f_i·P_i with f the (normalised) routing counts and P the mean scores, per sequence or per batch. */
  private balanceLoss(scores: Tensor, idx: Int32Array, B: number, T: number): Tensor {
    const E = this.c.n_routed_experts, K = this.c.num_experts_per_tok, alpha = this.c.aux_loss_alpha!;
    const seq = this.c.seq_aux !== false;
    const G = seq ? B : 1, per = seq ? T : B * T;
    const f = new Float32Array(G * E);
    for (let p = 0; p < idx.length; p++) f[Math.floor(p / K / per) * E + idx[p]] += E / (per * K);
    const P = scores.reshape(G, per, E).mean(1);                                     // (G, E)
    return P.mul(new Tensor(f, "f32", [G, E])).sum(-1).mean().mul(alpha);
  }

  /** V3 auxiliary-loss-free balancing: b_i += γ·sign(mean load − load_i), from the last forward's loads. */
  updateBias(gamma: number): void {
    const b = this.gate.e_score_correction_bias;
    if (!b) throw new FathomError("moe", "updateBias needs a router with e_score_correction_bias (topk_method noaux_tc)");
    const load = this.lastLoad, mean = load.reduce((a, v) => a + v, 0) / load.length;
    const cur = b.to("f32").toArray();
    const next = cur.map((v, i) => v + gamma * Math.sign(mean - load[i]));
    this.gate.e_score_correction_bias = new Tensor(Float32Array.from(next), "f32", [next.length]).to(b.dtype);
  }
}
