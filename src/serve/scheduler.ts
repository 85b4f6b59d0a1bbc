// The core of the serve engine, in-process (the worker thread runs it; tests drive it directly): continuous batching
// over `maxBatch` KV-cache slots. Each step() gathers one ragged batch: one decode token per running sequence plus
// prompt chunks of sequences still prefilling (a new sequence joins between steps), runs it as one forward pass
// (CausalLM.forwardRagged), then samples per sequence. Prompts that start like a recent prompt copy the cached
// positions from the prefix cache and prefill only the rest.
import { FathomError } from "../core/errors.js";
import { Generator } from "../core/ops/create.js";
import { noGrad } from "../core/autograd.js";
import { StepArena } from "../core/arena.js";
import type { CausalLM, RaggedSequence } from "../models/decoder.js";
import type { KVCache, KVCacheDType } from "../nn/attention.js";
import {
  argmax, logitBias, logSoftmax, presenceFrequencyPenalty, sample, temperature, topKEntries, topP,
} from "../generate/logits_process.js";
import { EngineBusyError, type EngineEvent, type EngineStats, type GenerateRequest } from "./protocol.js";

export interface SchedulerOptions {
  /** Sequences decoding at once (KV-cache slots); default 8. */
  maxBatch?: number;
  /** Sequences waiting for a slot at most (beyond those free slots take at once); submit throws EngineBusyError beyond. Default 64. */
  maxQueue?: number;
  /** Context length per slot; default the model's max positions capped at 4096. */
  ctx?: number;
  kvDtype?: KVCacheDType;
  /** Prompt tokens prefilled per step at most, across sequences (long prompts go in chunks). Default 512. */
  prefillChunk?: number;
  /** Positions the prefix cache keeps at most (least recently used entries go first). Default 4 × ctx; 0 turns it off. */
  prefixCacheTokens?: number;
  /** Clock in ms (tests); default Date.now. */
  now?: () => number;
  /** Called when a queued sequence gets a slot. */
  onStart?: (id: string) => void;
}

type Emit = (e: EngineEvent) => void;

interface Seq {
  req: GenerateRequest;
  emit: Emit;
  deadline: number;
  /** Prompt then generated tokens; the slot's cache holds the first cache.length of them. */
  tokens: number[];
  promptLen: number;
  cachedTokens: number;
  generated: number;
  counts: Map<number, number>;
  g: Generator;
  slot: number;
}

interface PrefixEntry { tokens: number[]; cache: KVCache; used: number }

