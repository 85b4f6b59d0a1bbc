// Qwen2ForCausalLM (the Qwen R1-distills): the Llama layout with biases on q_proj, k_proj and v_proj.
import { LlamaForCausalLM } from "../llama/model.js";
import { parseLlamaConfig } from "../llama/config.js";
import type { RawConfig } from "../config.js";

export class Qwen2ForCausalLM extends LlamaForCausalLM {
  override readonly modelType = "qwen2";
  override readonly architecture = "Qwen2ForCausalLM";
  constructor(rawConfig: RawConfig, source = "config.json") {
    super(rawConfig, source, parseLlamaConfig(rawConfig, source, { qkvBias: true }));
  }
}
