// `fathom bench decode`: prompt processing (pp, one forward over `pp` tokens) and generation (tg, `tg` tokens one at a
// time with the KV cache) tokens/s for a GGUF file, beside node-llama-cpp 3.21.1 on the same file in the same run (same
// thread count, useMmap false, flash attention off and an F32 KV cache like ours, a warm-up, median of `runs`).
// `--synthetic llama-1b` writes a seeded random ~1.1B llama-layout model (hidden 2048, 22 layers, 32/4 heads, FFN 5632,
// vocab 32000) in the requested type, cached under os.tmpdir(). bandwidth_fraction = (matrix bytes read per token ÷
// read bandwidth, a native sum over 512 MB measured right before each timed run) ÷ seconds per generated token, the
// median over runs.
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FathomError } from "../src/core/errors.js";
import { loadNative, nativeLoadError } from "../src/core/backend/native/binding.js";
import { Tensor } from "../src/core/tensor.js";
import { noGrad } from "../src/core/autograd.js";
import { GGUFFile, writeGGUF, type GGUFMetadataEntry } from "../src/io/gguf.js";
import { StepArena } from "../src/core/arena.js";
import { loadGGUF } from "../src/io/gguf_model.js";
import { tokenizerToGGUF } from "../src/io/gguf_tokenizer.js";
import { quantizeWeight } from "../src/quant/qlinear.js";
import { BYTE_TO_CHAR } from "../src/tokenizers/byte_level.js";
import type { QuantKind } from "../src/quant/qmatmul.js";

export interface SyntheticSpec { hidden: number; layers: number; heads: number; kvHeads: number; ffn: number; vocab: number }
export const SYNTHETIC: Record<string, SyntheticSpec> = {
  "llama-1b": { hidden: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000 },
  tiny: { hidden: 256, layers: 2, heads: 4, kvHeads: 2, ffn: 512, vocab: 512 },
};
export type BenchType = Exclude<QuantKind, "int8"> | "f32";

export interface DecodeRow {
  type: string; pp_tps: number; tg_tps: number; llama_cpp_pp_tps: number | null; llama_cpp_tg_tps: number | null;
  pp_ratio: number | null; tg_ratio: number | null; bandwidth_fraction: number;
}
export interface DecodeBenchOptions { model?: string; synthetic?: string; types?: BenchType[]; threads?: number; runs?: number; pp?: number; tg?: number; vsLlamaCpp?: boolean; log?: (s: string) => void }

/** A byte-level BPE tokenizer.json with `vocab` tokens (bytes, filler tokens, BOS and EOS last): llama.cpp needs one. */
function syntheticTokenizer(vocab: number): { json: Record<string, unknown>; config: Record<string, unknown> } {
  const v: Record<string, number> = {};
  BYTE_TO_CHAR.forEach((c, b) => { v[c] = b; });
  v["th"] = 256;
  for (let i = 257; i < vocab - 2; i++) v[`<extra_${i}>`] = i;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    json: { version: "1.0", added_tokens: [special(vocab - 2, "<|begin_of_text|>"), special(vocab - 1, "<|endoftext|>")],
      pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      decoder: { type: "ByteLevel" }, model: { type: "BPE", vocab: v, merges: ["t h"] } },
    config: { bos_token: "<|begin_of_text|>", eos_token: "<|endoftext|>", add_bos_token: false },
  };
}

