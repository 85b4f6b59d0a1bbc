// generate(): greedy, sampling and beam search over a CausalLM with a KV cache, with transformers' semantics
// (config.ts, logits_process.ts). Batched prompts are left-padded; num_return_sequences expands each prompt in place,
// so outputs are grouped per prompt. Streaming goes through a callback or the async iterator generateStream().
import { FathomError } from "../core/errors.js";
import { Tensor } from "../core/tensor.js";
import { Generator } from "../core/ops/create.js";
import { noGrad } from "../core/autograd.js";
import { allocate } from "../core/dtype.js";
import { StepArena } from "../core/arena.js";
import type { CausalLM } from "../models/decoder.js";
import type { KVCache } from "../nn/attention.js";
import { resolveConfig, type GenerationConfig, type ResolvedConfig } from "./config.js";
import { argmax, logSoftmax, processRow, sample } from "./logits_process.js";

/** What generate() needs of a tokenizer: stop strings and text streaming. */
export interface TextDecoder { decode(ids: number[], o?: { skipSpecialTokens?: boolean }): string }

export interface GenerateOptions extends GenerationConfig {
  /** Needed for stop_strings. */
  tokenizer?: TextDecoder;
  /** Called with each new token of each output row (row = prompt index × num_return_sequences + k; beams report at the end). */
  onToken?: (row: number, tokenId: number) => void;
  /** Reuse across calls (chat turns): a session cache continues when the new prompt extends what it holds (batch 1). */
  session?: GenerationSession;
}

export interface GenerateResult {
  /** Full sequences (prompt + generated), rows grouped per prompt: [p0s0, p0s1, ..., p1s0, ...]. */
  sequences: number[][];
  /** Only the generated tokens of each row. */
  newTokens: number[][];
  /** Beam search: the length-penalised score of each returned sequence. */
  scores?: number[];
}

/** A KV cache with the tokens it holds, for reuse across chat turns. */
export class GenerationSession {
  cache: KVCache | null = null;
  tokens: number[] = [];
  reset(): void { this.cache = null; this.tokens = []; }
}

/** A tensor of the given values (storage from allocate: the step arena's while a step runs). */
function filled(values: number[], dtype: "i32" | "bool", shape: number[]): Tensor {
  const a = allocate(dtype, values.length);
  for (let i = 0; i < values.length; i++) a[i] = values[i];
  return new Tensor(a, dtype, shape);
}

/**
 * Running state of a batch of rows: their ids, the attention mask (left padding) and the cache. Each step runs in a
 * step arena and its last-position logits are copied into rows kept from step to step, so a warm step allocates no
 * typed arrays (the rows are valid until the next step).
 */
class Batch {
  mask: number[][];
  private readonly arena = new StepArena();
  private scores: Float64Array[] = [];
  constructor(readonly model: CausalLM, public ids: number[][], public promptLens: number[], readonly padded: number) {
    this.mask = ids.map((r, b) => r.map((_, t) => (t < padded - promptLens[b] ? 0 : 1)));
  }
  /** Forward the given new tokens (B, n) with positions from the mask; the last position's logits of each row. */
  step(cache: KVCache, newIds: number[][]): Float64Array[] {
    const B = newIds.length, n = newIds[0].length, past = cache.length;
    const pos: number[] = [];
    for (let b = 0; b < B; b++) {
      let p = this.mask[b].slice(0, past).reduce((a, v) => a + v, 0);
      for (let t = 0; t < n; t++) { pos.push(this.mask[b][past + t] ? p : 1); if (this.mask[b][past + t]) p++; }
    }
    const anyPad = this.mask.some((r) => r.includes(0));
    const Tk = past + n;
    return this.arena.run(() => {
      const mask = anyPad ? filled(this.mask.flatMap((r) => r.slice(0, Tk)), "bool", [B, 1, 1, Tk]) : null;
      const logits = this.model.forward(filled(newIds.flat(), "i32", [B, n]), { cache, positions: filled(pos, "i32", [B, n]), mask });
      return this.lastLogits(logits);
    });
  }
  private lastLogits(logits: Tensor): Float64Array[] {
    const [B, T, V] = logits.shape;
    const data = logits.slice(1, T - 1).to("f32").contiguous().buffer();
    if (this.scores.length !== B || this.scores[0].length !== V) this.scores = Array.from({ length: B }, () => new Float64Array(V));
    this.scores.forEach((row, b) => row.set(data.subarray(b * V, (b + 1) * V)));
    return this.scores;
  }
}

