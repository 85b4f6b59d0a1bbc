// The engine of `fathom serve`: the ragged-batch forward (several sequences, own caches and lengths, one pass), the
// preallocated KV cache, the continuous-batching scheduler (in-process) and the Engine through its worker thread.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as F from "../src/index.js";
import type { CausalLM } from "../src/models/decoder.js";
import { assertClose } from "./helpers.js";
import { TINY_CONFIGS } from "./fixtures.js";
import { Scheduler } from "../src/serve/scheduler.js";
import { ServeEngine } from "../src/serve/engine.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { EngineBusyError, type EngineEvent, type EngineStats, type SamplingParams } from "../src/serve/protocol.js";

const i32 = (v: number[]) => new F.Tensor(Int32Array.from(v), "i32", [1, v.length]);

describe("ragged-batch forward", () => {
  const cases: [string, CausalLM][] = [];
  for (const [name, cfg] of Object.entries(TINY_CONFIGS)) cases.push([name, F.randomModel(cfg, { seed: 3, init: "scaled" })]);
  const q = F.randomModel(TINY_CONFIGS.llama, { seed: 4, init: "scaled" });
  (q as unknown as { quantize(t: string): void }).quantize("q8_0");
  cases.push(["llama q8_0", q]);
  const qd = F.randomModel(TINY_CONFIGS.deepseek_v3, { seed: 4, init: "scaled" });
  (qd as unknown as { quantize(t: string): void }).quantize("q8_0");
  cases.push(["deepseek_v3 q8_0", qd]);

  for (const [name, m] of cases) {
    test(`${name}: 3 sequences with different past lengths in one pass equal each run alone`, () => F.noGrad(() => {
      const prompts = [[5, 17, 200, 3, 99], [7, 8], [100, 101, 102, 103, 104, 105, 106, 107, 108]];
      const news = [[42], [9, 10, 11], [77, 3]];
      // alone: plain forward with a cache (prompt, then the new tokens)
      const alone = prompts.map((p, i) => {
        const cache = m.newCache();
        m.forward(i32(p), { cache });
        const l = m.forward(i32(news[i]), { cache });
        return l.slice(1, news[i].length - 1).reshape(-1);
      });
      // ragged: prefill two of them in one pass (different prompt lengths), the third alone; then all new tokens together
      const caches = prompts.map(() => m.newCache({ capacity: 32 }));
      m.forwardRagged([{ ids: prompts[0], cache: caches[0] }, { ids: prompts[2], cache: caches[2] }]);
      m.forwardRagged([{ ids: prompts[1], cache: caches[1] }], { logitsFor: [] });
      const r = m.forwardRagged(news.map((ids, i) => ({ ids, cache: caches[i] })), { hidden: true });
      assert.deepEqual(r.logits!.shape, [3, 288]);
      assert.deepEqual(r.hidden!.shape, [1, 6, 64]);
      alone.forEach((a, i) => assertClose(r.logits!.slice(0, i, i + 1).reshape(-1), a, { atol: 1e-5, rtol: 1e-5 }, `${name} seq ${i}`));
      assert.deepEqual(caches.map((c) => c.length), [6, 5, 11]);
    }));
  }
});

// ---- the scheduler, in-process

const params = (o: Partial<SamplingParams> = {}): SamplingParams => ({
  maxTokens: 8, temperature: 0, topP: 1, presencePenalty: 0, frequencyPenalty: 0, topLogprobs: null, stopTokenIds: [], ...o,
});

/** Collects the events of each sequence. */
class Sink {
  events = new Map<string, EngineEvent[]>();
  for(id: string) { return (e: EngineEvent) => { const l = this.events.get(id) ?? []; l.push(e); this.events.set(id, l); }; }
  tokens(id: string) { return (this.events.get(id) ?? []).flatMap((e) => (e.type === "token" ? [e.tokenId] : [])); }
  done(id: string) { return (this.events.get(id) ?? []).find((e) => e.type === "done") as Extract<EngineEvent, { type: "done" }> | undefined; }
}

const drain = (s: Scheduler, max = 500) => { for (let i = 0; i < max && s.step(); i++); assert.ok(!s.hasWork(), "scheduler did not finish"); };

