// The `fathom` command line. Errors print as one message line (no stack trace) and exit non-zero.
import { Command, InvalidArgumentError } from "commander";
import { FathomError } from "../core/errors.js";
import { benchGemm, formatGemmTable, type GemmBenchOptions } from "../../bench/gemm.js";

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
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    if (e instanceof FathomError) {
      process.stderr.write(`fathom: ${e.message}\n`);
      process.exitCode = 1;
    } else throw e;
  }
}