/** Writes (or reuses) the seeded synthetic model as GGUF in `type`; returns its path. */
export function syntheticGGUF(name: string, type: BenchType, log: (s: string) => void = () => {}): string {
  const s = SYNTHETIC[name];
  if (!s) throw new FathomError("bench", `unknown synthetic model '${name}' (expected ${Object.keys(SYNTHETIC).join(", ")})`);
  const path = join(tmpdir(), `fathom-synthetic-${name}-${type}.gguf`);
  if (existsSync(path)) return path;
  log(`writing ${path} ...`);
  const hd = s.hidden / s.heads, A = "llama";
  let seed = 0x9e3779b9;
  const rand = (n: number, fanIn: number): Tensor => {            // uniform with std 1/sqrt(fan_in), xorshift32
    const a = Math.sqrt(3 / fanIn), x = new Float32Array(n);
    for (let i = 0; i < n; i++) { seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; x[i] = ((seed >>> 0) / 4294967296 * 2 - 1) * a; }
    return Tensor.from(x, "f32", [n]);
  };
  const tensors: { name: string; tensor: Tensor }[] = [];
  const mat = (n: string, rows: number, cols: number) => {
    const w = rand(rows * cols, cols).reshape(rows, cols);
    const q = type === "f32" ? w : quantizeWeight(w, type).weight;
    tensors.push({ name: n, tensor: q });
  };
  const ones = (n: string, len: number) => tensors.push({ name: n, tensor: Tensor.from(new Float32Array(len).fill(1), "f32", [len]) });
  mat("token_embd.weight", s.vocab, s.hidden);
  for (let i = 0; i < s.layers; i++) {
    const b = `blk.${i}.`;
    ones(b + "attn_norm.weight", s.hidden);
    mat(b + "attn_q.weight", s.hidden, s.hidden);
    mat(b + "attn_k.weight", s.kvHeads * hd, s.hidden);
    mat(b + "attn_v.weight", s.kvHeads * hd, s.hidden);
    mat(b + "attn_output.weight", s.hidden, s.hidden);
    ones(b + "ffn_norm.weight", s.hidden);
    mat(b + "ffn_gate.weight", s.ffn, s.hidden);
    mat(b + "ffn_up.weight", s.ffn, s.hidden);
    mat(b + "ffn_down.weight", s.hidden, s.ffn);
  }
  ones("output_norm.weight", s.hidden);
  mat("output.weight", s.vocab, s.hidden);
  const u32 = (key: string, value: number): GGUFMetadataEntry => ({ key, type: "u32", value });
  const tok = syntheticTokenizer(s.vocab);
  const meta: GGUFMetadataEntry[] = [{ key: "general.architecture", type: "string", value: A }, { key: "general.name", type: "string", value: `fathom-synthetic-${name}` },
    u32(`${A}.context_length`, 2048), u32(`${A}.embedding_length`, s.hidden), u32(`${A}.block_count`, s.layers),
    u32(`${A}.feed_forward_length`, s.ffn), u32(`${A}.attention.head_count`, s.heads), u32(`${A}.attention.head_count_kv`, s.kvHeads),
    { key: `${A}.attention.layer_norm_rms_epsilon`, type: "f32", value: 1e-5 }, { key: `${A}.rope.freq_base`, type: "f32", value: 10000 },
    u32(`${A}.rope.dimension_count`, hd), u32(`${A}.vocab_size`, s.vocab),
    ...tokenizerToGGUF(tok.json, tok.config, { pre: "gpt-2" })];
  writeGGUF(path, { metadata: meta, tensors });
  return path;
}

const promptIds = (n: number, vocab: number) => Array.from({ length: n }, (_, i) => (i * 7919 + 11) % (vocab - 2));
const median = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; };
const r2 = (v: number) => Math.round(v * 100) / 100;

/** Matrix bytes read per generated token: every 2-D+ tensor but the token embedding (only rows are read), unless tied. */
function weightBytesPerToken(f: GGUFFile): number {
  const tied = !f.tensors.some((t) => t.name === "output.weight");
  return f.tensors.filter((t) => t.shape.length >= 2 && (tied || t.name !== "token_embd.weight")).reduce((a, t) => a + t.byteSize, 0);
}

/**
 * Read bandwidth: GB/s of a native sum over a 512 MB Float32Array, the median of `passes` passes. The decode benchmark
 * measures it right before each timed generation run and pairs the two, so each run's bandwidth fraction compares
 * its speed with the bandwidth of the same moment: on this shared VM single passes range ~20-42 GB/s as the host's
 * load comes and goes (a best-of-n taken once would compare a median decode with the luckiest burst).
 */
export class ReadBandwidth {
  private readonly x = new Float32Array(128 << 20).fill(1);
  private readonly y = new Float32Array(1);
  private readonly addon = loadNative()!;
  constructor() { this.addon.reduceF32(0, 1, this.x.length, 1, this.x, this.y); }
  measure(passes = 3): number {
    const times: number[] = [];
    for (let r = 0; r < passes; r++) {
      const t0 = performance.now();
      this.addon.reduceF32(0, 1, this.x.length, 1, this.x, this.y);
      times.push(performance.now() - t0);
    }
    return (this.x.length * 4) / (median(times) / 1e3) / 1e9;
  }
}

interface FathomRun { pp: number; tg: number; bandwidthFraction: number; readGBs: number[] }

function fathomRun(path: string, pp: number, tg: number, runs: number, bw: ReadBandwidth): FathomRun {
  const model = loadGGUF(path);
  const prompt = promptIds(pp, Number(model.rawConfig.vocab_size));
  const bytes = weightBytesPerToken(GGUFFile.open(path));
  const ppTimes: number[] = [], tgTimes: number[] = [], fractions: number[] = [], readGBs: number[] = [];
  const arena = new StepArena();
  noGrad(() => {
    for (let r = 0; r <= runs; r++) {                        // run 0 is the warm-up
      // preallocated caches, as generate() and the server use (keys and values written in place, no per-step concat)
      let cache = model.newCache({ capacity: pp });
      let t0 = performance.now();
      const h = model.hidden(new Tensor(Int32Array.from(prompt), "i32", [1, pp]), { cache });
      model.lm_head.forward(h.slice(1, pp - 1)).argmax().item();
      if (r) ppTimes.push(performance.now() - t0);
      cache = model.newCache({ capacity: tg });
      let next = prompt[0];
      const gbs = r ? bw.measure() : 0;
      t0 = performance.now();
      // each step in a step arena, as generate() runs it (a warm step allocates no typed arrays)
      for (let i = 0; i < tg; i++) next = arena.run(() => model.forward(new Tensor(Int32Array.of(next), "i32", [1, 1]), { cache }).argmax().item());
      if (r) {
        const ms = performance.now() - t0;
        tgTimes.push(ms);
        readGBs.push(gbs);
        fractions.push((bytes / (gbs * 1e9)) / (ms / 1e3 / tg));   // bandwidth-bound time per token ÷ time per token
      }
    }
  });
  return { pp: pp / (median(ppTimes) / 1e3), tg: tg / (median(tgTimes) / 1e3), bandwidthFraction: median(fractions), readGBs };
}

