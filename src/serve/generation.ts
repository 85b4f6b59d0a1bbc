// From engine token events to OpenAI text: one SequenceGroup runs the n sequences of a request through the engine and
// turns each one's tokens into text (streaming detokenization), cuts it at stop strings (the engine sequence is
// cancelled and the stop string never emitted), splits off DeepSeek tool calls, and collects log-probs and usage.
import type { Engine, EngineEvent, SamplingParams } from "./protocol.js";
import type { Tokenizer } from "../tokenizers/tokenizer.js";
import type { StreamDecoder } from "../tokenizers/stream_decoder.js";
import { ToolCallStream, TOOL_MARKERS, type OpenAIToolCall } from "./tool_calls.js";

export interface SequenceSpec {
  promptIds: number[];
  params: SamplingParams;
  /** Stop strings: the text ends before the first one. */
  stop: readonly string[];
  /** Parse DeepSeek tool calls out of the text. */
  tools: boolean;
}

export interface TokenLogprob { token: string; bytes: number[]; logprob: number; top: { token: string; bytes: number[]; logprob: number }[] }

export interface SequenceDelta { index: number; text: string; toolCalls: OpenAIToolCall[]; logprobs: TokenLogprob[] }

export type FinishReason = "stop" | "length" | "tool_calls";

export interface SequenceResult {
  index: number;
  text: string;
  toolCalls: OpenAIToolCall[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  logprobs: TokenLogprob[];
  /** The engine's reason when it was not a normal end ("timeout", "cancelled", "error"), and its error message. */
  engineReason: string;
  error?: string;
}

export interface GroupHooks {
  onDelta?: (d: SequenceDelta) => void;
  /** Called once, at the first token of any sequence of the group. */
  onFirstToken?: () => void;
  onToken?: () => void;
}

/** Holds back the text that could still become a stop string; reports the text before the first stop string. */
export class StopFilter {
  private held = "";
  private readonly keep: number;
  constructor(private readonly stops: readonly string[]) { this.keep = Math.max(0, ...stops.map((s) => s.length - 1)); }
  push(text: string): { text: string; stopped: boolean } {
    if (!this.stops.length) return { text, stopped: false };
    this.held += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) { const out = this.held.slice(0, cut); this.held = ""; return { text: out, stopped: true }; }
    // Release all but the last keep characters (never splitting a surrogate pair).
    let at = Math.max(0, this.held.length - this.keep);
    if (at > 0 && at < this.held.length && /[\uDC00-\uDFFF]/.test(this.held[at])) at--;
    const out = this.held.slice(0, at);
    this.held = this.held.slice(at);
    return { text: out, stopped: false };
  }
  flush(): string { const out = this.held; this.held = ""; return out; }
}

const markerIds = new WeakMap<Tokenizer, Set<number>>();
/** Ids the text keeps even when the tokenizer calls them special: the tool-call markers. */
function keptSpecialIds(tok: Tokenizer): Set<number> {
  let s = markerIds.get(tok);
  if (!s) {
    s = new Set(TOOL_MARKERS.map((m) => tok.tokenToId(m)).filter((id): id is number => id !== null));
    markerIds.set(tok, s);
  }
  return s;
}

const tokenTexts = new WeakMap<Tokenizer, Map<number, { token: string; bytes: number[] }>>();
export function tokenText(tok: Tokenizer, id: number): { token: string; bytes: number[] } {
  let m = tokenTexts.get(tok);
  if (!m) { m = new Map(); tokenTexts.set(tok, m); }
  let t = m.get(id);
  if (!t) {
    const b = tok.isByteLevel ? tok.tokenBytes(id, false) : null;
    const token = id >= 0 && id < tok.vocabSize ? tok.decode([id]) : "";
    t = { token, bytes: b ? [...b] : [...Buffer.from(token, "utf8")] };
    if (m.size < 200_000) m.set(id, t);
  }
  return t;
}

class Sequence {
  readonly dec: StreamDecoder;
  readonly stop: StopFilter;
  readonly toolStream: ToolCallStream | null;
  readonly stopIds: Set<number>;
  text = "";
  readonly toolCalls: OpenAIToolCall[] = [];
  readonly logprobs: TokenLogprob[] = [];
  pendingLogprobs: TokenLogprob[] = [];
  /** Set when the HTTP side ended the sequence (stop string, tool calls complete); later tokens are ignored. */
  ended: FinishReason | null = null;
  /** Token events taken into the answer (the engine may run a few steps past a stop before the cancel reaches it). */
  tokens = 0;
  result: SequenceResult | null = null;

