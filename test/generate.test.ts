// generate(): every logits processor on hand-computed values, processor order, the length rules, validation errors,
// seeds, batching with left padding, chat-session cache reuse, streaming, stop strings, and beam search checked
// against brute-force enumeration on a tiny model.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as F from "../src/index.js";
import * as P from "../src/generate/logits_process.js";
import { resolveConfig } from "../src/generate/config.js";
import { assertClose } from "./helpers.js";
import { TINY_LLAMA } from "./fixtures.js";

const s = (v: number[]) => Float64Array.from(v);
const NEG = -Infinity;
const logp = (ps: number[]) => ps.map(Math.log);

describe("logits processors (hand-computed)", () => {
  test("repetition penalty divides positive and multiplies negative scores of seen tokens", () => {
    const x = s([2, -2, 1, 0.5]);
    P.repetitionPenalty(x, [0, 1, 1], 2);
    assert.deepEqual([...x], [1, -4, 1, 0.5]);
  });
  test("no_repeat_ngram_size bans completions of n-grams already present (prompt included)", () => {
    const a = s([0, 0, 0, 0, 0]);
    P.noRepeatNgram(a, [1, 2, 3, 1, 2], 3);                 // prefix (1, 2) was followed by 3
    assert.deepEqual([...a], [0, 0, 0, NEG, 0]);
    const b = s([0, 0, 0, 0, 0]);
    P.noRepeatNgram(b, [4, 1, 4, 2, 4], 2);                 // 4 was followed by 1 and by 2
    assert.deepEqual([...b], [0, NEG, NEG, 0, 0]);
    const c = s([0, 0, 0]);
    P.noRepeatNgram(c, [1], 3);                             // too short: nothing banned
    assert.deepEqual([...c], [0, 0, 0]);
    const d = s([0, 0, 0]);
    P.noRepeatNgram(d, [2, 2], 1);                          // unigrams: every seen token
    assert.deepEqual([...d], [0, 0, NEG]);
  });
  test("bad words: single tokens always, longer sequences when their prefix ends the sequence", () => {
    const x = s([0, 0, 0, 0]);
    P.badWords(x, [0, 1], [[3], [1, 2], [0, 0]]);
    assert.deepEqual([...x], [0, 0, NEG, NEG]);
  });
  test("sequence bias / logit bias", () => {
    const x = s([0, 0, 0]);
    P.sequenceBias(x, [5, 1], [[[2], 1.5], [[1, 0], -3], [[4, 1], 10]]);
    assert.deepEqual([...x], [-3, 0, 1.5]);
  });
  test("temperature and top-k (ties at the k-th value kept)", () => {
    const x = s([2, 4]);
    P.temperature(x, 2);
    assert.deepEqual([...x], [1, 2]);
    const y = s([1, 3, 2, 3]);
    P.topK(y, 2);
    assert.deepEqual([...y], [NEG, 3, NEG, 3]);
  });
  test("top-p keeps the smallest set whose mass exceeds p", () => {
    const a = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.topP(a, 0.75);                                        // ascending cum: .05 .20 .50 1 → drop ≤ 0.25
    assert.deepEqual([...a].map((v) => v === NEG), [false, false, true, true]);
    const b = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.topP(b, 0.9);                                         // drop ≤ 0.1
    assert.deepEqual([...b].map((v) => v === NEG), [false, false, false, true]);
  });
  test("min-p scales the threshold by the top probability", () => {
    const a = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.minP(a, 0.2);                                         // threshold 0.1
    assert.deepEqual([...a].map((v) => v === NEG), [false, false, false, true]);
    const b = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.minP(b, 0.5);                                         // threshold 0.25
    assert.deepEqual([...b].map((v) => v === NEG), [false, false, true, true]);
  });
  test("typical-p keeps tokens whose surprise is nearest the entropy", () => {
    // H = 1.14212; |−ln p − H| = .449 (0.5), .062 (0.3), .755 (0.15), 1.854 (0.05); by that order cum = .3 .8 .95 1
    const a = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.typicalP(a, 0.9);                                     // last index 2 → cut at .755 → drop 0.05
    assert.deepEqual([...a].map((v) => v === NEG), [false, false, false, true]);
    const b = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.typicalP(b, 0.5);                                     // last index 1 → cut at .449 → drop 0.15, 0.05
    assert.deepEqual([...b].map((v) => v === NEG), [false, false, true, true]);
  });
  test("order: temperature runs before top-p (transformers), which changes what top-p keeps", () => {
    const c = resolveConfig(undefined, { do_sample: true, temperature: 2, top_p: 0.8, top_k: 0 }, 1, 100);
    const x = s(logp([0.5, 0.3, 0.15, 0.05]));
    P.processRow(x, [9], 1, c, true);
    // T = 2 flattens to ∝ √p = (.379 .294 .208 .120): ascending cum .120 .328 … → only the last token drops
    assert.deepEqual([...x].map((v) => v === NEG), [false, false, false, true]);
  });
  test("min_length and min_new_tokens ban EOS", () => {
    const c = resolveConfig(undefined, { min_new_tokens: 2, eos_token_id: [1, 2] }, 3, 100);
    const x = s([0, 0, 0, 0]);
    P.processRow(x, [7, 7, 7, 5], 3, c, false);             // one new token so far
    assert.deepEqual([...x], [0, NEG, NEG, 0]);
    const y = s([0, 0, 0, 0]);
    P.processRow(y, [7, 7, 7, 5, 5], 3, c, false);
    assert.deepEqual([...y], [0, 0, 0, 0]);
  });
});