async function llamaCppRun(path: string, pp: number, tg: number, runs: number, threads: number): Promise<{ pp: number; tg: number }> {
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  const ctx = await model.createContext({ contextSize: Math.max(256, pp + tg + 8), batchSize: pp, threads, flashAttention: false,
    experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" } as never);
  const seq = ctx.getSequence();
  const prompt = promptIds(pp, GGUFFile.open(path).tensorInfo("token_embd.weight").shape[0]);
  const ppTimes: number[] = [], tgTimes: number[] = [];
  try {
    for (let r = 0; r <= runs; r++) {
      await seq.clearHistory();
      let t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(prompt as never);
      if (r) ppTimes.push(performance.now() - t0);
      await seq.clearHistory();
      let tok = prompt[0];
      t0 = performance.now();
      for (let i = 0; i < tg; i++) {
        const res = await seq.controlledEvaluate([[tok, { generateNext: { token: true } }]] as never);
        tok = (res as { next: { token: number } }[])[0].next.token;
      }
      if (r) tgTimes.push(performance.now() - t0);
    }
  } finally { await ctx.dispose(); await model.dispose(); }
  return { pp: pp / (median(ppTimes) / 1e3), tg: tg / (median(tgTimes) / 1e3) };
}

export async function benchDecode(o: DecodeBenchOptions): Promise<{ threads: number; read_gbs: number; results: DecodeRow[] }> {
  const addon = loadNative();
  if (!addon) throw new FathomError("bench", `the decode benchmark needs the native addon: ${nativeLoadError()}`);
  if (!o.model && !o.synthetic) throw new FathomError("bench", "give a model file or --synthetic <name>");
  if (o.threads) addon.setThreads(o.threads);
  const threads = addon.getThreads(), runs = o.runs ?? 5, pp = o.pp ?? 128, tg = o.tg ?? 64, log = o.log ?? (() => {});
  const bw = new ReadBandwidth(), readGBs: number[] = [];
  const files: [string, string][] = o.model ? [[o.model, GGUFFile.open(o.model).tensors.find((t) => t.name.endsWith("ffn_up.weight") || t.name.endsWith("ffn_up_exps.weight"))?.typeName.toLowerCase() ?? "?"]]
    : (o.types ?? ["q8_0", "q4_0"]).map((t) => [syntheticGGUF(o.synthetic!, t, log), t]);
  const results: DecodeRow[] = [];
  for (const [path, type] of files) {
    log(`fathom ${type} ...`);
    const ours = fathomRun(path, pp, tg, runs, bw);
    readGBs.push(...ours.readGBs);
    let lc: { pp: number; tg: number } | null = null;
    if (o.vsLlamaCpp) { log(`llama.cpp ${type} ...`); lc = await llamaCppRun(path, pp, tg, runs, threads); }
    results.push({ type, pp_tps: r2(ours.pp), tg_tps: r2(ours.tg), llama_cpp_pp_tps: lc ? r2(lc.pp) : null, llama_cpp_tg_tps: lc ? r2(lc.tg) : null,
      pp_ratio: lc ? r2(ours.pp / lc.pp) : null, tg_ratio: lc ? r2(ours.tg / lc.tg) : null,
      bandwidth_fraction: Math.round(ours.bandwidthFraction * 1000) / 1000 });
  }
  return { threads, read_gbs: r2(median(readGBs)), results };
}

export function formatDecodeTable(r: Awaited<ReturnType<typeof benchDecode>>): string {
  const f = (v: number | null) => (v === null ? "n/a" : v.toFixed(2)).padStart(9);
  const lines = [`decode, ${r.threads} threads, read bandwidth ${r.read_gbs} GB/s (median of runs; llama.cpp = node-llama-cpp 3.21.1)`,
    "type         pp t/s  llama pp   ratio    tg t/s  llama tg   ratio   bw frac"];
  for (const x of r.results) lines.push(`${x.type.padEnd(8)} ${f(x.pp_tps)} ${f(x.llama_cpp_pp_tps)} ${f(x.pp_ratio)} ${f(x.tg_tps)} ${f(x.llama_cpp_tg_tps)} ${f(x.tg_ratio)} ${f(x.bandwidth_fraction)}`);
  return lines.join("\n");
}