  constructor(readonly index: number, readonly id: string, readonly spec: SequenceSpec, tok: Tokenizer) {
    this.dec = tok.streamDecoder({ skipSpecialTokens: false });
    this.stop = new StopFilter(spec.stop);
    this.toolStream = spec.tools ? new ToolCallStream() : null;
    this.stopIds = new Set(spec.params.stopTokenIds);
  }
}

export class SequenceGroup {
  readonly seqs: Sequence[];
  readonly done: Promise<SequenceResult[]>;
  private resolve!: (r: SequenceResult[]) => void;
  private firstToken = false;
  private finished = false;

  constructor(private readonly engine: Engine, private readonly tok: Tokenizer, requestId: string, specs: SequenceSpec[], private readonly hooks: GroupHooks = {}) {
    this.seqs = specs.map((s, i) => new Sequence(i, specs.length === 1 ? requestId : `${requestId}-${i}`, s, tok));
    this.done = new Promise((r) => { this.resolve = r; });
  }

  /** Submits every sequence; if the engine refuses one (queue full), the ones already queued are cancelled and the error rethrown. */
  start(timeoutMs?: number): void {
    const submitted: Sequence[] = [];
    try {
      for (const s of this.seqs) {
        this.engine.submit({ id: s.id, promptIds: s.spec.promptIds, params: s.spec.params, timeoutMs }, (e) => this.onEvent(s, e));
        submitted.push(s);
      }
    } catch (e) {
      this.finished = true;
      for (const s of submitted) this.engine.cancel(s.id);
      throw e;
    }
  }

  /** Ends every sequence still running (client gone). */
  cancel(): void {
    for (const s of this.seqs) if (!s.result) this.engine.cancel(s.id);
  }

  private onEvent(s: Sequence, e: EngineEvent): void {
    if (this.finished || s.result) return;
    if (e.type === "token") {
      if (s.ended) return;
      s.tokens++;
      if (!this.firstToken) { this.firstToken = true; this.hooks.onFirstToken?.(); }
      this.hooks.onToken?.();
      if (e.logprob !== undefined && s.spec.params.topLogprobs !== null) {
        const lp: TokenLogprob = { ...tokenText(this.tok, e.tokenId), logprob: e.logprob, top: (e.top ?? []).map((t) => ({ ...tokenText(this.tok, t.id), logprob: t.logprob })) };
        s.logprobs.push(lp);
        s.pendingLogprobs.push(lp);
      }
      const skip = s.stopIds.has(e.tokenId) || (this.tok.specialIds.has(e.tokenId) && !keptSpecialIds(this.tok).has(e.tokenId));
      this.emit(s, skip ? "" : s.dec.push(e.tokenId), false);
      return;
    }
    // done
    if (!s.ended) this.emit(s, s.dec.flush(), true);
    const reason: FinishReason = s.ended ?? (e.reason === "stop" ? "stop" : s.toolCalls.length ? "tool_calls" : "length");
    s.result = {
      index: s.index, text: s.text, toolCalls: s.toolCalls, finishReason: s.toolCalls.length && reason === "stop" ? "tool_calls" : reason,
      promptTokens: e.promptTokens, completionTokens: s.ended ? s.tokens : e.completionTokens, cachedTokens: e.cachedTokens, logprobs: s.logprobs,
      engineReason: e.reason, error: e.error,
    };
    if (this.seqs.every((q) => q.result)) { this.finished = true; this.resolve(this.seqs.map((q) => q.result!)); }
  }

  /** Text through the tool-call parser and the stop filter, then out as a delta. */
  private emit(s: Sequence, raw: string, final: boolean): void {
    let content = raw;
    const calls: OpenAIToolCall[] = [];
    if (s.toolStream) {
      const r = s.toolStream.push(raw);
      content = r.content;
      calls.push(...r.calls);
      if (final) content += s.toolStream.finish().content;
      if (s.toolStream.done) s.ended = "tool_calls";
    }
    let { text, stopped } = s.stop.push(content);
    if (stopped) s.ended = "stop";
    else if (final || s.ended) text += s.stop.flush();
    s.text += text;
    s.toolCalls.push(...calls);
    if (s.ended && !final) this.engine.cancel(s.id);
    if (text || calls.length || s.pendingLogprobs.length) {
      const d: SequenceDelta = { index: s.index, text, toolCalls: calls, logprobs: s.pendingLogprobs };
      s.pendingLogprobs = [];
      this.hooks.onDelta?.(d);
    }
  }
}
