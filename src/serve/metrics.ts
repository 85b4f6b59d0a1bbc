// Prometheus text exposition (format 0.0.4) for `GET /metrics`: counters, a histogram and gauges read at scrape time.
import type { EngineStats } from "./protocol.js";

const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Generated tokens/s is measured over this trailing window. */
const RATE_WINDOW_MS = 10_000;

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: number[]) { this.counts = buckets.map(() => 0); }
  observe(v: number): void {
    this.sum += v; this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) this.counts[i]++;
  }
  render(name: string, help: string): string[] {
    const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    this.buckets.forEach((b, i) => out.push(`${name}_bucket{le="${b}"} ${this.counts[i]}`));
    out.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return out;
  }
}

const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n");

export class Metrics {
  /** requests by endpoint and status code. */
  private readonly requests = new Map<string, number>();
  promptTokens = 0;
  generatedTokens = 0;
  inFlight = 0;
  readonly ttft = new Histogram(TTFT_BUCKETS);
  readonly duration = new Histogram(DURATION_BUCKETS);
  /** (time, tokens) samples for the generated tokens/s gauge. */
  private recent: [number, number][] = [];

  request(endpoint: string, status: number): void {
    const k = `endpoint="${esc(endpoint)}",status="${status}"`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  tokensGenerated(n: number, now = Date.now()): void {
    this.generatedTokens += n;
    const last = this.recent[this.recent.length - 1];
    if (last && now - last[0] < 100) last[1] += n;   // one sample per 100 ms keeps the window small
    else this.recent.push([now, n]);
    this.trim(now);
  }

  tokensPerSecond(now = Date.now()): number {
    this.trim(now);
    let n = 0;
    for (const [, k] of this.recent) n += k;
    return n / (RATE_WINDOW_MS / 1000);
  }

  private trim(now: number): void {
    let i = 0;
    while (i < this.recent.length && now - this.recent[i][0] > RATE_WINDOW_MS) i++;
    if (i) this.recent.splice(0, i);
  }

  render(s: EngineStats, modelId: string): string {
    const g = (name: string, help: string, v: number, type = "gauge") => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${v}`];
    const lines: string[] = [
      "# HELP fathom_requests_total HTTP requests by endpoint and status code.", "# TYPE fathom_requests_total counter",
      ...[...this.requests].map(([k, v]) => `fathom_requests_total{${k}} ${v}`),
      ...g("fathom_requests_in_flight", "HTTP requests being answered now.", this.inFlight),
      ...g("fathom_prompt_tokens_total", "Prompt tokens of finished sequences.", this.promptTokens, "counter"),
      ...g("fathom_generation_tokens_total", "Tokens generated.", this.generatedTokens, "counter"),
      ...g("fathom_generation_tokens_per_second", `Tokens generated per second over the last ${RATE_WINDOW_MS / 1000} s.`, this.tokensPerSecond()),
      ...this.ttft.render("fathom_time_to_first_token_seconds", "Time from request to its first generated token."),
      ...this.duration.render("fathom_request_duration_seconds", "Time from request to the end of its response (generation endpoints)."),
      ...g("fathom_queue_depth", "Sequences waiting for a KV-cache slot.", s.queueDepth),
      ...g("fathom_active_sequences", "Sequences decoding now.", s.active),
      ...g("fathom_max_batch", "KV-cache slots (sequences decoded together at most).", s.maxBatch),
      ...g("fathom_kv_cache_tokens_used", "KV-cache positions in use across all slots.", s.kvTokensUsed),
      ...g("fathom_kv_cache_tokens_capacity", "KV-cache positions the slots can hold.", s.kvTokensCapacity),
      ...g("fathom_kv_cache_usage_ratio", "kv_cache_tokens_used / kv_cache_tokens_capacity.", s.kvTokensCapacity ? s.kvTokensUsed / s.kvTokensCapacity : 0),
      ...g("fathom_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.", s.prefixCacheHits, "counter"),
      "# HELP fathom_model_info The served model.", "# TYPE fathom_model_info gauge", `fathom_model_info{model="${esc(modelId)}"} 1`,
    ];
    return lines.join("\n") + "\n";
  }
}
