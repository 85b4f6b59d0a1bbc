// The engine of `fathom serve`: the ragged-batch forward (several sequences, own caches and lengths, one pass), the
// preallocated KV cache, the continuous-batching scheduler (in-process) and the Engine through its worker thread.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as F from "../src/index.js";
import type { CausalLM } from "../src/models/decoder.js";
import { assertClose } from "./helpers.js";
import { TINY_CONFIGS } from "./fixtures.js";

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
