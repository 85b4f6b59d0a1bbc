// KV-cache reads: what appendCache returns and keeps, inside step arenas and under autograd (shared f32 scratch of q8_0/bf16 caches).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Tensor } from "../src/core/tensor.js";
import { StepArena } from "../src/core/arena.js";
import { allocate } from "../src/core/dtype.js";
import { noGrad } from "../src/core/autograd.js";
import { appendCache, type LayerCache } from "../src/nn/attention.js";

test("a bf16 cache (not preallocated) fed bf16 entries inside a step arena keeps its own copy", () => {
  noGrad(() => {
    const arena = new StepArena();
    const cache: LayerCache = { dtype: "bf16" };
    const n = 1 * 2 * 3 * 4;
    // step 1: the new entries live in arena storage
    arena.run(() => {
      const buf = allocate("bf16", n) as Uint16Array;
      for (let i = 0; i < n; i++) buf[i] = 0x3f80 + i;   // distinct bf16 values
      appendCache(cache, "k", new Tensor(buf, "bf16", [1, 2, 3, 4]));
    });
    const before = Array.from(cache.k!.buffer() as Uint16Array);
    // step 2: the same-sized arena buffer is handed out again (zeroed) and written
    arena.run(() => {
      const buf = allocate("bf16", n) as Uint16Array;
      buf.fill(0x4000);
    });
    assert.deepEqual(Array.from(cache.k!.buffer() as Uint16Array), before);
  });
});

import { sdpa } from "../src/core/fused/sdpa.js";
import { randn, manualSeed } from "../src/core/ops/create.js";

// A bf16 (preallocated) or q8_0 cache read as f32 is a view of a scratch shared by every layer. Under autograd sdpa keeps
// its k and v for the backward pass: a later layer's read must not change the gradient of an earlier layer's query.
for (const dtype of ["bf16", "q8_0"] as const) {
  test(`${dtype} cache reads kept by autograd survive the next layer's read`, () => {
    manualSeed(7);
    const mk = () => randn([1, 2, 5, 8]);
    const k1 = mk(), v1 = mk(), k2 = mk(), v2 = mk();
    const gradOfQ = (secondLayer: boolean) => {
      const q = randn([1, 2, 5, 8]);
      const c1: LayerCache = { dtype, cap: 16 }, c2: LayerCache = { dtype, cap: 16 };
      const qq = q.detach().requiresGrad_();
      const o = sdpa(qq, appendCache(c1, "k", k1), appendCache(c1, "v", v1), { causal: true });
      if (secondLayer) { appendCache(c2, "k", k2); appendCache(c2, "v", v2); }
      o.sum().backward();
      return Array.from(qq.grad!.buffer() as Float32Array);
    };
    manualSeed(11);
    const alone = gradOfQ(false);
    manualSeed(11);
    assert.deepEqual(gradOfQ(true), alone);
  });
}
