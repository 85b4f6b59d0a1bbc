// `fathom bench server`: an in-process `fathom serve` (engine in its worker thread, HTTP on a free local port) driven
// by N concurrent streaming clients over plain fetch. Per concurrency level: aggregate generated tokens/s (all
// clients' completion tokens over the wall time of the round) and p50/p99 time to first token.
import { ServeEngine } from "../src/serve/engine.js";
import { FathomServer } from "../src/serve/server.js";
import { loadTokenizer } from "../src/cli/commands/text.js";
import { FathomError } from "../src/core/errors.js";
import { syntheticGGUF, type BenchType } from "./decode.js";

export interface ServerBenchOptions {
  model?: string; synthetic?: string; type?: BenchType;
  /** Concurrency levels (default 1, 4, 8, 16). */
  concurrency?: number[];
  /** Tokens generated per request (EOS is banned so every request generates exactly this many; default 128). */
  maxTokens?: number;
  /** Prompt length in tokens (default 32): distinct real-token prompts, sent as token ids so the count is exact. */
  promptTokens?: number;
  /** Requests each client makes one after the other per level. */
  requestsPerClient?: number;
  /** Engine slots (default the largest concurrency). */
  maxBatch?: number;
  threads?: number;
  log?: (s: string) => void;
}

export interface ServerBenchRow { concurrency: number; tokens_per_s: number; ttft_p50_ms: number; ttft_p99_ms: number }
export interface ServerBenchResult { model: string; max_batch: number; max_tokens: number; prompt_tokens: number; results: ServerBenchRow[] }

const WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly hex bold zebras near old castle gates".split(" ");

/** Nearest-rank percentile. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** One streaming completion: time to the first text chunk and the completion tokens from the final usage chunk. */
async function streamOnce(url: string, body: Record<string, unknown>): Promise<{ ttftMs: number; tokens: number }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }) });
  if (!res.ok || !res.body) throw new FathomError("bench", `server answered ${res.status}: ${await res.text()}`);
  let ttft = NaN, tokens = 0, buf = "";
  const dec = new TextDecoder();
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(part, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const j = JSON.parse(line.slice(6));
      if (j.error) throw new FathomError("bench", j.error.message);
      if (Number.isNaN(ttft) && j.choices?.[0]?.text) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { ttftMs: ttft, tokens };
}

export async function benchServer(o: ServerBenchOptions): Promise<ServerBenchResult> {
  if (!o.model && !o.synthetic) throw new FathomError("bench", "give a model (-m) or --synthetic <name>");
  const log = o.log ?? (() => {});
  const levels = o.concurrency ?? [1, 4, 8, 16];
  const maxTokens = o.maxTokens ?? 128, promptTokens = o.promptTokens ?? 32, perClient = o.requestsPerClient ?? 2;
  const path = o.model ?? syntheticGGUF(o.synthetic!, o.type ?? "q8_0", log);
  const tok = loadTokenizer(path);
  const maxBatch = o.maxBatch ?? Math.max(...levels);
  log(`loading ${path} (max batch ${maxBatch}) ...`);
  const engine = await ServeEngine.start({ model: path, maxBatch, maxQueue: Math.max(64, 2 * Math.max(...levels)), threads: o.threads });
  const server = new FathomServer({ engine, tokenizer: tok, modelId: "bench" });
  const url = await server.listen(0, "127.0.0.1");
  const results: ServerBenchRow[] = [];
  try {
    const eos = tok.eosTokenId;
    let seq = 0;
    const body = () => {
      const k = seq++;
      // distinct prompts (no prefix-cache shortcut) of exactly promptTokens real tokens of this model's tokenizer
      let prompt: number[] = [];
      for (let w = 0; prompt.length < promptTokens; w += 16)
        prompt = prompt.concat(tok.encode(`#${k}.${w} ` + Array.from({ length: 16 }, (_, i) => WORDS[(k * 7 + (w + i) * 3) % WORDS.length]).join(" "), { addSpecialTokens: prompt.length === 0 }));
      prompt = prompt.slice(0, promptTokens);
      return { model: "bench", prompt, max_tokens: maxTokens, temperature: 0.8, seed: k, ...(eos !== null ? { logit_bias: { [eos]: -100 } } : {}) };
    };
    await streamOnce(url, body());   // warm-up
    for (const c of levels) {
      const ttfts: number[] = [];
      let tokens = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: c }, async () => {
        for (let r = 0; r < perClient; r++) {
          const x = await streamOnce(url, body());
          if (!Number.isNaN(x.ttftMs)) ttfts.push(x.ttftMs);
          tokens += x.tokens;
        }
      }));
      const secs = (performance.now() - t0) / 1000;
      const row = { concurrency: c, tokens_per_s: Math.round((tokens / secs) * 100) / 100, ttft_p50_ms: Math.round(percentile(ttfts, 50) * 10) / 10, ttft_p99_ms: Math.round(percentile(ttfts, 99) * 10) / 10 };
      log(`concurrency ${c}: ${row.tokens_per_s} tokens/s, TTFT p50 ${row.ttft_p50_ms} ms, p99 ${row.ttft_p99_ms} ms`);
      results.push(row);
    }
  } finally {
    await server.close();
    await engine.close();
  }
  return { model: path, max_batch: maxBatch, max_tokens: maxTokens, prompt_tokens: promptTokens, results };
}

export function formatServerTable(r: ServerBenchResult): string {
  const base = r.results.find((x) => x.concurrency === 1)?.tokens_per_s;
  const lines = [`server: ${r.model}, prompts of ${r.prompt_tokens} tokens, ${r.max_tokens} tokens generated per request, max batch ${r.max_batch}`, "streams   tokens/s   vs 1 stream   TTFT p50 ms   TTFT p99 ms"];
  for (const x of r.results) {
    lines.push(`${String(x.concurrency).padStart(7)} ${x.tokens_per_s.toFixed(2).padStart(10)} ${(base ? (x.tokens_per_s / base).toFixed(2) + "×" : "n/a").padStart(13)} ${x.ttft_p50_ms.toFixed(1).padStart(13)} ${x.ttft_p99_ms.toFixed(1).padStart(13)}`);
  }
  return lines.join("\n");
}
