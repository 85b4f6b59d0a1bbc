// The contract between the HTTP side of `fathom serve` (main thread) and the engine (a worker thread that owns the
// model). The engine speaks token ids only: the HTTP side owns the tokenizer, chat templates, streaming detokenization
// and stop strings (it cancels a sequence once a stop string appears). Everything here is structured-clone safe.

/** Sampling knobs for one sequence, already validated and resolved by the HTTP side. */
export interface SamplingParams {
  /** New tokens at most (the engine also stops at its context length: finish reason "length"). */
  maxTokens: number;
  /** 0 → greedy (argmax); otherwise logits are divided by it before top-p. */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  topP: number;
  /** Same seed, same prompt, same params → same tokens. Absent → random. */
  seed?: number;
  /** OpenAI semantics: logit -= presence * [count > 0] + frequency * count, counts over generated tokens. */
  presencePenalty: number;
  frequencyPenalty: number;
  /** OpenAI-style {token id: bias} added to logits. */
  logitBias?: Record<number, number>;
  /** null → no log-probs; k ≥ 0 → each token event carries its log-prob and the k most likely alternatives. */
  topLogprobs: number | null;
  /** Generation ends (finish reason "stop") after any of these ids is produced (it is reported, then done). */
  stopTokenIds: number[];
}

export interface GenerateRequest {
  /** Unique per sequence (the HTTP side makes n sequences for n > 1: `${requestId}-${i}`). */
  id: string;
  promptIds: number[];
  params: SamplingParams;
  /** Wall-clock limit from submission; on expiry the sequence ends with reason "timeout". */
  timeoutMs?: number;
}

export interface TopLogprob { id: number; logprob: number }

export type EngineEvent =
  | { type: "token"; id: string; tokenId: number; logprob?: number; top?: TopLogprob[] }
  | {
    type: "done"; id: string;
    reason: "stop" | "length" | "cancelled" | "timeout" | "error";
    promptTokens: number; completionTokens: number;
    /** Prompt tokens whose keys/values came from the prefix cache instead of being computed. */
    cachedTokens: number;
    error?: string;
  };

export interface EngineStats {
  /** Sequences waiting for a slot. */
  queueDepth: number;
  /** Sequences decoding now. */
  active: number;
  maxBatch: number;
  /** KV-cache positions in use across all slots, and the total the slots can hold. */
  kvTokensUsed: number;
  kvTokensCapacity: number;
  /** Prompt tokens served from the prefix cache, all time. */
  prefixCacheHits: number;
}

export interface EngineInfo {
  modelId: string;
  modelType: string;
  contextLength: number;
  hiddenSize: number;
  vocabSize: number;
}

/** Thrown (rejected) by `submit` when the bounded queue is full: the HTTP side answers 429. */
export class EngineBusyError extends Error {
  constructor(readonly queueDepth: number) { super(`engine queue is full (${queueDepth} waiting)`); this.name = "EngineBusyError"; }
}

/** What the HTTP side uses. The implementation runs the model in a worker thread. */
export interface Engine {
  readonly info: EngineInfo;
  /** Why the engine can no longer serve (its worker died), or null while it is healthy. */
  readonly failure: string | null;
  /**
   * Queues a sequence. Events arrive through `onEvent` in order, ending with exactly one "done".
   * Throws EngineBusyError when the queue is full.
   */
  submit(req: GenerateRequest, onEvent: (e: EngineEvent) => void): void;
  /** Ends a queued or running sequence (reason "cancelled"); its slot is free before the next decode step. No-op if unknown. */
  cancel(id: string): void;
  /** Mean-pooled final hidden states (after the last norm), one vector per input, L2-normalized. */
  embed(inputs: number[][]): Promise<Float32Array[]>;
  stats(): EngineStats;
  close(): Promise<void>;
}
