// The `fathom` command line. Errors print as one message line (no stack trace) and exit non-zero.
import { Command, InvalidArgumentError } from "commander";
import { FathomError } from "../core/errors.js";
import { benchGemm, formatGemmTable, type GemmBenchOptions } from "../../bench/gemm.js";
import { AutoModelForCausalLM } from "../io/auto.js";
import type { DType } from "../core/dtype.js";

const int = (name: string, min = 1) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
  return n;
};

function parseShapes(v: string): [number, number, number][] {
  return v.split(",").map((s) => {
    const p = s.split(/[x×]/).map(Number);
    if (p.length !== 3 || p.some((d) => !Number.isInteger(d) || d < 1)) throw new InvalidArgumentError(`bad shape '${s}' (expected MxNxK, e.g. 1024x1024x1024)`);
    return p as [number, number, number];
  });
}

export function buildProgram(): Command {
  const program = new Command("fathom")
    .description("Fathom: run, train, quantize and serve DeepSeek-family models from TypeScript")
    .version("0.1.0")
    .showHelpAfterError();

  const bench = program.command("bench").description("measure kernels and models against their peers");
  bench.command("gemm")
    .description("fp32 and bf16 GEMM GFLOPS at 1024³, 128×4096×4096 and 1×4096×4096, beside numpy (OpenBLAS)")
    .option("--json", "print one JSON object {results: [...]}")
    .option("--threads <n>", "threads for Fathom and numpy (default: FATHOM_THREADS or all cores)", int("--threads"))
    .option("--rounds <n>", "timed rounds per figure (best is reported)", int("--rounds"), 5)
    .option("--min-ms <n>", "minimum milliseconds per round", int("--min-ms"), 200)
    .option("--shapes <list>", "comma-separated MxNxK shapes", parseShapes)
    .option("--no-numpy", "skip the numpy comparison")
    .addHelpText("after", "\nExamples:\n  fathom bench gemm\n  fathom bench gemm --json --threads 2\n  fathom bench gemm --shapes 512x512x512 --rounds 3")
    .action((o: { json?: boolean; threads?: number; rounds: number; minMs: number; shapes?: [number, number, number][]; numpy: boolean }) => {
      const opts: GemmBenchOptions = { threads: o.threads, rounds: o.rounds, minMs: o.minMs, shapes: o.shapes, numpy: o.numpy };
      const r = benchGemm(opts);
      console.log(o.json ? JSON.stringify(r) : formatGemmTable(r));
    });
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
  return program;
}

function parseIds(v: string): number[] {
  const ids = v.split(",").map((s) => s.trim());
  if (!ids.length || ids.some((s) => !/^\d+$/.test(s))) throw new InvalidArgumentError(`'${v}' is not a comma-separated list of token ids`);
  return ids.map(Number);
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof FathomError || e instanceof InvalidArgumentError) {
      process.stderr.write(`fathom: ${e.message}\n`);
      process.exitCode = 1;
    } else throw e;
  }
}
