// `fathom bench ...`: kernel and model benchmarks, each beside its peer in the same run.
import type { Command } from "commander";
import { benchGemm, formatGemmTable, type GemmBenchOptions } from "../../../bench/gemm.js";
import { int, parseShapes } from "../args.js";
import { benchDecode, formatDecodeTable, type BenchType } from "../../../bench/decode.js";
import { FathomError } from "../../core/errors.js";

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
}
