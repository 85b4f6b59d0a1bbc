// `fathom bench ...`: kernel and model benchmarks, each beside its peer in the same run.
import type { Command } from "commander";
import { benchGemm, formatGemmTable, type GemmBenchOptions } from "../../../bench/gemm.js";
import { int, parseShapes } from "../args.js";
import { benchDecode, formatDecodeTable, type BenchType } from "../../../bench/decode.js";
import { FathomError } from "../../core/errors.js";
import { benchServer, formatServerTable } from "../../../bench/server.js";
import { InvalidArgumentError } from "commander";

export function registerBench(program: Command): void {
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
  bench.command("decode")
    .description("prompt processing and generation tokens/s of a GGUF model, beside llama.cpp (node-llama-cpp) on the same file")
    .argument("[model]", "a .gguf file (or use --synthetic)")
    .option("--synthetic <name>", "a seeded random model written as GGUF in --type and cached under the temp folder: llama-1b, tiny")
    .option("--type <list>", "comma-separated types for --synthetic: q8_0, q4_0, q4_K, f32", "q8_0,q4_0")
    .option("--vs-llama-cpp", "run node-llama-cpp on the same file in the same command and print ratios")
    .option("--json", "print one JSON object {results: [...]}")
    .option("--threads <n>", "threads for Fathom and llama.cpp (default: FATHOM_THREADS or all cores)", int("--threads"))
    .option("--runs <n>", "timed runs after a warm-up (median reported)", int("--runs"), 5)
    .option("--pp <n>", "prompt tokens", int("--pp"), 128)
    .option("--tg <n>", "generated tokens", int("--tg"), 64)
    .addHelpText("after", "\nExamples:\n  fathom bench decode --synthetic llama-1b --type q8_0,q4_0 --vs-llama-cpp\n  fathom bench decode model-q4_0.gguf --json")
    .action(async (model: string | undefined, o: { synthetic?: string; type: string; vsLlamaCpp?: boolean; json?: boolean; threads?: number; runs: number; pp: number; tg: number }) => {
      const types = o.type.split(",").map((t) => t.trim());
      for (const t of types) if (!["q8_0", "q4_0", "q4_K", "f32"].includes(t)) throw new FathomError("bench", `unknown type '${t}' (expected q8_0, q4_0, q4_K or f32)`);
      const r = await benchDecode({ model, synthetic: o.synthetic, types: types as BenchType[], threads: o.threads, runs: o.runs, pp: o.pp, tg: o.tg,
        vsLlamaCpp: o.vsLlamaCpp, log: o.json ? undefined : (s) => process.stderr.write(s + "\n") });
      console.log(o.json ? JSON.stringify(r) : formatDecodeTable(r));
    });
  bench.command("server")
    .description("aggregate generated tokens/s and time to first token of an in-process `fathom serve` at 1, 4, 8 and 16 concurrent streams")
    .option("-m, --model <path>", "a Hugging Face folder or .gguf file with its tokenizer (or use --synthetic)")
    .option("--synthetic <name>", "a seeded random GGUF model (as in bench decode): tiny, llama-1b")
    .option("--type <type>", "weight type for --synthetic: q8_0, q4_0, q4_K, f32", "q8_0")
    .option("--concurrency <list>", "comma-separated numbers of concurrent streams", "1,4,8,16")
    .option("--max-tokens <n>", "tokens generated per request", int("--max-tokens"), 128)
    .option("--prompt-tokens <n>", "prompt length in tokens (distinct prompts, sent as token ids)", int("--prompt-tokens"), 32)
    .option("--requests <n>", "requests per client at each level", int("--requests"), 2)
    .option("--max-batch <n>", "engine slots (default: the largest concurrency)", int("--max-batch"))
    .option("--threads <n>", "compute threads (default: FATHOM_THREADS or all cores)", int("--threads"))
    .option("--json", "print {\"results\": [{\"concurrency\", \"tokens_per_s\", \"ttft_p50_ms\", \"ttft_p99_ms\"}]}")
    .addHelpText("after", "\nExamples:\n  fathom bench server --synthetic tiny\n  fathom bench server -m ./deepseek-coder-1.3b-instruct --max-tokens 64 --json")
    .action(async (o: { model?: string; synthetic?: string; type: string; concurrency: string; maxTokens: number; promptTokens: number; requests: number; maxBatch?: number; threads?: number; json?: boolean }) => {
      if (!["q8_0", "q4_0", "q4_K", "f32"].includes(o.type)) throw new FathomError("bench", `unknown type '${o.type}' (expected q8_0, q4_0, q4_K or f32)`);
      const levels = o.concurrency.split(",").map((v) => Number(v.trim()));
      if (!levels.length || levels.some((c) => !Number.isInteger(c) || c < 1 || c > 256)) throw new InvalidArgumentError(`--concurrency '${o.concurrency}' must list integers in [1, 256]`);
      const r = await benchServer({ model: o.model, synthetic: o.synthetic, type: o.type as BenchType, concurrency: levels, maxTokens: o.maxTokens, promptTokens: o.promptTokens, requestsPerClient: o.requests,
        maxBatch: o.maxBatch, threads: o.threads, log: o.json ? undefined : (s) => process.stderr.write(s + "\n") });
      console.log(o.json ? JSON.stringify({ model: r.model, max_batch: r.max_batch, max_tokens: r.max_tokens, prompt_tokens: r.prompt_tokens, results: r.results }) : formatServerTable(r));
    });
}
