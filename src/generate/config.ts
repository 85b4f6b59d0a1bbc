// GenerationConfig: Hugging Face's field names and defaults, merged from generation_config.json and the call, and
// validated as transformers validates (same error cases, as FathomError naming the field).
import { FathomError } from "../core/errors.js";

export interface GenerationConfig {
  max_length?: number;
  max_new_tokens?: number;
  min_length?: number;
  min_new_tokens?: number;
  do_sample?: boolean;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  min_p?: number | null;
  typical_p?: number;
  repetition_penalty?: number;
  no_repeat_ngram_size?: number;
  /** Token sequences that may never be generated. */
  bad_words_ids?: number[][];
  /** Added to the logits of the last token of each sequence when the rest of it precedes (HF sequence_bias). */
  sequence_bias?: [number[], number][];
  /** OpenAI-style {token id: bias}, the single-token case of sequence_bias. */
  logit_bias?: Record<number, number>;
  num_return_sequences?: number;
  num_beams?: number;
  length_penalty?: number;
  early_stopping?: boolean | "never";
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  bos_token_id?: number | null;
  stop_strings?: string | string[];
  /** Seed for sampling: the same seed gives the same tokens. */
  seed?: number;
}

export interface ResolvedConfig extends Required<Omit<GenerationConfig, "min_p" | "eos_token_id" | "pad_token_id" | "bos_token_id" | "stop_strings" | "seed" | "logit_bias" | "max_new_tokens">> {
  min_p: number | null; eos: number[]; pad: number; stop_strings: string[]; seed: number | null;
  /** Total length limit for this prompt length (prompt + new). */
  maxLength: number;
}

/** transformers' GenerationConfig defaults. */
export const GENERATION_DEFAULTS = {
  max_length: 20, min_length: 0, min_new_tokens: 0, do_sample: false, temperature: 1.0, top_k: 50, top_p: 1.0, typical_p: 1.0,
  repetition_penalty: 1.0, no_repeat_ngram_size: 0, num_return_sequences: 1, num_beams: 1, length_penalty: 1.0, early_stopping: false as boolean | "never",
};

const fail = (field: string, msg: string): never => { throw new FathomError("generate", `${field}: ${msg}`); };

/** Merges model defaults (generation_config.json) and call options, then validates as transformers does. */
export function resolveConfig(modelDefaults: Record<string, unknown> | undefined, call: GenerationConfig, promptLength: number,
  maxPositions: number): ResolvedConfig {
  const m = { ...(modelDefaults ?? {}) } as GenerationConfig;
  // A model default of temperature 0 means greedy (transformers turns do_sample off when merging).
  if (m.temperature === 0) { delete m.temperature; m.do_sample = false; }
  const c = { ...GENERATION_DEFAULTS, ...strip(m), ...strip(call) } as typeof GENERATION_DEFAULTS & GenerationConfig;
  const intField = (k: keyof GenerationConfig, min: number) => {
    const v = c[k as keyof typeof c] as unknown;
    if (v !== undefined && v !== null && (typeof v !== "number" || !Number.isInteger(v) || v < min)) fail(k, `must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  };
  intField("max_length", 1); intField("min_length", 0); intField("min_new_tokens", 0); intField("top_k", 0); intField("no_repeat_ngram_size", 0);
  intField("num_return_sequences", 1); intField("num_beams", 1);
  if (call.max_new_tokens !== undefined && (!Number.isInteger(call.max_new_tokens) || call.max_new_tokens <= 0))
    fail("max_new_tokens", `must be greater than 0, but is ${call.max_new_tokens}`);
  if (c.do_sample) {
    if (!(typeof c.temperature === "number" && c.temperature > 0)) fail("temperature", `has to be a strictly positive float, but is ${c.temperature}`);
    if (!(c.top_p > 0 && c.top_p <= 1)) fail("top_p", `has to be a float > 0 and ≤ 1, but is ${c.top_p}`);
    if (c.min_p !== undefined && c.min_p !== null && !(c.min_p >= 0 && c.min_p <= 1)) fail("min_p", `has to be a float ≥ 0 and ≤ 1, but is ${c.min_p}`);
    if (!(c.typical_p > 0 && c.typical_p <= 1)) fail("typical_p", `has to be a float > 0 and ≤ 1, but is ${c.typical_p}`);
  }
  if (!(c.repetition_penalty > 0)) fail("repetition_penalty", `has to be a strictly positive float, but is ${c.repetition_penalty}`);
  if (c.num_beams === 1 && !c.do_sample && c.num_return_sequences > 1)
    fail("num_return_sequences", `greedy methods without beam search do not support num_return_sequences different than 1 (got ${c.num_return_sequences})`);
  if (c.num_beams > 1 && c.num_return_sequences > c.num_beams)
    fail("num_return_sequences", `has to be smaller or equal to num_beams (${c.num_return_sequences} > ${c.num_beams})`);
  if (c.num_beams > 1 && c.do_sample) fail("do_sample", "beam sampling (num_beams > 1 with do_sample) is not supported");
  const eosRaw = call.eos_token_id !== undefined ? call.eos_token_id : m.eos_token_id;
  const eos = eosRaw === undefined || eosRaw === null ? [] : Array.isArray(eosRaw) ? eosRaw : [eosRaw];
  const padRaw = call.pad_token_id ?? m.pad_token_id;
  // max_new_tokens wins over max_length; an untouched default max_length of 20 means 20 new tokens.
  const explicitMax = call.max_length ?? m.max_length;
  let maxLength = call.max_new_tokens !== undefined ? promptLength + call.max_new_tokens
    : m.max_new_tokens !== undefined ? promptLength + (m.max_new_tokens as number)
    : explicitMax !== undefined ? explicitMax : Math.min(promptLength + GENERATION_DEFAULTS.max_length, maxPositions);
  maxLength = Math.min(maxLength, maxPositions);
  const sequence_bias = [...(c.sequence_bias ?? [])];
  for (const [id, b] of Object.entries(call.logit_bias ?? m.logit_bias ?? {})) sequence_bias.push([[Number(id)], b]);
  const stops = c.stop_strings === undefined ? [] : Array.isArray(c.stop_strings) ? c.stop_strings : [c.stop_strings];
  return { ...GENERATION_DEFAULTS, ...c, bad_words_ids: c.bad_words_ids ?? [], sequence_bias, min_p: c.min_p ?? null, eos,
    pad: padRaw ?? eos[0] ?? 0, stop_strings: stops, seed: c.seed ?? null, maxLength };
}

function strip(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
