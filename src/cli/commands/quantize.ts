// `fathom quantize <in> <out.gguf> --type q8_0|q4_0|q4_K|int8`: a Hugging Face folder or a GGUF file → a quantized GGUF.
import type { Command } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FathomError } from "../../core/errors.js";
import { AutoModelForCausalLM } from "../../io/auto.js";
import { GGUFFile, type GGUFMetadataEntry } from "../../io/gguf.js";
import { exportGGUF, type GGUFExportOptions } from "../../io/gguf_model.js";
import { formatReport, quantizeModel } from "../../quant/qlinear.js";
import { QUANT_KINDS, type QuantKind } from "../../quant/qmatmul.js";

export interface QuantizeFileResult { type: QuantKind; out: string; bytes: number; fallbacks: { name: string; type: string; reason: string }[]; kept: { name: string; reason: string }[] }

/** Loads `input`, quantizes it, writes `out` (atomically); tensors stored in another type than asked are listed. */
export function quantizeFile(input: string, out: string, type: string): QuantizeFileResult {
  if (!QUANT_KINDS.includes(type as QuantKind)) throw new FathomError("quantize", `unknown type '${type}' (expected ${QUANT_KINDS.join(", ")})`);
  if (!existsSync(input)) throw new FathomError("quantize", `input '${input}' does not exist`);
  if (!out.endsWith(".gguf")) throw new FathomError("quantize", `output '${out}' must be a .gguf file`);
  const gguf = input.endsWith(".gguf");
  if (!gguf && !statSync(input).isDirectory()) throw new FathomError("quantize", `input '${input}' is neither a .gguf file nor a Hugging Face folder`);
  const model = AutoModelForCausalLM.fromPretrained(input);
  const rep = quantizeModel(model, type as QuantKind);          // in memory first: kept/fallback choices as model.quantize makes them
  const fallbacks: QuantizeFileResult["fallbacks"] = [];
  let metadata: GGUFMetadataEntry[] | undefined, tokenizer: GGUFExportOptions["tokenizer"];
  if (gguf) {
    metadata = [...GGUFFile.open(input).metadata].filter(([k]) => k.startsWith("tokenizer.")).map(([key, e]) => ({ key, type: e.type, value: e.value }) as GGUFMetadataEntry);
  } else if (existsSync(join(input, "tokenizer.json"))) {
    const cfgPath = join(input, "tokenizer_config.json");
    tokenizer = { json: JSON.parse(readFileSync(join(input, "tokenizer.json"), "utf8")), config: existsSync(cfgPath) ? JSON.parse(readFileSync(cfgPath, "utf8")) : undefined };
  }
  exportGGUF(model, out, { dtype: type as QuantKind, metadata, tokenizer, onFallback: (name, t, reason) => fallbacks.push({ name, type: t, reason }) });
  void rep;
  return { type: type as QuantKind, out, bytes: statSync(out).size, fallbacks, kept: rep.kept };
}

export function registerQuantize(program: Command): void {
  program.command("quantize")
    .description("quantize a model (Hugging Face folder or GGUF file) into a GGUF file")
    .argument("<in>", "a Hugging Face folder or a .gguf file")
    .argument("<out>", "the .gguf file to write")
    .requiredOption("--type <type>", `q8_0 | q4_0 | q4_K | int8`)
    .option("--json", "print a JSON summary")
    .addHelpText("after", `
Every matrix gets the type (as llama-quantize --pure does: token_embd and output too; llama-quantize's default would
put output.weight in Q6_K). 1-D tensors, norms, the MoE router (ffn_gate_inp) and exp_probs_b stay F32. Rows whose
length does not fit the block fall back: q4_K → q8_0 when the row length is a multiple of 32, else F16 (q8_0/q4_0 → F16);
the command lists each fallback.
int8 writes per-row symmetric int8 weights (GGUF I8) with an F32 '<name>.scale' tensor per weight, run with dynamic
int8 activations: Fathom reads these files, llama.cpp does not.

Examples:
  fathom quantize ./deepseek-coder-1.3b coder-q8_0.gguf --type q8_0
  fathom quantize model-f16.gguf model-q4_K.gguf --type q4_K --json`)
    .action((input: string, out: string, o: { type: string; json?: boolean }) => {
      const r = quantizeFile(input, out, o.type);
      if (o.json) { console.log(JSON.stringify(r)); return; }
      const lines = [`wrote ${out} (${o.type}, ${(r.bytes / 1e6).toFixed(2)} MB)`];
      for (const f of r.fallbacks) lines.push(`  fallback: ${f.name} → ${f.type} (${f.reason})`);
      for (const k of r.kept) lines.push(`  note: ${k.name} stays dense in memory (${k.reason})`);
      console.log(lines.join("\n"));
    });
}
export { formatReport };
