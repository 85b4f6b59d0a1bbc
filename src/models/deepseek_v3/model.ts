// DeepSeek-V3 / R1 / V3.1 (model_type "deepseek_v3"): the deepseek_v2 implementation with V3's defaults
// (sigmoid scoring, noaux_tc routing with e_score_correction_bias, normalised top-k) and MTP layers.
export { DeepseekV3ForCausalLM } from "../deepseek_v2/model.js";
