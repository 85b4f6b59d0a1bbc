// Writes a seeded random Hugging Face folder of the ~1.1B-parameter llama layout used for memory and speed checks
// (hidden 2048, 22 layers, 32/4 heads, FFN 5632, vocab 32000). Usage: tsx scripts/make_synthetic_model.ts DIR [f32|bf16]
import { AutoModelForCausalLM } from "../src/index.js";
import type { DType } from "../src/index.js";
import { SYNTHETIC } from "../bench/decode.js";

const [dir, dtype = "f32"] = process.argv.slice(2);
if (!dir || dir.startsWith("-") || !["f32", "bf16"].includes(dtype)) { console.error("usage: make_synthetic_model.ts DIR [f32|bf16]"); process.exit(2); }
const s = SYNTHETIC["llama-1b"];                         // the same model `fathom bench decode --synthetic llama-1b` uses
const config = {
  architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: s.vocab, hidden_size: s.hidden, intermediate_size: s.ffn,
  num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};
const m = AutoModelForCausalLM.fromConfig(config, { seed: 0, dtype: dtype as DType, init: "scaled" });
m.savePretrained(dir, { maxShardBytes: 2e9 });
console.log(`${dir}: ${m.numParameters()} parameters (${dtype})`);
