// Logits processors and warpers with transformers' semantics, applied in its order: sequence bias → repetition
// penalty → no-repeat n-gram → bad words → min length → min new tokens; then, only when sampling, temperature →
// top-k → top-p → min-p → typical-p. Each works in place on one row of scores (Float64Array over the vocabulary),
// given the row's full token sequence (prompt included, as for decoder-only models in transformers).
import type { ResolvedConfig } from "./config.js";

export type Scores = Float64Array;

/** sequence_bias: the bias of [..., t] applies to t when the preceding ids match the end of the sequence. */
export function sequenceBias(s: Scores, ids: readonly number[], bias: readonly [readonly number[], number][]): void {
  for (const [seq, b] of bias) {
    const last = seq[seq.length - 1], prefix = seq.length - 1;
    if (last < 0 || last >= s.length || prefix > ids.length) continue;
    let ok = true;
    for (let i = 0; i < prefix && ok; i++) ok = ids[ids.length - prefix + i] === seq[i];
    if (ok) s[last] += b;
  }
}

/** Tokens already in the sequence: divide positive scores by the penalty, multiply negative ones. */
export function repetitionPenalty(s: Scores, ids: readonly number[], penalty: number): void {
  if (penalty === 1) return;
  for (const t of new Set(ids)) if (t >= 0 && t < s.length) s[t] = s[t] < 0 ? s[t] * penalty : s[t] / penalty;
}

/** Bans every token that would complete an n-gram already present in the sequence. */
export function noRepeatNgram(s: Scores, ids: readonly number[], n: number): void {
  if (n <= 0 || ids.length + 1 < n) return;
  const prefix = ids.slice(ids.length - (n - 1));
  for (let i = 0; i + n <= ids.length; i++) {
    let match = true;
    for (let j = 0; j < n - 1 && match; j++) match = ids[i + j] === prefix[j];
    if (match) s[ids[i + n - 1]] = -Infinity;
  }
}

export function badWords(s: Scores, ids: readonly number[], bad: readonly number[][]): void {
  for (const seq of bad) {
    const last = seq[seq.length - 1], prefix = seq.length - 1;
    if (prefix > ids.length) continue;
    let ok = true;
    for (let i = 0; i < prefix && ok; i++) ok = ids[ids.length - prefix + i] === seq[i];
    if (ok && last >= 0 && last < s.length) s[last] = -Infinity;
  }
}

export function banEos(s: Scores, eos: readonly number[]): void { for (const e of eos) if (e >= 0 && e < s.length) s[e] = -Infinity; }

export function temperature(s: Scores, t: number): void { if (t !== 1) for (let i = 0; i < s.length; i++) s[i] /= t; }

/** Keeps the k best (ties with the k-th value included, as torch.topk's threshold does). */
export function topK(s: Scores, k: number, minKeep = 1): void {
  k = Math.min(Math.max(k, minKeep), s.length);
  if (k <= 0 || k >= s.length) return;
  const kth = [...s].sort((a, b) => b - a)[k - 1];
  for (let i = 0; i < s.length; i++) if (s[i] < kth) s[i] = -Infinity;
}

function softmax(s: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < s.length; i++) if (s[i] > mx) mx = s[i];
  const p = new Float64Array(s.length);
  let z = 0;
  for (let i = 0; i < s.length; i++) { p[i] = mx === -Infinity ? 0 : Math.exp(s[i] - mx); z += p[i]; }
  for (let i = 0; i < s.length; i++) p[i] = z > 0 ? p[i] / z : 0;
  return p;
}

/** Nucleus: sorted ascending, drops tokens whose cumulative probability is ≤ 1 − top_p (keeping at least minKeep). */
export function topP(s: Scores, p: number, minKeep = 1): void {
  if (p >= 1) return;
  const order = Array.from(s.keys()).sort((a, b) => s[a] - s[b] || a - b);
  const probs = softmax(order.map((i) => s[i]));
  let cum = 0;
  for (let r = 0; r < order.length - minKeep; r++) {
    cum += probs[r];
    if (cum <= 1 - p) s[order[r]] = -Infinity;
  }
}

/** min-p: drops tokens whose probability is below min_p × the top probability. */
export function minP(s: Scores, mp: number, minKeep = 1): void {
  const probs = softmax(s);
  let top = 0;
  for (const q of probs) if (q > top) top = q;
  const order = Array.from(s.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  for (let r = minKeep; r < order.length; r++) if (probs[order[r]] < mp * top) s[order[r]] = -Infinity;
}

/** Locally typical sampling: keeps the tokens whose surprise is closest to the entropy until their mass reaches p. */
export function typicalP(s: Scores, mass: number, minKeep = 1): void {
  if (mass >= 1) return;
  const probs = softmax(s);
  let ent = 0;
  for (const q of probs) if (q > 0) ent -= q * Math.log(q);
  const shifted = Array.from(probs, (q) => Math.abs(-Math.log(q) - ent));
  const order = Array.from(s.keys()).sort((a, b) => shifted[a] - shifted[b] || a - b);
  const sortedProbs = softmax(order.map((i) => s[i]));
  let cum = 0, last = 0;
  for (let r = 0; r < order.length; r++) { cum += sortedProbs[r]; if (cum < mass) last = r + 1; }
  last = Math.min(last, order.length - 1);
  const cut = shifted[order[last]];
  for (let r = minKeep; r < order.length; r++) if (shifted[order[r]] > cut) s[order[r]] = -Infinity;
}

/** All processors in transformers' order for one row; `sampling` adds the warpers. */
export function processRow(s: Scores, ids: readonly number[], promptLength: number, c: ResolvedConfig, sampling: boolean, minKeep = 1): void {
  if (c.sequence_bias.length) sequenceBias(s, ids, c.sequence_bias);
  repetitionPenalty(s, ids, c.repetition_penalty);
  noRepeatNgram(s, ids, c.no_repeat_ngram_size);
  if (c.bad_words_ids.length) badWords(s, ids, c.bad_words_ids);
  if (ids.length < c.min_length) banEos(s, c.eos);
  if (ids.length - promptLength < c.min_new_tokens) banEos(s, c.eos);
  if (!sampling) return;
  temperature(s, c.temperature);
  if (c.top_k > 0) topK(s, c.top_k, minKeep);
  topP(s, c.top_p, minKeep);
  if (c.min_p !== null && c.min_p > 0) minP(s, c.min_p, minKeep);
  typicalP(s, c.typical_p, minKeep);
}
