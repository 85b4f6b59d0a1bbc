// Rotary embedding tables for the scaling schemes in Hugging Face configs: default, linear, YaRN (DeepSeek-V2/V3)
// and llama3. inv_freq and YaRN's attention factor follow transformers' modeling_rope_utils; tables are [P, dim/2]
// and grow on demand, so a 160K-token context costs nothing until it is used.
import { FathomError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";

export interface RopeScaling {
  type?: string; rope_type?: string; factor?: number; original_max_position_embeddings?: number;
  beta_fast?: number; beta_slow?: number; mscale?: number; mscale_all_dim?: number; attention_factor?: number;
  low_freq_factor?: number; high_freq_factor?: number;
}

export function yarnGetMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/** inv_freq (length dim/2) and the cos/sin amplitude factor for a rope config. */
export function ropeParameters(dim: number, base: number, scaling: RopeScaling | null | undefined, maxPos: number): { invFreq: Float64Array; attentionFactor: number } {
  const half = dim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / Math.pow(base, (2 * i) / dim);
  const kind = scaling ? (scaling.rope_type ?? scaling.type ?? "default") : "default";
  if (kind === "default") return { invFreq, attentionFactor: 1 };
  const factor = scaling!.factor;
  if (kind === "linear") {
    if (!(factor! > 0)) throw new FathomError("config", "rope_scaling.factor must be > 0 for linear scaling");
    for (let i = 0; i < half; i++) invFreq[i] /= factor!;
    return { invFreq, attentionFactor: 1 };
  }
  if (kind === "yarn") {
    const L0 = scaling!.original_max_position_embeddings ?? maxPos;
    const s = factor ?? maxPos / L0;
    const bf = scaling!.beta_fast ?? 32, bs = scaling!.beta_slow ?? 1;
    const corr = (nrot: number) => (dim * Math.log(L0 / (nrot * 2 * Math.PI))) / (2 * Math.log(base));
    const low = Math.max(Math.floor(corr(bf)), 0);
    let high = Math.min(Math.ceil(corr(bs)), dim - 1);
    if (low === high) high += 0.001;
    for (let i = 0; i < half; i++) {
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      const extrap = invFreq[i], interp = invFreq[i] / s;
      invFreq[i] = interp * ramp + extrap * (1 - ramp);
    }
    let attentionFactor = scaling!.attention_factor ?? 0;
    if (!attentionFactor) {
      const m = scaling!.mscale, mad = scaling!.mscale_all_dim;
      attentionFactor = m && mad ? yarnGetMscale(s, m) / yarnGetMscale(s, mad) : yarnGetMscale(s);
    }
    return { invFreq, attentionFactor };
  }
  if (kind === "llama3") {
    const L0 = scaling!.original_max_position_embeddings ?? 8192, lf = scaling!.low_freq_factor ?? 1, hf = scaling!.high_freq_factor ?? 4;
    const lowWl = L0 / lf, highWl = L0 / hf;
    for (let i = 0; i < half; i++) {
      const wl = (2 * Math.PI) / invFreq[i];
      if (wl > lowWl) invFreq[i] /= factor!;
      else if (wl >= highWl) {
        const smooth = (L0 / wl - lf) / (hf - lf);
        invFreq[i] = (1 - smooth) * (invFreq[i] / factor!) + smooth * invFreq[i];
      }
    }
    return { invFreq, attentionFactor: 1 };
  }
  throw new FathomError("config", `unsupported rope_scaling type '${kind}' (supported: linear, yarn, llama3)`);
}

/** cos/sin tables [P, dim/2] (f32) times the attention factor, grown as positions are needed. */
export class RotaryEmbedding {
  readonly invFreq: Float64Array;
  readonly attentionFactor: number;
  private P = 0;
  cos: Tensor = new Tensor(new Float32Array(0), "f32", [0, 0]);
  sin: Tensor = new Tensor(new Float32Array(0), "f32", [0, 0]);

  constructor(readonly dim: number, base: number, scaling: RopeScaling | null | undefined, maxPos: number) {
    if (dim % 2 !== 0) throw new FathomError("config", `rotary dim must be even, got ${dim}`);
    ({ invFreq: this.invFreq, attentionFactor: this.attentionFactor } = ropeParameters(dim, base, scaling, maxPos));
  }

  /** Tables covering positions [0, n). */
  tables(n: number): { cos: Tensor; sin: Tensor } {
    if (n > this.P) {
      const P = Math.max(n, Math.min(2 * this.P, n + 4096), 64), half = this.dim / 2;
      const c = new Float32Array(P * half), s = new Float32Array(P * half);
      for (let p = 0; p < P; p++) for (let i = 0; i < half; i++) {
        // f32 angle, as transformers computes inv_freq ⊗ positions in float32
        const ang = Math.fround(p * Math.fround(this.invFreq[i]));
        c[p * half + i] = Math.cos(ang) * this.attentionFactor;
        s[p * half + i] = Math.sin(ang) * this.attentionFactor;
      }
      this.cos = new Tensor(c, "f32", [P, half]);
      this.sin = new Tensor(s, "f32", [P, half]);
      this.P = P;
    }
    return { cos: this.cos, sin: this.sin };
  }
}
