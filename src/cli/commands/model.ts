// `fathom info` and `fathom generate --prompt-ids`: inspect a model and run it on token ids.
import { InvalidArgumentError, type Command } from "commander";
import { FathomError } from "../../core/errors.js";
import type { DType } from "../../core/dtype.js";
import { AutoModelForCausalLM } from "../../io/auto.js";
import { int, parseIds } from "../args.js";

export function registerModelCommands(program: Command): void {
  program.command("info")
    .description("describe a model: architecture, parameters (total and activated per token), dtype, context, KV-cache bytes per token")
    .argument("<model>", "a Hugging Face folder or a .gguf file")
    .option("--json", "print JSON")
    .addHelpText("after", "\nExamples:\n  fathom info ./deepseek-coder-1.3b\n  fathom info model.gguf --json")
    .action((path: string, o: { json?: boolean }) => {
      const info = AutoModelForCausalLM.fromPretrained(path).info();
      if (o.json) { console.log(JSON.stringify(info)); return; }
      const fmt = (n: number) => n.toLocaleString("en-US");
      console.log([`architecture      ${info.architecture} (${info.model_type})`, `parameters        ${fmt(info.parameters)}`,
        `activated/token   ${fmt(info.activated_parameters)}`, `dtype             ${info.dtype}`, `context length    ${fmt(info.context_length)}`,
        `layers            ${info.layers}`, `hidden size       ${info.hidden_size}`, `vocab size        ${info.vocab_size}`,
        `KV cache/token    ${fmt(info.kv_cache_bytes_per_token)} bytes` + (info.mha_kv_cache_bytes_per_token
          ? ` (plain multi-head attention would need ${fmt(info.mha_kv_cache_bytes_per_token)})` : "")].join("\n"));
    });

  program.command("generate")
    .description("greedy generation from token ids (tokenizers come later): prints the new ids and their log-probabilities")
    .requiredOption("-m, --model <path>", "a Hugging Face folder or a .gguf file")
    .requiredOption("--prompt-ids <ids>", "comma-separated prompt token ids", parseIds)
    .option("--max-new-tokens <n>", "tokens to generate", int("--max-new-tokens"), 32)
    .option("--dtype <dtype>", "convert weights on load (f32, bf16, f16)")
    .option("--json", "print {\"token_ids\": [...], \"logprobs\": [...]}")
    .addHelpText("after", "\nExamples:\n  fathom generate -m ./model --prompt-ids 1,2,3 --max-new-tokens 16 --json")
    .action((o: { model: string; promptIds: number[]; maxNewTokens: number; dtype?: string; json?: boolean }) => {
      if (o.dtype && !["f32", "bf16", "f16"].includes(o.dtype)) throw new InvalidArgumentError("--dtype must be f32, bf16 or f16");
      const model = AutoModelForCausalLM.fromPretrained(o.model, { dtype: o.dtype as DType | undefined });
      const vocab = model.info().vocab_size;
      for (const id of o.promptIds) if (id >= vocab) throw new FathomError("generate", `prompt id ${id} is outside the vocabulary (${vocab} tokens)`);
      const r = model.generateGreedy(o.promptIds, o.maxNewTokens);
      console.log(o.json ? JSON.stringify({ token_ids: r.tokenIds, logprobs: r.logprobs })
        : r.tokenIds.map((t, i) => `${t}\t${r.logprobs[i].toFixed(6)}`).join("\n"));
    });
}
