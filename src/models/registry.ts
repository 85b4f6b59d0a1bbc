// config.json → model class, by model_type (falling back to architectures[0]); and seeded random models.
import { FathomError } from "../core/errors.js";
import { randn } from "../core/ops/create.js";
import { Generator } from "../core/ops/create.js";
import type { DType } from "../core/dtype.js";
import { Tensor } from "../core/tensor.js";
import type { CausalLM } from "./decoder.js";
import type { RawConfig } from "./config.js";
import { LlamaForCausalLM } from "./llama/model.js";
import { Qwen2ForCausalLM } from "./qwen2/model.js";
import { DeepseekV2ForCausalLM } from "./deepseek_v2/model.js";
import { DeepseekV3ForCausalLM } from "./deepseek_v3/model.js";

const MODELS: Record<string, (raw: RawConfig, source: string) => CausalLM> = {
  llama: (r, s) => new LlamaForCausalLM(r, s),
  qwen2: (r, s) => new Qwen2ForCausalLM(r, s),
  deepseek_v2: (r, s) => new DeepseekV2ForCausalLM(r, s),
  deepseek_v3: (r, s) => new DeepseekV3ForCausalLM(r, s),
};
const ARCHITECTURES: Record<string, string> = {
  LlamaForCausalLM: "llama", Qwen2ForCausalLM: "qwen2", DeepseekV2ForCausalLM: "deepseek_v2", DeepseekV3ForCausalLM: "deepseek_v3",
};

export const SUPPORTED_MODEL_TYPES = Object.keys(MODELS);

/** Builds the model a config.json describes (weights zero until loaded or initialised). */
export function modelFromConfig(raw: RawConfig, source = "config.json"): CausalLM {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new FathomError("config", `${source}: not a JSON object`);
  let type = raw.model_type as string | undefined;
  if (!type || !(type in MODELS)) {
    const arch = Array.isArray(raw.architectures) ? (raw.architectures[0] as string) : undefined;
    if (arch && arch in ARCHITECTURES && !type) type = ARCHITECTURES[arch];
  }
  if (!type || !(type in MODELS))
    throw new FathomError("config", `${source}: unknown model_type '${raw.model_type ?? ""}' (supported: ${SUPPORTED_MODEL_TYPES.join(", ")})`);
  return MODELS[type](raw, source);
}

export interface RandomInit {
  seed?: number;
  dtype?: DType;
  /** "hf": N(0, initializer_range) as transformers initialises; "scaled": N(0, 1/fan_in) so attention is peaked (tests). */
  init?: "hf" | "scaled";
}

/** A model with seeded random weights: norms 1, biases and router biases small, matrices Gaussian. */
export function randomModel(raw: RawConfig, o: RandomInit = {}): CausalLM {
  const m = modelFromConfig(raw);
  const g = new Generator(o.seed ?? 0);
  const dtype = o.dtype ?? "f32";
  const std = (raw.initializer_range as number | undefined) ?? 0.02;
  const sd = new Map<string, Tensor>();
  for (const [name, t] of m.stateDict()) {
    let v: Tensor;
    if (t.ndim === 1 && /norm\.weight$/.test(name)) v = randn(t.shape, { generator: g, dtype: "f32" }).mul(0.1).add(1);
    else if (t.ndim === 1) v = randn(t.shape, { generator: g, dtype: "f32" }).mul(0.02);
    else v = randn(t.shape, { generator: g, dtype: "f32" }).mul(o.init === "scaled" ? 1 / Math.sqrt(t.shape[t.ndim - 1]) : std);
    sd.set(name, v.to(t.dtype === "f32" && /e_score_correction_bias$/.test(name) ? "f32" : dtype).detach());
  }
  m.loadStateDict(sd);
  return m;
}
