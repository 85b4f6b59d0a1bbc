// `fathom info`: describe a model.
import type { Command } from "commander";
import { AutoModelForCausalLM } from "../../io/auto.js";

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
}