describe("scheduler (continuous batching)", () => {
  const llama = F.randomModel(TINY_CONFIGS.llama, { seed: 5, init: "scaled" });
  const dsv3 = F.randomModel(TINY_CONFIGS.deepseek_v3, { seed: 5, init: "scaled" });
  const prompts = [[5, 17, 200, 3, 99], [7, 8], [100, 101, 102, 103, 104, 105, 106, 107, 108], [42], [9, 9, 9, 9]];

  for (const [name, m] of [["llama", llama], ["deepseek_v3", dsv3]] as const) {
    test(`${name}: each sequence gets generate()'s greedy tokens; sequences join mid-run`, () => {
      const ref = prompts.map((p) => F.generate(m, [p], { max_new_tokens: 7, do_sample: false }).newTokens[0]);
      const sink = new Sink(), s = new Scheduler(m, { maxBatch: 3, prefillChunk: 4 });
      prompts.slice(0, 2).forEach((p, i) => s.submit({ id: `r${i}`, promptIds: p, params: params({ maxTokens: 7 }) }, sink.for(`r${i}`)));
      s.step(); s.step(); s.step();
      // three more join while the first two decode (one waits for a slot)
      prompts.slice(2).forEach((p, i) => s.submit({ id: `r${i + 2}`, promptIds: p, params: params({ maxTokens: 7 }) }, sink.for(`r${i + 2}`)));
      assert.equal(s.stats().queueDepth, 3);
      drain(s);
      prompts.forEach((_, i) => {
        assert.deepEqual(sink.tokens(`r${i}`), ref[i], `${name} r${i}`);
        const d = sink.done(`r${i}`)!;
        assert.equal(d.reason, "length");
        assert.deepEqual([d.promptTokens, d.completionTokens], [prompts[i].length, 7]);
      });
      assert.equal(s.stats().active, 0);
      assert.equal(s.stats().kvTokensUsed, 0);
    });
  }

  test("cancel frees the slot before the next step; a queued sequence then starts", () => {
    const sink = new Sink(), started: string[] = [];
    const s = new Scheduler(llama, { maxBatch: 1, onStart: (id) => started.push(id) });
    s.submit({ id: "a", promptIds: [1, 2, 3], params: params({ maxTokens: 50 }) }, sink.for("a"));
    s.submit({ id: "b", promptIds: [4, 5], params: params({ maxTokens: 2 }) }, sink.for("b"));
    s.step(); s.step();
    assert.deepEqual(started, ["a"]);
    assert.equal(sink.tokens("a").length, 2);
    s.cancel("a");
    assert.equal(sink.done("a")!.reason, "cancelled");
    assert.equal(sink.done("a")!.completionTokens, 2);
    assert.deepEqual(s.stats().active, 0);
    s.step();
    assert.deepEqual(started, ["a", "b"]);
    drain(s);
    assert.equal(sink.done("b")!.reason, "length");
    assert.equal(sink.tokens("a").length, 2);          // nothing after the cancel
    s.cancel("nope");                                   // unknown: no-op
  });

  test("queue full → EngineBusyError; timeouts end queued and running sequences", () => {
    let now = 1000;
    const sink = new Sink(), s = new Scheduler(llama, { maxBatch: 1, maxQueue: 2, now: () => now });
    s.submit({ id: "a", promptIds: [1, 2], params: params({ maxTokens: 100 }), timeoutMs: 50 }, sink.for("a"));
    s.submit({ id: "b", promptIds: [1, 2], params: params(), timeoutMs: 10 }, sink.for("b"));
    s.submit({ id: "c", promptIds: [1, 2], params: params(), timeoutMs: 10 }, sink.for("c"));   // a takes the free slot: b, c wait
    assert.throws(() => s.submit({ id: "d", promptIds: [1], params: params() }, sink.for("d")), (e: unknown) => e instanceof EngineBusyError && e.queueDepth === 2);
    s.step();                                           // a starts, b and c wait
    assert.equal(s.stats().queueDepth, 2);
    now += 20; s.step();
    for (const id of ["b", "c"]) {
      assert.equal(sink.done(id)!.reason, "timeout");
      assert.equal(sink.done(id)!.completionTokens, 0);
    }
    now += 40; s.step();
    assert.equal(sink.done("a")!.reason, "timeout");
    assert.ok(sink.done("a")!.completionTokens >= 1);
    assert.ok(!s.hasWork());
  });

  test("prefix cache: a prompt sharing a system prefix reuses its KV, same tokens, nonzero cachedTokens", () => {
    for (const m of [llama, dsv3]) {
      const system = Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % 280);
      const p1 = [...system, 11, 12, 13], p2 = [...system, 50, 60];
      const ref = F.generate(m, [p2], { max_new_tokens: 6, do_sample: false }).newTokens[0];
      const sink = new Sink(), s = new Scheduler(m, { maxBatch: 2, prefillChunk: 8 });
      s.submit({ id: "1", promptIds: p1, params: params({ maxTokens: 3 }) }, sink.for("1"));
      drain(s);
      assert.equal(sink.done("1")!.cachedTokens, 0);
      s.submit({ id: "2", promptIds: p2, params: params({ maxTokens: 6 }) }, sink.for("2"));
      drain(s);
      assert.equal(sink.done("2")!.cachedTokens, system.length);
      assert.equal(s.stats().prefixCacheHits, system.length);
      assert.deepEqual(sink.tokens("2"), ref);
      // the same prompt again: all but its last token come from the cache
      s.submit({ id: "3", promptIds: p2, params: params({ maxTokens: 6 }) }, sink.for("3"));
      drain(s);
      assert.equal(sink.done("3")!.cachedTokens, p2.length - 1);
      assert.deepEqual(sink.tokens("3"), ref);
    }
  });

  test("seeded sampling is reproducible (and batch-independent); stop ids; context limit; logit bias", () => {
    const sp = params({ maxTokens: 12, temperature: 0.9, topP: 0.95, seed: 7, presencePenalty: 0.5, frequencyPenalty: 0.3 });
    const run = (others: number) => {
      const sink = new Sink(), s = new Scheduler(llama, { maxBatch: 4 });
      s.submit({ id: "x", promptIds: [3, 4, 5], params: sp }, sink.for("x"));
      for (let i = 0; i < others; i++) s.submit({ id: `o${i}`, promptIds: [i + 1, 2], params: params({ temperature: 1, seed: i }) }, sink.for(`o${i}`));
      drain(s);
      return sink.tokens("x");
    };
    const a = run(0), b = run(3);
    assert.equal(a.length, 12);
    assert.deepEqual(a, b);
    const c = (() => { const sink = new Sink(), s = new Scheduler(llama); s.submit({ id: "x", promptIds: [3, 4, 5], params: { ...sp, seed: 8 } }, sink.for("x")); drain(s); return sink.tokens("x"); })();
    assert.notDeepEqual(a, c);
    // stop token: the greedy sequence's third token ends it with "stop", reported first
    const greedy = F.generate(llama, [[3, 4, 5]], { max_new_tokens: 5, do_sample: false }).newTokens[0];
    const sink = new Sink(), s = new Scheduler(llama, { ctx: 10 });
    s.submit({ id: "s", promptIds: [3, 4, 5], params: params({ stopTokenIds: [greedy[2]] }) }, sink.for("s"));
    s.submit({ id: "l", promptIds: [1, 2, 3, 4, 5, 6, 7], params: params({ maxTokens: 100 }) }, sink.for("l"));
    s.submit({ id: "big", promptIds: new Array(10).fill(1), params: params() }, sink.for("big"));
    s.submit({ id: "bias", promptIds: [3, 4, 5], params: params({ maxTokens: 3, logitBias: { 77: 100 } }) }, sink.for("bias"));
    drain(s);
    assert.deepEqual(sink.tokens("s"), greedy.slice(0, greedy.indexOf(greedy[2]) + 1));
    assert.equal(sink.done("s")!.reason, "stop");
    assert.equal(sink.tokens("l").length, 3);            // 7 prompt + 3 new = ctx 10
    assert.equal(sink.done("l")!.reason, "length");
    assert.equal(sink.done("big")!.reason, "error");
    assert.match(sink.done("big")!.error!, /does not fit the context of 10/);
    assert.deepEqual(sink.tokens("bias"), [77, 77, 77]);
  });

  test("log-probs match log-softmax of the logits, with top-k alternatives best first", () => F.noGrad(() => {
    const prompt = [10, 20, 30];
    const sink = new Sink(), s = new Scheduler(llama);
    s.submit({ id: "p", promptIds: prompt, params: params({ maxTokens: 2, topLogprobs: 3 }) }, sink.for("p"));
    drain(s);
    const evs = sink.events.get("p")!.filter((e) => e.type === "token") as Extract<EngineEvent, { type: "token" }>[];
    const seq = [...prompt];
    for (const e of evs) {
      const lp = llama.forward(i32(seq)).slice(1, seq.length - 1).reshape(-1).logSoftmax(-1).toArray();
      assertClose([e.logprob!], [lp[e.tokenId]], { atol: 1e-5, rtol: 1e-5 });
      const best = [...lp.keys()].sort((a, b) => lp[b] - lp[a]).slice(0, 3);
      assert.deepEqual(e.top!.map((t) => t.id), best);
      assertClose(e.top!.map((t) => t.logprob), best.map((i) => lp[i]), { atol: 1e-5, rtol: 1e-5 });
      assert.equal(e.tokenId, best[0]);                  // greedy
      seq.push(e.tokenId);
    }
  }));

  test("embeddings: mean-pooled final hidden states, L2-normalised, one per input", () => F.noGrad(() => {
    for (const m of [llama, dsv3]) {
      const s = new Scheduler(m);
      const inputs = [[1, 2, 3], [4], [5, 6, 7, 8, 9]];
      const out = s.embed(inputs);
      assert.equal(out.length, 3);
      inputs.forEach((ids, i) => {
        assert.equal(out[i].length, 64);
        assertClose([Math.hypot(...out[i])], [1], { atol: 1e-5, rtol: 1e-5 });
        const h = m.hidden(i32(ids)).mean(1).reshape(-1);
        const ref = h.div(h.square().sum().sqrt());
        assertClose(Array.from(out[i]), ref, { atol: 1e-5, rtol: 1e-5 });
      });
      assert.throws(() => s.embed([[]]), /at least one token/);
    }
  }));
});