const commonPrefix = (a: readonly number[], b: readonly number[], max: number) => {
  let n = 0;
  while (n < max && n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
};

export class Scheduler {
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly ctx: number;
  private readonly kvDtype: KVCacheDType;
  private readonly prefillChunk: number;
  private readonly prefixCacheTokens: number;
  private readonly now: () => number;
  private readonly queue: Seq[] = [];
  private readonly slots: (Seq | null)[];
  private readonly caches: (KVCache | null)[];
  private readonly prefixes: PrefixEntry[] = [];
  /** Storage of the forward steps: reused from step to step (the logits rows are read before the next step). */
  private readonly arena = new StepArena();
  /** The scores row being sampled (vocabulary-sized, reused from token to token). */
  private scoreRow = new Float64Array(0);
  private prefixHits = 0;
  private clock = 0;
  private readonly vocab: number;

  constructor(readonly model: CausalLM, private readonly o: SchedulerOptions = {}) {
    const info = model.info();
    this.vocab = info.vocab_size;
    this.maxBatch = o.maxBatch ?? 8;
    this.maxQueue = o.maxQueue ?? 64;
    this.ctx = o.ctx ?? Math.min(info.context_length, 4096);
    for (const [k, v] of [["maxBatch", this.maxBatch], ["ctx", this.ctx]] as const)
      if (!Number.isInteger(v) || v < 1) throw new FathomError("serve", `${k} must be a positive integer, got ${v}`);
    if (!Number.isInteger(this.maxQueue) || this.maxQueue < 0) throw new FathomError("serve", `maxQueue must be an integer ≥ 0, got ${this.maxQueue}`);
    this.kvDtype = o.kvDtype ?? "f32";
    this.prefillChunk = Math.max(1, o.prefillChunk ?? 512);
    this.prefixCacheTokens = o.prefixCacheTokens ?? 4 * this.ctx;
    this.now = o.now ?? Date.now;
    this.slots = new Array(this.maxBatch).fill(null);
    this.caches = new Array(this.maxBatch).fill(null);
  }

  /** Queues a sequence; throws EngineBusyError when the queue is full. Invalid requests end at once with "error". */
  submit(req: GenerateRequest, emit: Emit, submittedAt = this.now()): void {
    // queued sequences take free slots at the next step; only those left over wait
    const free = this.slots.reduce((n, x) => n + (x ? 0 : 1), 0);
    if (this.queue.length - free >= this.maxQueue) throw new EngineBusyError(Math.max(0, this.queue.length - free));
    const p = req.params;
    const seq: Seq = {
      req, emit, deadline: req.timeoutMs !== undefined ? submittedAt + req.timeoutMs : Infinity,
      tokens: [...req.promptIds], promptLen: req.promptIds.length, cachedTokens: 0, generated: 0, counts: new Map(),
      g: new Generator(p.seed ?? Math.floor(Math.random() * 2 ** 32)), slot: -1,
    };
    const bad = this.validate(req);
    if (bad) { this.finish(seq, "error", bad); return; }
    this.queue.push(seq);
  }

  private validate(req: GenerateRequest): string | null {
    const ids = req.promptIds;
    if (this.find(req.id)) return `sequence id '${req.id}' is already in use`;
    if (!ids.length) return "the prompt needs at least one token";
    if (ids.length >= this.ctx) return `prompt of ${ids.length} tokens does not fit the context of ${this.ctx}`;
    for (const t of ids) if (!Number.isInteger(t) || t < 0 || t >= this.vocab) return `token id ${t} is outside the vocabulary (${this.vocab} tokens)`;
    return null;
  }

  private find(id: string): Seq | undefined {
    return this.queue.find((s) => s.req.id === id) ?? this.slots.find((s) => s?.req.id === id) ?? undefined;
  }

  /** Ends a queued or running sequence with "cancelled"; its slot is free for the next step. */
  cancel(id: string): void {
    const s = this.find(id);
    if (s) this.finish(s, "cancelled");
  }

  /** Ends every sequence (closing). */
  cancelAll(reason: "cancelled" | "error" = "cancelled", message?: string): void {
    for (const s of [...this.queue, ...this.slots]) if (s) this.finish(s, reason, message);
  }

  hasWork(): boolean { return this.queue.length > 0 || this.slots.some((s) => s !== null); }

  stats(): EngineStats {
    let used = 0;
    for (let i = 0; i < this.maxBatch; i++) if (this.slots[i]) used += this.caches[i]!.length;
    return {
      queueDepth: this.queue.length, active: this.slots.filter(Boolean).length, maxBatch: this.maxBatch,
      kvTokensUsed: used, kvTokensCapacity: this.maxBatch * this.ctx, prefixCacheHits: this.prefixHits,
    };
  }

  private finish(s: Seq, reason: Extract<EngineEvent, { type: "done" }>["reason"], error?: string): void {
    const qi = this.queue.indexOf(s);
    if (qi >= 0) this.queue.splice(qi, 1);
    if (s.slot >= 0) { this.slots[s.slot] = null; this.caches[s.slot]!.truncate(0); s.slot = -1; }
    const e: EngineEvent = { type: "done", id: s.req.id, reason, promptTokens: s.promptLen, completionTokens: s.generated, cachedTokens: s.cachedTokens };
    if (error !== undefined) e.error = error;
    s.emit(e);
  }

  private expire(): void {
    const t = this.now();
    for (const s of [...this.queue, ...this.slots]) if (s && t >= s.deadline) this.finish(s, "timeout");
  }

  private admit(): void {
    for (let i = 0; i < this.maxBatch && this.queue.length; i++) {
      if (this.slots[i]) continue;
      const s = this.queue.shift()!;
      this.caches[i] ??= this.model.newCache({ dtype: this.kvDtype, capacity: this.ctx });
      this.slots[i] = s;
      s.slot = i;
      this.o.onStart?.(s.req.id);
      if (s.req.params.maxTokens <= 0) { this.finish(s, "length"); continue; }
      this.usePrefix(s, this.caches[i]!);
    }
  }

  // ---- prefix cache: KV of recent prompts, keyed by their token ids

  private usePrefix(s: Seq, cache: KVCache): void {
    let best: PrefixEntry | null = null, n = 0;
    for (const e of this.prefixes) {
      const m = commonPrefix(e.tokens, s.tokens, s.promptLen - 1);    // at least one prompt token is computed (for its logits)
      if (m > n) { n = m; best = e; }
    }
    if (!best) return;
    cache.copyFrom(best.cache, n);
    best.used = ++this.clock;
    s.cachedTokens = n;
    this.prefixHits += n;
  }

  private remember(tokens: number[], cache: KVCache): void {
    if (this.prefixCacheTokens <= 0 || tokens.length > this.prefixCacheTokens) return;
    for (const e of this.prefixes) if (commonPrefix(e.tokens, tokens, tokens.length) === tokens.length) { e.used = ++this.clock; return; }
    for (let i = this.prefixes.length - 1; i >= 0; i--)   // entries the new one extends are superseded
      if (commonPrefix(this.prefixes[i].tokens, tokens, tokens.length) === this.prefixes[i].tokens.length) this.prefixes.splice(i, 1);
    this.prefixes.push({ tokens: [...tokens], cache: cache.snapshot(tokens.length), used: ++this.clock });
    let total = this.prefixes.reduce((a, e) => a + e.tokens.length, 0);
    while (total > this.prefixCacheTokens) {
      let lru = 0;
      this.prefixes.forEach((e, i) => { if (e.used < this.prefixes[lru].used) lru = i; });
      total -= this.prefixes[lru].tokens.length;
      this.prefixes.splice(lru, 1);
    }
  }

  /** One decoding step over every running sequence (admitting queued ones first). False when there was nothing to do. */
  step(): boolean {
    this.expire();
    this.admit();
    const batch: { s: Seq; cache: KVCache; ids: number[]; last: boolean }[] = [];
    let budget = this.prefillChunk;
    for (let i = 0; i < this.maxBatch; i++) {
      const s = this.slots[i];
      if (!s) continue;
      const cache = this.caches[i]!, pending = s.tokens.length - cache.length;
      if (pending === 1) { batch.push({ s, cache, ids: [s.tokens[cache.length]], last: true }); continue; }
      if (budget <= 0) continue;
      const n = Math.min(pending, budget);
      budget -= n;
      batch.push({ s, cache, ids: s.tokens.slice(cache.length, cache.length + n), last: n === pending });
    }
    if (!batch.length) return this.hasWork();
    const want = batch.flatMap((b, i) => (b.last ? [i] : []));
    let rows: Float32Array | null = null;
    try {
      const seqs: RaggedSequence[] = batch.map((b) => ({ ids: b.ids, cache: b.cache }));
      const r = noGrad(() => this.arena.run(() => this.model.forwardRagged(seqs, { logitsFor: want })));
      rows = r.logits ? (r.logits.to("f32").contiguous().buffer() as Float32Array) : null;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      for (const b of batch) this.finish(b.s, "error", msg);
      return this.hasWork();
    }
    const V = this.vocab;
    want.forEach((bi, k) => {
      const { s, cache } = batch[bi];
      if (s.generated === 0 && cache.length === s.promptLen) this.remember(s.tokens.slice(0, s.promptLen), cache);
      try { this.choose(s, rows!.subarray(k * V, (k + 1) * V)); }
      catch (e) { if (s.slot >= 0) this.finish(s, "error", e instanceof Error ? e.message : String(e)); }
    });
    return this.hasWork();
  }

  /** Samples the next token of s from its raw logits, reports it, and ends s on a stop id or a length limit. */
  private choose(s: Seq, raw: Float32Array): void {
    const p = s.req.params;
    if (this.scoreRow.length !== raw.length) this.scoreRow = new Float64Array(raw.length);
    const sc = this.scoreRow;                                   // reused: consumed before the next choice
    sc.set(raw);
    if (p.logitBias) logitBias(sc, p.logitBias);
    presenceFrequencyPenalty(sc, s.counts, p.presencePenalty, p.frequencyPenalty);
    let tok: number;
    if (!(p.temperature > 0)) tok = argmax(sc);
    else {
      temperature(sc, p.temperature);
      topP(sc, p.topP);
      tok = sample(sc, s.g);
    }
    const ev: EngineEvent = { type: "token", id: s.req.id, tokenId: tok };
    if (p.topLogprobs !== null && p.topLogprobs !== undefined) {
      // log-probabilities of the model's distribution (the raw logits, before bias, penalties and temperature)
      const lp = logSoftmax(raw);
      ev.logprob = lp[tok];
      ev.top = topKEntries(lp, p.topLogprobs).map((e) => ({ id: e.id, logprob: e.value }));
    }
    s.tokens.push(tok);
    s.generated++;
    s.counts.set(tok, (s.counts.get(tok) ?? 0) + 1);
    s.emit(ev);
    if (s.slot < 0) return;                                     // cancelled from inside the callback
    if (p.stopTokenIds.includes(tok)) this.finish(s, "stop");
    else if (s.generated >= p.maxTokens || s.tokens.length >= this.ctx) this.finish(s, "length");
  }

  /** Mean-pooled final hidden states (after the last norm), L2-normalised, one per input; one forward pass per chunk. */
  embed(inputs: number[][]): Float32Array[] {
    const it = this.embedSteps(inputs);
    for (;;) { const r = it.next(); if (r.done) return r.value; }
  }

  /** embed() one forward pass at a time: yields after each group, so the worker can run decode steps in between. */
  *embedSteps(inputs: number[][]): IterableIterator<void, Float32Array[]> {
    for (const ids of inputs) {
      if (!ids.length) throw new FathomError("embed", "every input needs at least one token");
      if (ids.length > this.ctx) throw new FathomError("embed", `input of ${ids.length} tokens does not fit the context of ${this.ctx}`);
      for (const t of ids) if (!Number.isInteger(t) || t < 0 || t >= this.vocab) throw new FathomError("embed", `token id ${t} is outside the vocabulary (${this.vocab} tokens)`);
    }
    const out: Float32Array[] = [];
    for (let i = 0; i < inputs.length;) {
      const group: number[][] = [];
      let n = 0;
      while (i < inputs.length && (group.length === 0 || n + inputs[i].length <= Math.max(this.prefillChunk, 1024))) { n += inputs[i].length; group.push(inputs[i++]); }
      const seqs = group.map((ids) => ({ ids, cache: this.model.newCache() }));
      const h = noGrad(() => this.model.forwardRagged(seqs, { logitsFor: [], hidden: true })).hidden!;
      const D = h.shape[2], hb = h.to("f32").contiguous().buffer() as Float32Array;
      let at = 0;
      for (const ids of group) {
        const v = new Float64Array(D);
        for (let t = 0; t < ids.length; t++) for (let d = 0; d < D; d++) v[d] += hb[(at + t) * D + d];
        at += ids.length;
        let norm = 0;
        for (let d = 0; d < D; d++) { v[d] /= ids.length; norm += v[d] * v[d]; }
        norm = Math.sqrt(norm) || 1;
        out.push(Float32Array.from(v, (x) => x / norm));
      }
      if (i < inputs.length) yield;
    }
    return out;
  }
}