describe("generate()", () => {
  const model = F.randomModel(TINY_LLAMA, { seed: 21, init: "scaled" });
  const prompt = [5, 17, 200];

  test("validation errors as transformers raises them", () => {
    assert.throws(() => F.generate(model, [prompt], { num_return_sequences: 2 }), /greedy methods without beam search do not support num_return_sequences/);
    assert.throws(() => F.generate(model, [prompt], { do_sample: true, top_p: 1.5 }), /top_p: has to be a float > 0 and ≤ 1/);
    assert.throws(() => F.generate(model, [prompt], { do_sample: true, temperature: 0 }), /temperature: has to be a strictly positive float/);
    assert.throws(() => F.generate(model, [prompt], { max_new_tokens: 0 }), /max_new_tokens: must be greater than 0/);
    assert.throws(() => F.generate(model, [prompt], { num_beams: 2, num_return_sequences: 3 }), /smaller or equal to num_beams/);
    assert.throws(() => F.generate(model, [[]]), /at least one token/);
    assert.throws(() => F.generate(model, [[1, 999]]), /outside the vocabulary/);
    assert.throws(() => F.generate(model, [new Array(256).fill(1)]), /does not fit the context/);
    assert.throws(() => F.generate(model, [prompt], { stop_strings: ["x"] }), /stop_strings need a tokenizer/);
  });

  test("max_length counts the prompt; max_new_tokens wins; greedy matches generateGreedy", () => {
    assert.equal(F.generate(model, [prompt], { max_length: 5 }).newTokens[0].length, 2);
    const r = F.generate(model, [prompt], { max_length: 5, max_new_tokens: 6 });
    assert.equal(r.newTokens[0].length, 6);
    assert.deepEqual(r.sequences[0].slice(0, 3), prompt);
    assert.deepEqual(r.newTokens[0], model.generateGreedy(prompt, 6).tokenIds);
    assert.equal(F.generate(model, [prompt]).newTokens[0].length, 20);   // untouched default: 20 new tokens
  });

  test("EOS (one or many) stops a row; min_new_tokens delays it", () => {
    const first = model.generateGreedy(prompt, 3).tokenIds;
    const r = F.generate(model, [prompt], { max_new_tokens: 5, eos_token_id: [999, first[1]] });
    assert.deepEqual(r.newTokens[0], first.slice(0, 2));
    const m = F.generate(model, [prompt], { max_new_tokens: 5, eos_token_id: first[0], min_new_tokens: 2 });
    assert.notEqual(m.newTokens[0][0], first[0]);
    assert.ok(m.newTokens[0].length >= 2);
  });

  test("no_repeat_ngram_size: no bigram repeats in the whole sequence", () => {
    const r = F.generate(model, [[7, 7, 8]], { max_new_tokens: 40, no_repeat_ngram_size: 2, do_sample: true, seed: 3, top_k: 3 });
    const seq = r.sequences[0], seen = new Set<string>();
    for (let i = 0; i + 1 < seq.length; i++) {
      const k = `${seq[i]},${seq[i + 1]}`;
      assert.ok(!seen.has(k), `bigram ${k} repeats in ${seq}`);
      seen.add(k);
    }
  });

  test("bad_words_ids and logit_bias steer the tokens", () => {
    const greedy = model.generateGreedy(prompt, 4).tokenIds;
    const r = F.generate(model, [prompt], { max_new_tokens: 4, bad_words_ids: [[greedy[0]]] });
    assert.notEqual(r.newTokens[0][0], greedy[0]);
    const b = F.generate(model, [prompt], { max_new_tokens: 3, logit_bias: { 42: 100 } });
    assert.deepEqual(b.newTokens[0], [42, 42, 42]);
  });

  test("sampling: a seed makes it reproducible; outputs grouped per prompt", () => {
    const o = { do_sample: true, temperature: 1.5, top_k: 0, max_new_tokens: 12, seed: 1234, num_return_sequences: 2 };
    const a = F.generate(model, [prompt, [9, 9]], o), b = F.generate(model, [prompt, [9, 9]], o);
    assert.deepEqual(a.sequences, b.sequences);
    assert.equal(a.sequences.length, 4);
    assert.deepEqual(a.sequences.map((q) => q.slice(0, 2)), [[5, 17], [5, 17], [9, 9], [9, 9]]);
    const c = F.generate(model, [prompt], { ...o, num_return_sequences: 1, seed: 99 });
    const d = F.generate(model, [prompt], { ...o, num_return_sequences: 1, seed: 1234 });
    assert.notDeepEqual(c.newTokens[0], d.newTokens[0]);
  });

  test("batched prompts with left padding give each prompt's own greedy output", () => {
    const prompts = [[5, 17, 200, 3, 99], [8, 1], [250, 251, 252]];
    const batched = F.generate(model, prompts, { max_new_tokens: 8 });
    prompts.forEach((p, i) => assert.deepEqual(batched.newTokens[i], model.generateGreedy(p, 8).tokenIds, `prompt ${i}`));
  });

  test("a session reuses the KV cache across chat turns", () => {
    const session = new F.GenerationSession();
    const t1 = F.generate(model, [prompt], { max_new_tokens: 5, session });
    const turn2 = [...t1.sequences[0], 33, 44];
    const withCache = F.generate(model, [turn2], { max_new_tokens: 6, session });
    assert.ok(session.tokens.length > turn2.length);
    assert.deepEqual(withCache.newTokens[0], F.generate(model, [turn2], { max_new_tokens: 6 }).newTokens[0]);
  });

  test("streaming: the async iterator and the callback see the same tokens as generate()", async () => {
    const seen: number[] = [];
    const streamed: number[] = [];
    for await (const t of F.generateStream(model, prompt, { max_new_tokens: 7, onToken: (_r, t) => seen.push(t) })) streamed.push(t);
    const want = F.generate(model, [prompt], { max_new_tokens: 7 }).newTokens[0];
    assert.deepEqual(streamed, want);
    assert.deepEqual(seen, want);
  });

  test("stop strings end generation once the decoded text contains them", () => {
    const letters = { decode: (ids: number[]) => ids.map((i) => String.fromCharCode(97 + (i % 26))).join("") };
    const free = F.generate(model, [prompt], { max_new_tokens: 10 }).newTokens[0];
    const stop = letters.decode(free.slice(2, 4));
    const r = F.generate(model, [prompt], { max_new_tokens: 10, stop_strings: [stop], tokenizer: letters });
    assert.ok(letters.decode(r.newTokens[0]).includes(stop));
    assert.ok(r.newTokens[0].length <= 4);
  });
});

