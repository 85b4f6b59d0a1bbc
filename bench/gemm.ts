// `fathom bench gemm`: fp32 and bf16 GEMM GFLOPS of the native kernels at fixed shapes, next to numpy's matmul
// (OpenBLAS) on the same shapes in the same run. numpy runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset,
// for that command only, so it uses its best kernel for this CPU. Each figure is the best of `rounds` timed
// rounds of at least `minMs` each (the machine is shared and noisy; ratios in one run are what count).
import { spawnSync } from "node:child_process";
import { FathomError } from "../src/core/errors.js";
import { loadNative, nativeLoadError } from "../src/core/backend/native/binding.js";
import { Generator } from "../src/core/ops/create.js";
import { f32ToBf16 } from "../src/core/dtype.js";

export interface GemmBenchRow { op: "gemm"; dtype: "f32" | "bf16"; m: number; n: number; k: number; gflops: number; numpy_gflops: number | null; ratio: number | null }
export interface GemmBenchOptions { shapes?: [number, number, number][]; threads?: number; rounds?: number; minMs?: number; numpy?: boolean; dtypes?: ("f32" | "bf16")[] }

export const DEFAULT_GEMM_SHAPES: [number, number, number][] = [[1024, 1024, 1024], [128, 4096, 4096], [1, 4096, 4096]];

function timeBest(fn: () => void, rounds: number, minMs: number): number {
  fn();                                                     // warm-up (page faults, packing buffers)
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    let reps = 0;
    const t0 = process.hrtime.bigint();
    let el = 0;
    do { fn(); reps++; el = Number(process.hrtime.bigint() - t0) / 1e6; } while (el < minMs);
    best = Math.min(best, el / reps);
  }
  return best / 1e3;                                        // seconds per call
}

/** numpy GFLOPS per shape (f32), or null when python3 with numpy is absent. */
export function numpyGemm(shapes: [number, number, number][], threads: number, rounds: number, minMs: number): (number | null)[] | null {
  const script = `
import json, sys, time
import numpy as np
shapes = json.loads(sys.argv[1]); rounds = int(sys.argv[2]); min_s = float(sys.argv[3]) / 1e3
out = []
rng = np.random.default_rng(0)
for m, n, k in shapes:
    a = rng.standard_normal((m, k), dtype=np.float32); b = rng.standard_normal((k, n), dtype=np.float32)
    c = np.matmul(a, b)
    best = float("inf")
    for _ in range(rounds):
        reps = 0; t0 = time.perf_counter()
        while True:
            np.matmul(a, b, out=c); reps += 1
            el = time.perf_counter() - t0
            if el >= min_s: break
        best = min(best, el / reps)
    out.append(2.0 * m * n * k / best / 1e9)
print(json.dumps(out))
`;
  const env: NodeJS.ProcessEnv = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync("python3", ["-c", script, JSON.stringify(shapes), String(rounds), String(minMs)], { env, encoding: "utf8" });
  if (r.status !== 0 || r.error) return null;
  try { return JSON.parse(r.stdout.trim().split("\n").pop()!) as number[]; } catch { return null; }
}

export function benchGemm(o: GemmBenchOptions = {}): { threads: number; isa: string; results: GemmBenchRow[] } {
  const addon = loadNative();
  if (!addon) throw new FathomError("bench", `the GEMM benchmark needs the native addon: ${nativeLoadError()}`);
  const shapes = o.shapes ?? DEFAULT_GEMM_SHAPES, rounds = o.rounds ?? 5, minMs = o.minMs ?? 200;
  const dtypes = o.dtypes ?? ["f32", "bf16"];
  if (o.threads) addon.setThreads(o.threads);
  const threads = addon.getThreads();
  const np = o.numpy === false ? null : numpyGemm(shapes, threads, rounds, minMs);
  const results: GemmBenchRow[] = [];
  const g = new Generator(1);
  shapes.forEach(([m, n, k], si) => {
    const A = Float32Array.from({ length: m * k }, () => g.normal());
    const B = Float32Array.from({ length: k * n }, () => g.normal());
    const C = new Float32Array(m * n);
    const flops = 2 * m * n * k;
    const numpyG = np ? np[si] : null;
    for (const dtype of dtypes) {
      let sec: number;
      if (dtype === "f32") {
        sec = timeBest(() => addon.gemmF32(1, m, n, k, A, 0, k, false, B, 0, n, false, C, 0, n, 1, 0), rounds, minMs);
      } else {
        const Ab = Uint16Array.from(A, f32ToBf16), Bb = Uint16Array.from(B, f32ToBf16);
        sec = timeBest(() => addon.gemmBF16(1, m, n, k, Ab, 0, k, false, Bb, 0, n, false, C, 0, n, 1, 0), rounds, minMs);
      }
      const gflops = flops / sec / 1e9;
      results.push({ op: "gemm", dtype, m, n, k, gflops: round(gflops), numpy_gflops: numpyG === null ? null : round(numpyG),
        ratio: numpyG ? round(gflops / numpyG, 3) : null });
    }
  });
  return { threads, isa: addon.getIsa(), results };
}

const round = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;

export function formatGemmTable(r: ReturnType<typeof benchGemm>): string {
  const lines = [`GEMM, ${r.threads} threads, ${r.isa} path (best of rounds; numpy = OpenBLAS f32 with its own core type)`,
    "dtype  m×n×k                 GFLOPS   numpy   ratio   vs our f32"];
  for (const row of r.results) {
    const f32 = r.results.find((x) => x.dtype === "f32" && x.m === row.m && x.n === row.n && x.k === row.k);
    lines.push(`${row.dtype.padEnd(6)} ${`${row.m}×${row.n}×${row.k}`.padEnd(20)} ${row.gflops.toFixed(1).padStart(7)} ${
      row.numpy_gflops === null ? "    n/a" : row.numpy_gflops.toFixed(1).padStart(7)} ${row.ratio === null ? "    n/a" : row.ratio.toFixed(2).padStart(7)}   ${
      f32 ? (row.gflops / f32.gflops).toFixed(2) + "×" : ""}`);
  }
  return lines.join("\n");
}