function stopped(c: ResolvedConfig, tok: TextDecoder | undefined, ids: number[], promptLen: number): boolean {
  if (!c.stop_strings.length) return false;
  const text = tok!.decode(ids.slice(promptLen));
  return c.stop_strings.some((s) => text.endsWith(s) || text.includes(s));
}

export function generate(model: CausalLM, prompts: number[][], o: GenerateOptions = {}): GenerateResult {
  return noGrad(() => generateImpl(model, prompts, o));
}

function prepare(model: CausalLM, prompts: number[][], o: GenerateOptions): ResolvedConfig {
  if (!prompts.length || prompts.some((p) => p.length === 0)) throw new FathomError("generate", "every prompt needs at least one token");
  const info = model.info();
  const maxLen = Math.max(...prompts.map((p) => p.length));
  if (maxLen >= info.context_length) throw new FathomError("generate", `prompt of ${maxLen} tokens does not fit the context of ${info.context_length}`);
  for (const p of prompts) for (const t of p) if (!Number.isInteger(t) || t < 0 || t >= info.vocab_size)
    throw new FathomError("generate", `token id ${t} is outside the vocabulary (${info.vocab_size} tokens)`);
  const c = resolveConfig(model.generationConfig, o, maxLen, info.context_length);
  if (c.stop_strings.length && !o.tokenizer) throw new FathomError("generate", "stop_strings need a tokenizer (pass { tokenizer })");
  return c;
}

function generateImpl(model: CausalLM, prompts: number[][], o: GenerateOptions): GenerateResult {
  const c = prepare(model, prompts, o);
  if (c.num_beams > 1) return beamSearch(model, prompts, c, o);
  const run = new SamplingRun(model, prompts, c, o);
  while (run.step()) { /* tokens reach o.onToken */ }
  return run.result();
}

/** Greedy or sampled decoding, one token per row per step (so streaming can yield between steps). */
class SamplingRun {
  private readonly rows: number[][];
  private readonly promptLens: number[];
  private readonly maxLen: number;
  private readonly g: Generator;
  private readonly batch: Batch;
  private readonly cache: KVCache;
  private feed: number[][];
  private readonly done: boolean[];
  private readonly seqs: number[][];

