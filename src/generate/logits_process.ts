// Logits processors and warpers with transformers' semantics, applied in its order: sequence bias → repetition
// penalty → no-repeat n-gram → bad words → min length → min new tokens; then, only when sampling, temperature →
// top-k → top-p → min-p → typical-p. Each works in place on one row of scores (Float64Array over the vocabulary),
// given the row's full token sequence (prompt included, as for decoder-only models in transformers).
import type { ResolvedConfig } from "./config.js";
import type { Generator } from "../core/ops/create.js";

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

// Vocabulary-sized scratch rows reused from token to token (top-p's sorted copy and probabilities, sample's weights):
// a fresh 1 MB array per token at a 129k vocabulary would be garbage at every step. Callers finish with a row before
// the next call that takes the same slot (these functions are synchronous and do not nest).
const scratchRows: Float64Array[] = [];
function scratch(slot: number, n: number): Float64Array {
  if (!scratchRows[slot] || scratchRows[slot].length < n) scratchRows[slot] = new Float64Array(n);
  return scratchRows[slot].subarray(0, n);
}

function softmax(s: ArrayLike<number>, into?: Float64Array): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < s.length; i++) if (s[i] > mx) mx = s[i];
  const p = into ?? new Float64Array(s.length);
  let z = 0;
  for (let i = 0; i < s.length; i++) { p[i] = mx === -Infinity ? 0 : Math.exp(s[i] - mx); z += p[i]; }
  for (let i = 0; i < s.length; i++) p[i] = z > 0 ? p[i] / z : 0;
  return p;
}

/** Nucleus: sorted ascending, drops tokens whose cumulative probability is ≤ 1 − top_p (keeping at least minKeep). */
export function topP(s: Scores, p: number, minKeep = 1): void {
  if (p >= 1) return;
  // The cumulative mass only grows, so the dropped tokens are a prefix of the ascending order: find its last value with
  // a numeric sort of the values (no index sort), then drop everything below it and, among the tokens equal to it, the
  // lowest indices first (ties sort by index).
  const sorted = scratch(0, s.length);
  sorted.set(s);
  sorted.sort();
  const probs = softmax(sorted, scratch(1, s.length));
  let cum = 0, cut = -1;
  for (let r = 0; r < sorted.length - minKeep; r++) {
    cum += probs[r];
    if (cum <= 1 - p) cut = r; else break;
  }
  if (cut < 0) return;
  const t = sorted[cut];
  let ties = 0;
  for (let r = cut; r >= 0 && sorted[r] === t; r--) ties++;
  for (let i = 0; i < s.length; i++) {
    if (s[i] < t) s[i] = -Infinity;
    else if (s[i] === t && ties > 0) { s[i] = -Infinity; ties--; }
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

// ---- choosing a token (shared by generate() and the serve engine)

export function logSoftmax(s: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < s.length; i++) if (s[i] > mx) mx = s[i];
  let z = 0;
  for (let i = 0; i < s.length; i++) z += Math.exp(s[i] - mx);
  const l = mx + Math.log(z), out = new Float64Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s[i] - l;
  return out;
}

/** Draws a token from softmax(s) with the seeded generator (one uniform per draw). */
export function sample(s: Scores, g: Generator): number {
  let mx = -Infinity;
  for (const v of s) if (v > mx) mx = v;
  let z = 0;
  const p = scratch(2, s.length);
  for (let i = 0; i < s.length; i++) { const e = Math.exp(s[i] - mx); p[i] = e; z += e; }
  let u = g.next() * z;
  for (let i = 0; i < p.length; i++) { u -= p[i]; if (u < 0 && p[i] > 0) return i; }
  for (let i = p.length - 1; i >= 0; i--) if (p[i] > 0) return i;
  return 0;
}

export function argmax(s: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < s.length; i++) if (s[i] > s[b]) b = i;
  return b;
}

/** The k largest entries, best first (ties by lower index). */
export function topKEntries(s: ArrayLike<number>, k: number): { id: number; value: number }[] {
  const out: { id: number; value: number }[] = [];
  if (k <= 0) return out;
  for (let i = 0; i < s.length; i++) {
    const v = s[i];
    if (out.length === k && !(v > out[k - 1].value)) continue;
    let j = out.length < k ? out.length : k - 1;
    while (j > 0 && out[j - 1].value < v) j--;
    out.splice(j, 0, { id: i, value: v });
    if (out.length > k) out.pop();
  }
  return out;
}

/** OpenAI-style logit bias: {token id: bias} added to the scores (ids outside the vocabulary are ignored). */
export function logitBias(s: Scores, bias: Readonly<Record<number, number>>): void {
  for (const [k, b] of Object.entries(bias)) { const t = Number(k); if (Number.isInteger(t) && t >= 0 && t < s.length) s[t] += b; }
}

/** OpenAI presence/frequency penalties: s[t] −= presence·[count > 0] + frequency·count, counts over generated tokens. */
export function presenceFrequencyPenalty(s: Scores, counts: ReadonlyMap<number, number>, presence: number, frequency: number): void {
  if (!presence && !frequency) return;
  for (const [t, n] of counts) if (t >= 0 && t < s.length && n > 0) s[t] -= presence + frequency * n;
}