describe("beam search", () => {
  // vocabulary of 4 with EOS = 3: every continuation of ≤ 3 tokens can be enumerated
  const cfg = { ...TINY_LLAMA, vocab_size: 4, num_hidden_layers: 1, hidden_size: 32, intermediate_size: 48, num_attention_heads: 2, num_key_value_heads: 1 };
  const model = F.randomModel(cfg, { seed: 5, init: "scaled" });
  const prompt = [1, 2, 0];
  const EOS = 3, L = 3;

  function bruteForce(lengthPenalty: number): { ids: number[]; score: number }[] {
    const out: { ids: number[]; score: number }[] = [];
    const lp = (seq: number[]) => {
      const logits = F.noGrad(() => model.forward(F.tensor([seq], { dtype: "i32" }))).logSoftmax(-1).toArray();
      let sum = 0;
      for (let t = prompt.length; t < seq.length; t++) sum += logits[(t - 1) * 4 + seq[t]];
      return sum;
    };
    const walk = (seq: number[]) => {
      const gen = seq.length - prompt.length;
      if (gen > 0 && (seq[seq.length - 1] === EOS || gen === L)) { out.push({ ids: seq, score: lp(seq) / Math.pow(gen, lengthPenalty) }); return; }
      for (let t = 0; t < 4; t++) walk([...seq, t]);
    };
    walk(prompt);
    return out.sort((a, b) => b.score - a.score);
  }

  for (const lengthPenalty of [1.0, 0.5, 2.0]) {
    test(`with enough beams it finds the brute-force optimum (length_penalty ${lengthPenalty})`, () => {
      const want = bruteForce(lengthPenalty);
      const r = F.generate(model, [prompt], { num_beams: 128, num_return_sequences: 5, max_new_tokens: L, eos_token_id: EOS, length_penalty: lengthPenalty });
      assert.deepEqual(r.sequences, want.slice(0, 5).map((w) => w.ids));
      assertClose(r.scores!, want.slice(0, 5).map((w) => w.score), { atol: 1e-5, rtol: 1e-5 });
    });
  }

  test("a narrow beam returns num_return_sequences hypotheses sorted by score", () => {
    const r = F.generate(model, [prompt, [2, 2]], { num_beams: 3, num_return_sequences: 2, max_new_tokens: 4, eos_token_id: EOS, early_stopping: true });
    assert.equal(r.sequences.length, 4);
    assert.ok(r.scores![0] >= r.scores![1] && r.scores![2] >= r.scores![3]);
    assert.deepEqual(r.sequences[2].slice(0, 2), [2, 2]);
  });
});