describe("Engine (worker thread)", () => {
  test("loads a saved model in a worker, streams greedy tokens like generate(), embeds, cancels, reports stats; bad paths reject", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fathom-engine-"));
    try {
      const m = F.randomModel(TINY_CONFIGS.qwen2, { seed: 9, init: "scaled" });
      m.savePretrained(dir);
      const ref = F.generate(m, [[3, 1, 4, 1, 5]], { max_new_tokens: 6, do_sample: false }).newTokens[0];
      const engine = await ServeEngine.start({ model: dir, maxBatch: 2, maxQueue: 4, ctx: 128 });
      try {
        assert.deepEqual(engine.info, { modelId: basename(dir), modelType: "qwen2", contextLength: 128, hiddenSize: 64, vocabSize: 288 });
        const seen: EngineStats[] = [];
        const run = (id: string, promptIds: number[], p: Partial<SamplingParams>) => new Promise<EngineEvent[]>((resolve) => {
          const evs: EngineEvent[] = [];
          engine.submit({ id, promptIds, params: params(p) }, (e) => {
            evs.push(e);
            seen.push(engine.stats());
            if (id === "long" && evs.length === 1) engine.cancel("long");     // cancel a running sequence from its first token
            if (e.type === "done") resolve(evs);
          });
        });
        const long = run("long", [7, 7, 7], { maxTokens: 100000 });
        const [a, b] = await Promise.all([run("a", [3, 1, 4, 1, 5], { maxTokens: 6 }), run("b", [3, 1, 4, 1, 5], { maxTokens: 6, topLogprobs: 2 })]);
        for (const evs of [a, b]) {
          assert.deepEqual(evs.flatMap((e) => (e.type === "token" ? [e.tokenId] : [])), ref);
          const done = evs.at(-1) as Extract<EngineEvent, { type: "done" }>;
          assert.equal(done.reason, "length");
          assert.equal(done.completionTokens, 6);
        }
        assert.equal((b[0] as Extract<EngineEvent, { type: "token" }>).top!.length, 2);
        assert.ok(seen.some((st) => st.kvTokensUsed > 0 && st.active >= 1), JSON.stringify(seen));
        assert.equal(engine.stats().kvTokensCapacity, 256);
        const le = await long, ld = le.at(-1) as Extract<EngineEvent, { type: "done" }>;
        assert.equal(ld.reason, "cancelled");
        assert.ok(ld.completionTokens < 100, `${ld.completionTokens}`);
        assert.deepEqual([engine.stats().active, engine.stats().queueDepth], [0, 0]);
        const vecs = await engine.embed([[1, 2, 3], [4, 5]]);
        assert.equal(vecs.length, 2);
        assert.equal(vecs[0].length, 64);
        assertClose([Math.hypot(...vecs[1])], [1], { atol: 1e-5, rtol: 1e-5 });
        await assert.rejects(engine.embed([[]]), /at least one token/);
        const bad = await run("bad", [1, 999], {});
        assert.equal((bad[0] as Extract<EngineEvent, { type: "done" }>).reason, "error");
      } finally { await engine.close(); }
      await assert.rejects(ServeEngine.start({ model: join(dir, "missing") }), /is not a model folder/);
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});

describe("preallocated KV cache", () => {
  test("writes in place (views of one buffer), grows past its capacity, and equals the concatenating cache for f32/bf16/q8_0", () => F.noGrad(() => {
    for (const [name, cfg] of [["llama", TINY_CONFIGS.llama], ["deepseek_v2", TINY_CONFIGS.deepseek_v2]] as const) {
      const m = F.randomModel(cfg, { seed: 6, init: "scaled" });
      for (const dtype of ["f32", "bf16", "q8_0"] as const) {
        const plain = m.newCache({ dtype }), pre = m.newCache({ dtype, capacity: 4 });
        const chunks = [[1, 2, 3], [4], [5, 6, 7, 8], [9]];       // 9 positions: the capacity of 4 doubles twice
        for (const c of chunks) {
          const a = m.forward(i32(c), { cache: plain }), b = m.forward(i32(c), { cache: pre });
          assertClose(b, a, { atol: 1e-6, rtol: 1e-6 }, `${name} ${dtype}`);
        }
        assert.equal(pre.length, 9);
        if (dtype !== "q8_0") {
          const l = pre.layers[0];
          assert.equal(l.k!.data, l.kBuf!.data);                 // a view of the buffer, not a copy
          assert.equal(l.kBuf!.shape[2], 16);
          assert.equal(pre.bytes(), plain.bytes() * 16 / 9);
        } else assert.equal(pre.layers[0].qk!.cap, 16);
        // truncate + copyFrom: continuing from a copied prefix equals continuing the original
        const other = m.newCache({ dtype, capacity: 32 });
        other.copyFrom(pre, 5);
        pre.truncate(5);
        assert.deepEqual([other.length, pre.length], [5, 5]);
        assertClose(m.forward(i32([42, 43]), { cache: other }), m.forward(i32([42, 43]), { cache: pre }), { atol: 1e-6, rtol: 1e-6 });
        const snap = pre.snapshot(3);
        assert.equal(snap.length, 3);
      }
    }
  }));

  test("generate(): beam search and batched sampling are unchanged by the preallocated cache (reorder follows beams)", () => F.noGrad(() => {
    const m = F.randomModel(TINY_CONFIGS.llama, { seed: 8, init: "scaled" });
    const beams = F.generate(m, [[1, 2, 3]], { max_new_tokens: 5, num_beams: 3, do_sample: false });
    // reference: beam search with a concatenating cache (capacity off) through the same code path
    const orig = m.newCache.bind(m);
    m.newCache = (o = {}) => orig({ ...o, capacity: undefined });
    try {
      const ref = F.generate(m, [[1, 2, 3]], { max_new_tokens: 5, num_beams: 3, do_sample: false });
      assert.deepEqual(beams.sequences, ref.sequences);
      const s1 = F.generate(m, [[1, 2, 3], [4, 5]], { max_new_tokens: 6, do_sample: true, seed: 3 });
      m.newCache = orig;
      const s2 = F.generate(m, [[1, 2, 3], [4, 5]], { max_new_tokens: 6, do_sample: true, seed: 3 });
      assert.deepEqual(s2.sequences, s1.sequences);
    } finally { m.newCache = orig; }
  }));
});