  constructor(readonly model: CausalLM, prompts: number[][], readonly c: ResolvedConfig, readonly o: GenerateOptions) {
    const n = c.num_return_sequences;
    this.rows = prompts.flatMap((p) => Array.from({ length: n }, () => [...p]));
    this.promptLens = this.rows.map((r) => r.length);
    this.maxLen = Math.max(...this.promptLens);
    const padded = this.rows.map((r) => [...new Array(this.maxLen - r.length).fill(c.pad), ...r]);
    this.g = new Generator(c.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.batch = new Batch(model, padded, this.promptLens, this.maxLen);
    const session = o.session, first = this.rows[0];
    if (session && this.rows.length === 1 && session.cache && session.tokens.length < first.length &&
      session.tokens.every((t, i) => t === first[i])) {
      this.cache = session.cache;                              // continue the conversation: feed only the new tokens
      this.feed = [first.slice(session.tokens.length)];
    } else { this.cache = model.newCache({ capacity: c.maxLength }); this.feed = padded; }   // written in place, no per-step concat
    this.done = this.rows.map(() => false);
    this.seqs = padded.map((r) => [...r]);
  }

  private unpadded(b: number): number[] { return this.seqs[b].slice(this.maxLen - this.promptLens[b]); }

  /** Generates one token per unfinished row; false when every row is done or the length limit is reached. */
  step(): boolean {
    const { c } = this;
    if (this.done.every(Boolean) || this.seqs[0].length >= c.maxLength) return false;
    const scores = this.batch.step(this.cache, this.feed);
    const next = scores.map((s, b) => {
      if (this.done[b]) return c.pad;
      processRow(s, this.unpadded(b), this.promptLens[b], c, c.do_sample);
      return c.do_sample ? sample(s, this.g) : argmax(s);
    });
    next.forEach((t, b) => {
      this.seqs[b].push(t);
      this.batch.mask[b].push(1);
      if (this.done[b]) return;
      this.o.onToken?.(b, t);
      if (c.eos.includes(t) || stopped(c, this.o.tokenizer, this.unpadded(b), this.promptLens[b])) this.done[b] = true;
    });
    this.feed = next.map((t) => [t]);
    return true;
  }

  result(): GenerateResult {
    const session = this.o.session;
    if (session && this.rows.length === 1) {
      // the cache holds everything but the last generated token (it was never fed)
      session.cache = this.cache;
      session.tokens = this.unpadded(0).slice(0, -1);
    }
    const out = this.seqs.map((_, b) => {
      const full = this.unpadded(b);
      let end = full.length;                                   // rows that finished early were padded afterwards
      for (let t = this.promptLens[b]; t < full.length; t++) {
        if (this.c.eos.includes(full[t]) || stopped(this.c, this.o.tokenizer, full.slice(0, t + 1), this.promptLens[b])) { end = t + 1; break; }
      }
      return full.slice(0, end);
    });
    return { sequences: out, newTokens: out.map((s, b) => s.slice(this.promptLens[b])) };
  }
}

// ---- beam search (transformers' BeamSearchScorer semantics)

interface Hyp { ids: number[]; score: number }

class BeamHypotheses {
  hyps: Hyp[] = [];
  worst = 1e9;
  constructor(readonly numBeams: number, readonly lengthPenalty: number, readonly early: boolean | "never", readonly promptLen: number) {}
  add(ids: number[], sumLogprobs: number): void {
    const score = sumLogprobs / Math.pow(ids.length - this.promptLen, this.lengthPenalty);
    if (this.hyps.length < this.numBeams || score > this.worst) {
      this.hyps.push({ ids, score });
      if (this.hyps.length > this.numBeams) {
        this.hyps.sort((a, b) => a.score - b.score);
        this.hyps.shift();
      }
      this.worst = Math.min(...this.hyps.map((h) => h.score));
    }
  }
  /** Whether no running beam can still beat the worst finished hypothesis. */
  isDone(bestSumLogprobs: number, curLen: number, maxLength: number): boolean {
    if (this.hyps.length < this.numBeams) return false;
    if (this.early === true) return true;
    const genLen = (this.early === false ? curLen : maxLength) - this.promptLen;
    const highest = this.early === "never" && this.lengthPenalty <= 0 ? bestSumLogprobs / Math.pow(curLen - this.promptLen, this.lengthPenalty)
      : bestSumLogprobs / Math.pow(genLen, this.lengthPenalty);
    return this.worst >= highest;
  }
}

function beamSearch(model: CausalLM, prompts: number[][], c: ResolvedConfig, o: GenerateOptions): GenerateResult {
  const K = c.num_beams, P = prompts.length;
  const maxLen = Math.max(...prompts.map((p) => p.length));
  const rows = prompts.flatMap((p) => Array.from({ length: K }, () => [...new Array(maxLen - p.length).fill(c.pad), ...p]));
  const promptLens = prompts.flatMap((p) => Array.from({ length: K }, () => p.length));
  const batch = new Batch(model, rows, promptLens, maxLen);
  const cache = model.newCache({ capacity: c.maxLength });
  const beamScores: number[] = rows.map((_, r) => (r % K === 0 ? 0 : -1e9));
  const hyps = prompts.map((p) => new BeamHypotheses(K, c.length_penalty, c.early_stopping, p.length));
  const done = prompts.map(() => false);
  let seqs = rows.map((r) => [...r]);
  let feed = rows;
  const nEos = Math.max(c.eos.length, 1);
  while (seqs[0].length < c.maxLength) {
    const scores = batch.step(cache, feed);
    const nextRows: number[][] = [], nextScores: number[] = [], nextTokens: number[] = [], beamIdx: number[] = [];
    for (let p = 0; p < P; p++) {
      if (done[p]) {
        for (let k = 0; k < K; k++) { const r = p * K + k; nextRows.push(seqs[r]); nextScores.push(0); nextTokens.push(c.pad); beamIdx.push(r); }
        continue;
      }
      // candidates over all beams × vocabulary, best first
      const cand: { r: number; t: number; s: number }[] = [];
      for (let k = 0; k < K; k++) {
        const r = p * K + k;
        const ids = seqs[r].slice(maxLen - promptLens[r]);
        const s = logSoftmax(scores[r]);
        processRow(s, ids, promptLens[r], c, false, nEos + 1);
        for (let t = 0; t < s.length; t++) if (s[t] > -Infinity) cand.push({ r, t, s: s[t] + beamScores[r] });
      }
      cand.sort((a, b) => b.s - a.s || a.r - b.r || a.t - b.t);
      const top = cand.slice(0, Math.max(2, 1 + nEos) * K);
      let chosen = 0;
      for (let rank = 0; rank < top.length && chosen < K; rank++) {
        const { r, t, s } = top[rank];
        const full = [...seqs[r].slice(maxLen - promptLens[r]), t];
        if (c.eos.includes(t) || stopped(c, o.tokenizer, full, promptLens[r])) {
          if (rank >= K) continue;                              // an EOS outside the top num_beams is not a finished hypothesis
          hyps[p].add(full, s);
        } else {
          nextRows.push(seqs[r]); nextScores.push(s); nextTokens.push(t); beamIdx.push(r);
          chosen++;
        }
      }
      while (chosen < K) { const r = p * K; nextRows.push(seqs[r]); nextScores.push(-1e9); nextTokens.push(c.pad); beamIdx.push(r); chosen++; }
      const best = Math.max(...nextScores.slice(p * K, p * K + K));
      done[p] = hyps[p].isDone(best, seqs[p * K].length - (maxLen - promptLens[p * K]) + 1, c.maxLength - (maxLen - promptLens[p * K]));
    }
    // reorder the cache and the rows to follow the chosen beams
    cache.reorder(beamIdx);
    batch.mask = beamIdx.map((r) => [...batch.mask[r], 1]);
    seqs = nextRows.map((r, i) => [...r, nextTokens[i]]);
    for (let i = 0; i < beamScores.length; i++) beamScores[i] = nextScores[i];
    feed = nextTokens.map((t) => [t]);
    if (done.every(Boolean)) break;
  }
  // finalize: running beams join the hypotheses
  for (let p = 0; p < P; p++) {
    if (done[p]) continue;
    for (let k = 0; k < K; k++) { const r = p * K + k; hyps[p].add(seqs[r].slice(maxLen - promptLens[r]), beamScores[r]); }
  }
  const sequences: number[][] = [], newTokens: number[][] = [], outScores: number[] = [];
  hyps.forEach((h, p) => {
    const best = [...h.hyps].sort((a, b) => b.score - a.score).slice(0, c.num_return_sequences);
    for (const b of best) {
      sequences.push(b.ids); newTokens.push(b.ids.slice(prompts[p].length)); outScores.push(b.score);
      b.ids.slice(prompts[p].length).forEach((t) => o.onToken?.(sequences.length - 1, t));
    }
  });
  return { sequences, newTokens, scores: outScores };
}

/**
 * Streams the new tokens of a single-prompt generation (greedy or sampling) as they are produced, yielding to the
 * event loop between decoding steps.
 */
export async function* generateStream(model: CausalLM, prompt: number[], o: GenerateOptions = {}): AsyncGenerator<number> {
  const queue: number[] = [];
  const c = prepare(model, [prompt], o);
  if (c.num_beams > 1 || c.num_return_sequences > 1) throw new FathomError("generate", "streaming supports one sequence without beam search");
  const run = new SamplingRun(model, [prompt], c, { ...o, onToken: (r, t) => { queue.push(t); o.onToken?.(r, t); } });
  while (noGrad(() => run.step())) {
    while (queue.length) yield queue.shift()!;
    await new Promise<void>((r) => setImmediate(r));
  }
  noGrad(() => run.result());
}
