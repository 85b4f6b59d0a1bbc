// `fathom bench ...`: kernel and model benchmarks, each beside its peer in the same run.
import type { Command } from "commander";
import { benchGemm, formatGemmTable, type GemmBenchOptions } from "../../../bench/gemm.js";
import { int, parseShapes } from "../args.js";

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
}
